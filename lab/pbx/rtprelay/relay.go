package rtprelay

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
)

// maxPacketSize bounds one RTP/RTCP datagram; longer ones are dropped as
// invalid rather than relayed truncated.
const maxPacketSize = 4096

// Direction names one way through a relay.
type Direction int

const (
	// AToB is media from leg A (the first endpoint) out to leg B. An echo
	// counts what it sends back to its leg here.
	AToB Direction = iota
	// BToA is media from leg B out to leg A.
	BToA
)

func (d Direction) String() string {
	if d == BToA {
		return "b->a"
	}

	return "a->b"
}

// Relay joins two endpoints: what arrives at A is sent out of B to B's
// remote, and vice versa. Its goroutines run from Start to Close.
type Relay struct {
	a, b *Endpoint
	cfg  config
	ssrc uint32 // the echo's own SSRC

	stats [2]dirCounters

	mu      sync.Mutex
	started bool
	closed  bool
	closing atomic.Bool
	wg      sync.WaitGroup
	stopped chan struct{} // closed once Close has stopped the goroutines
}

// NewRelay returns a relay between a and b; nothing moves until Start.
func NewRelay(a, b *Endpoint, opts ...Option) *Relay {
	r := &Relay{a: a, b: b, cfg: newConfig(opts), stopped: make(chan struct{})}
	if r.cfg.echo {
		r.b = a
		r.ssrc = rand.Uint32() //nolint:gosec // an SSRC, not a secret
		if b != nil && b != a {
			r.cfg.log.Warn("rtprelay: echo ignores its second endpoint", "endpoint", b.RTPAddr())
		}
	}

	return r
}

// NewEcho returns a relay that sends what e's leg sends back to it, like the
// dialplan's echo application. The echoed RTP keeps payload, sequence
// numbers and timestamps but carries the PBX's own SSRC, as FreeSWITCH's echo
// does: a phone that received its own SSRC from another address would take it
// for an SSRC collision (RFC 3550 §8.2) and change it. RTCP from the leg is
// consumed, not echoed.
func NewEcho(e *Endpoint, opts ...Option) *Relay {
	return NewRelay(e, nil, append(opts, WithEcho())...)
}

// Start launches one goroutine per socket. It does nothing on a relay that
// is already started or closed.
func (r *Relay) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	r.wg.Add(2)
	go r.forward(r.a, rtpSocket, r.b, AToB)
	go r.forward(r.a, rtcpSocket, r.b, AToB)
	if !r.cfg.echo {
		r.wg.Add(2)
		go r.forward(r.b, rtpSocket, r.a, BToA)
		go r.forward(r.b, rtcpSocket, r.a, BToA)
	}
}

// Close stops the relay and waits for its goroutines. The endpoints stay
// open (close them to release their ports). Close is idempotent: a second
// call waits for the first one's goroutines too. No lock is held while
// waiting: in virtual time (synctest) a goroutine blocked on a mutex would
// keep the clock, and so the readers' deadline, from moving.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.stopped
		return nil
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	defer close(r.stopped)
	if !started {
		return nil
	}
	// A read deadline in the past wakes the readers without closing the
	// sockets, which belong to the endpoints.
	r.closing.Store(true)
	eps := []*Endpoint{r.a}
	if r.b != r.a {
		eps = append(eps, r.b)
	}
	now := time.Now()
	for _, e := range eps {
		_ = e.rtp.SetReadDeadline(now)
		_ = e.rtcp.SetReadDeadline(now)
	}
	r.wg.Wait()
	for _, e := range eps {
		_ = e.rtp.SetReadDeadline(time.Time{})
		_ = e.rtcp.SetReadDeadline(time.Time{})
	}

	return nil
}

// forward is the whole media path of one socket: every packet read from in's
// socket s goes through these steps, in this order, and out to out's leg.
func (r *Relay) forward(in *Endpoint, s socket, out *Endpoint, dir Direction) {
	defer r.wg.Done()
	conn := in.conn(s)
	st := &r.stats[dir]
	log := r.cfg.log.With("endpoint", in.RTPAddr(), "socket", s, "dir", dir)
	// One spare byte: a datagram that fills it was longer than maxPacketSize
	// and has been truncated by the socket.
	buf := make([]byte, maxPacketSize+1)
	// vnet fires a past read deadline for one read only, and a reader busy
	// with a packet may miss it: check closing on every turn as well.
	for !r.closing.Load() {
		n, src, err := readFrom(conn, buf)
		if err != nil {
			if r.closing.Load() {
				return
			}
			if n > 0 && errors.Is(err, io.ErrShortBuffer) {
				st.invalid.Add(1)

				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // a deadline set by someone else; only Close ends the loop
			}
			log.Debug("rtprelay: socket closed", "err", err)

			return
		}
		at := time.Now()
		if n > maxPacketSize {
			st.invalid.Add(1)

			continue
		}
		pkt := buf[:n]

		// 1. What is it: RTP, RTCP, or something a plain-RTP anchor drops.
		kind := classify(pkt, s)
		if kind == invalidPacket {
			st.invalid.Add(1)

			continue
		}

		// 2. Where does it come from: latch, or drop a stray.
		switch verdict, prev := in.admit(s, src, r.cfg.latching, r.cfg.latchWindow); verdict {
		case stray:
			st.stray.Add(1)

			continue
		case latched:
			st.latches.Add(1)
			log.Info("rtprelay: latched", "sdp_or_previous", prev, "source", src)
		case admitted:
		}

		// 3. Where does it go.
		if r.cfg.echo && kind == rtcpPacket {
			continue
		}
		via, dst, dstUDP := out.route(kind == rtcpPacket)
		if dstUDP == nil {
			st.dropped.Add(1)

			continue
		}
		if r.cfg.echo {
			r.rewriteSSRC(pkt)
		}

		// 4. Observe.
		if r.cfg.recorder != nil {
			r.cfg.recorder(dir, pkt, at)
		}

		// 5. Send. Counted first, so whoever received a packet finds it in
		// Stats; a failed send is taken back out.
		st.count(kind, n, at)
		if err := writeTo(via, pkt, dst, dstUDP); err != nil {
			st.uncount(kind, n)
			st.sendErrors.Add(1)
			log.Debug("rtprelay: send failed", "to", dst, "err", err)
		}
	}
}

