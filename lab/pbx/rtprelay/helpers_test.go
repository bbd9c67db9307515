package rtprelay

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/transport/v5/vnet"
)

// loopback is the only address real-socket tests use.
var loopback = netip.MustParseAddr("127.0.0.1")

// Real-socket tests allocate from this range; ports that other processes
// hold are skipped by the allocator.
const loopbackMinPort, loopbackMaxPort = 43000, 43999

const waitTimeout = 5 * time.Second

func newStdNet(tb testing.TB) transport.Net {
	tb.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		tb.Fatalf("stdnet: %v", err)
	}

	return n
}

// lab is a pion virtual network with one host per address.
type lab struct {
	router *vnet.Router
	hosts  map[string]*vnet.Net
}

func newLab(tb testing.TB, minDelay time.Duration, ips ...string) *lab {
	tb.Helper()
	router, err := vnet.NewRouter(&vnet.RouterConfig{
		CIDR:          "10.77.0.0/24",
		MinDelay:      minDelay,
		LoggerFactory: logging.NewDefaultLoggerFactory(),
	})
	if err != nil {
		tb.Fatalf("vnet router: %v", err)
	}
	l := &lab{router: router, hosts: map[string]*vnet.Net{}}
	for _, ip := range ips {
		host, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			tb.Fatalf("vnet host %s: %v", ip, err)
		}
		if err := router.AddNet(host); err != nil {
			tb.Fatalf("add host %s: %v", ip, err)
		}
		l.hosts[ip] = host
	}
	if err := router.Start(); err != nil {
		tb.Fatalf("router start: %v", err)
	}
	tb.Cleanup(func() { _ = router.Stop() })

	return l
}

// datagram is one packet a phone received.
type datagram struct {
	data []byte
	from netip.AddrPort
	at   time.Time
}

// phone is a fake SIP phone's media side: an RTP and an RTCP socket on one
// transport.Net, each drained into a channel.
type phone struct {
	rtp, rtcp     transport.UDPConn
	rtpIn, rtcpIn chan datagram
}

func newPhone(tb testing.TB, n transport.Net, ip netip.Addr) *phone {
	tb.Helper()
	p := &phone{
		rtp:    listen(tb, n, ip),
		rtcp:   listen(tb, n, ip),
		rtpIn:  make(chan datagram, 4096),
		rtcpIn: make(chan datagram, 4096),
	}
	go drain(p.rtp, p.rtpIn)
	go drain(p.rtcp, p.rtcpIn)

	return p
}

func listen(tb testing.TB, n transport.Net, ip netip.Addr) transport.UDPConn {
	tb.Helper()
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: ip.AsSlice()})
	if err != nil {
		tb.Fatalf("listen on %s: %v", ip, err)
	}
	tb.Cleanup(func() { _ = c.Close() })

	return c
}

func drain(c transport.UDPConn, ch chan<- datagram) {
	defer close(ch)
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		ch <- datagram{data: bytes.Clone(buf[:n]), from: sourceOf(from), at: time.Now()}
	}
}

func addrOf(c transport.UDPConn) netip.AddrPort {
	return sourceOf(c.LocalAddr())
}

func (p *phone) rtpAddr() netip.AddrPort  { return addrOf(p.rtp) }
func (p *phone) rtcpAddr() netip.AddrPort { return addrOf(p.rtcp) }

func send(tb testing.TB, c transport.UDPConn, pkt []byte, to netip.AddrPort) {
	tb.Helper()
	if _, err := c.WriteTo(pkt, net.UDPAddrFromAddrPort(to)); err != nil {
		tb.Fatalf("send to %s: %v", to, err)
	}
}

func expect(tb testing.TB, ch <-chan datagram, what string) datagram {
	tb.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			tb.Fatalf("%s: socket closed", what)
		}

		return d
	case <-time.After(waitTimeout):
		tb.Fatalf("%s: nothing arrived in %s", what, waitTimeout)
	}

	return datagram{}
}

// expectNothing fails if anything arrives within d.
func expectNothing(tb testing.TB, ch <-chan datagram, d time.Duration, what string) {
	tb.Helper()
	select {
	case got := <-ch:
		tb.Fatalf("%s: unexpected %d bytes from %s", what, len(got.data), got.from)
	case <-time.After(d):
	}
}

func makeRTP(tb testing.TB, ssrc uint32, seq uint16, payloadLen int) []byte {
	tb.Helper()
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(int(seq) + i)
	}
	pkt := &rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			PayloadType:    0,
			SequenceNumber: seq,
			Timestamp:      uint32(seq) * 160,
			SSRC:           ssrc,
		},
		Payload: payload,
	}
	b, err := pkt.Marshal()
	if err != nil {
		tb.Fatalf("marshal RTP: %v", err)
	}

	return b
}

func parseRTP(tb testing.TB, b []byte) *rtp.Packet {
	tb.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		tb.Fatalf("unmarshal RTP: %v", err)
	}

	return &p
}

func receiverReport(tb testing.TB, ssrc uint32) []byte {
	tb.Helper()
	b, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{
		SSRC:    ssrc,
		Reports: []rtcp.ReceptionReport{{SSRC: ssrc + 1, FractionLost: 3, LastSequenceNumber: 99}},
	}})
	if err != nil {
		tb.Fatalf("marshal RTCP: %v", err)
	}

	return b
}

func reportSSRC(tb testing.TB, b []byte) uint32 {
	tb.Helper()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		tb.Fatalf("unmarshal RTCP: %v", err)
	}
	rr, ok := pkts[0].(*rtcp.ReceiverReport)
	if !ok {
		tb.Fatalf("RTCP: got %T, want a receiver report", pkts[0])
	}

	return rr.SSRC
}

func mustAllocate(tb testing.TB, a *Allocator) *Endpoint {
	tb.Helper()
	e, err := a.Allocate()
	if err != nil {
		tb.Fatalf("allocate: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil && !errors.Is(err, ErrEndpointClosed) {
			tb.Errorf("close endpoint: %v", err)
		}
	})

	return e
}

func mustAllocator(tb testing.TB, n transport.Net, ip netip.Addr, minPort, maxPort int) *Allocator {
	tb.Helper()
	a, err := NewAllocator(n, ip, minPort, maxPort)
	if err != nil {
		tb.Fatalf("allocator: %v", err)
	}

	return a
}

// eventually waits until cond holds, for counters that a relay goroutine
// updates after the test's last observable event.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(waitTimeout); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, waitTimeout)
		}
	}
}