func (r *Relay) rewriteSSRC(pkt []byte) {
	ssrc := r.ssrc
	if binary.BigEndian.Uint32(pkt[8:12]) == ssrc {
		ssrc = ^ssrc
	}
	binary.BigEndian.PutUint32(pkt[8:12], ssrc)
}

type packetKind int

const (
	invalidPacket packetKind = iota
	rtpPacket
	rtcpPacket
)

// classify tells RTP from RTCP the RFC 5761 §4 way: RTCP packet types 192-223
// sit where RTP has its marker bit and payload types 64-95, which RTP must not
// use when muxed. Anything on the RTCP socket is RTCP.
func classify(pkt []byte, s socket) packetKind {
	if len(pkt) < 4 || pkt[0]>>6 != 2 {
		return invalidPacket
	}
	if s == rtcpSocket || (pkt[1] >= 192 && pkt[1] <= 223) {
		return rtcpPacket
	}
	if len(pkt) < 12 {
		return invalidPacket
	}

	return rtpPacket
}

// addrPortConn is what *net.UDPConn offers beyond transport.UDPConn: reads
// and writes without a *net.UDPAddr allocation per packet.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

func readFrom(c transport.UDPConn, buf []byte) (int, netip.AddrPort, error) {
	if fast, ok := c.(addrPortConn); ok {
		n, src, err := fast.ReadFromUDPAddrPort(buf)

		return n, unmap(src), err
	}
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		return n, netip.AddrPort{}, err
	}

	return n, sourceOf(from), nil
}

func writeTo(c transport.UDPConn, pkt []byte, dst netip.AddrPort, dstUDP *net.UDPAddr) error {
	var err error
	if fast, ok := c.(addrPortConn); ok {
		_, err = fast.WriteToUDPAddrPort(pkt, dst)
	} else {
		_, err = c.WriteTo(pkt, dstUDP)
	}

	return err
}

func sourceOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return unmap(u.AddrPort())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}

	return unmap(ap)
}

// DirectionStats counts one direction of a relay.
type DirectionStats struct {
	Packets     uint64    // RTP packets relayed
	Bytes       uint64    // RTP bytes relayed (UDP payload)
	RTCPPackets uint64    // RTCP packets relayed
	RTCPBytes   uint64    // RTCP bytes relayed
	Dropped     uint64    // arrived, but the other leg had no remote yet or is on hold
	Stray       uint64    // arrived from a source other than the settled remote: dropped
	Invalid     uint64    // not RTP/RTCP version 2 (STUN, DTLS, garbage, oversized): dropped
	SendErrors  uint64    // the send to the other leg failed
	Latches     uint64    // times the sending leg's remote followed a new source
	FirstPacket time.Time // arrival of the first RTP packet relayed; zero if none
}

// Stats is a snapshot of a relay's counters.
type Stats struct {
	AToB DirectionStats
	BToA DirectionStats
}

// Dir returns the counters of one direction.
func (s Stats) Dir(d Direction) DirectionStats {
	if d == BToA {
		return s.BToA
	}

	return s.AToB
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{AToB: r.stats[AToB].snapshot(), BToA: r.stats[BToA].snapshot()}
}

type dirCounters struct {
	packets, bytes, rtcpPackets, rtcpBytes       atomic.Uint64
	dropped, stray, invalid, sendErrors, latches atomic.Uint64
	first                                        atomic.Pointer[time.Time]
}

func (c *dirCounters) count(kind packetKind, n int, at time.Time) {
	if kind == rtcpPacket {
		c.rtcpPackets.Add(1)
		c.rtcpBytes.Add(uint64(n)) //nolint:gosec // n >= 0

		return
	}
	c.packets.Add(1)
	c.bytes.Add(uint64(n)) //nolint:gosec // n >= 0
	if c.first.Load() == nil {
		c.first.CompareAndSwap(nil, &at)
	}
}

func (c *dirCounters) uncount(kind packetKind, n int) {
	minusN := ^uint64(n - 1) //nolint:gosec // two's complement of n > 0
	if kind == rtcpPacket {
		c.rtcpPackets.Add(^uint64(0))
		c.rtcpBytes.Add(minusN)

		return
	}
	c.packets.Add(^uint64(0))
	c.bytes.Add(minusN)
}

func (c *dirCounters) snapshot() DirectionStats {
	s := DirectionStats{
		Packets:     c.packets.Load(),
		Bytes:       c.bytes.Load(),
		RTCPPackets: c.rtcpPackets.Load(),
		RTCPBytes:   c.rtcpBytes.Load(),
		Dropped:     c.dropped.Load(),
		Stray:       c.stray.Load(),
		Invalid:     c.invalid.Load(),
		SendErrors:  c.sendErrors.Load(),
		Latches:     c.latches.Load(),
	}
	if t := c.first.Load(); t != nil {
		s.FirstPacket = *t
	}

	return s
}
