package netem_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/lab/netem"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// realEcho is a UDP echo server on a real loopback socket; it records the sources it saw.
type realEcho struct {
	conn *net.UDPConn
	mu   sync.Mutex
	seen map[netip.AddrPort]int
	done chan struct{}
}

func newRealEcho(t *testing.T) *realEcho {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	e := &realEcho{conn: c, seen: map[netip.AddrPort]int{}, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.seen[from]++
			e.mu.Unlock()
			c.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-e.done })
	return e
}

func (e *realEcho) addr() netip.AddrPort { return e.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (e *realEcho) sources() map[netip.AddrPort]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[netip.AddrPort]int{}
	for k, v := range e.seen {
		out[k] = v
	}
	return out
}

// roundTrip sends msg from c to dst and waits for one reply.
func roundTrip(c net.PacketConn, dst net.Addr, msg string, wait time.Duration) (string, net.Addr, time.Duration, error) {
	start := time.Now()
	if _, err := c.WriteTo([]byte(msg), dst); err != nil {
		return "", nil, 0, err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		return "", nil, 0, err
	}
	return string(buf[:n]), from, time.Since(start), nil
}

func startNetwork(t *testing.T, hosts ...string) (*netem.Network, []*netem.Host) {
	t.Helper()
	nw, err := netem.New("")
	if err != nil {
		t.Fatal(err)
	}
	var hs []*netem.Host
	for _, name := range hosts {
		h, err := nw.AddHost(name, "")
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := nw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	return nw, hs
}

// TestRelayToReal: several vnet peers (two hosts, two sockets on one of them) reach a real
// loopback server through one relay, in real time; each gets its own replies, and the server
// sees each peer at its own loopback port.
func TestRelayToReal(t *testing.T) {
	echo := newRealEcho(t)
	_, hs := startNetwork(t, "gw", "a", "b")
	gw, a, b := hs[0], hs[1], hs[2]
	r, err := gw.RelayToReal(5060, echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Addr() != netip.AddrPortFrom(gw.IP, 5060) {
		t.Fatalf("relay listens on %v, want %v:5060", r.Addr(), gw.IP)
	}
	dst := net.UDPAddrFromAddrPort(r.Addr())
	var peers []net.PacketConn
	for _, h := range []*netem.Host{a, a, b} {
		c, err := h.Net.ListenPacket("udp4", h.IP.String()+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		peers = append(peers, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(peers))
	for i, c := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				msg := fmt.Sprintf("peer%d-%d", i, k)
				got, from, _, err := roundTrip(c, dst, msg, 2*time.Second)
				if err != nil {
					errs <- fmt.Errorf("peer %d: %w", i, err)
					return
				}
				if got != "echo:"+msg || from.String() != dst.String() {
					errs <- fmt.Errorf("peer %d got %q from %v, want %q from %v", i, got, from, "echo:"+msg, dst)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	src := echo.sources()
	if len(src) != 3 {
		t.Fatalf("the real server saw sources %v, want one per peer (3)", src)
	}
	for s, n := range src {
		if s.Addr() != loopback || n != 20 {
			t.Errorf("source %v sent %d datagrams, want 20 from 127.0.0.1", s, n)
		}
	}
	flows := r.Flows()
	if len(flows) != 3 {
		t.Fatalf("flows %+v", flows)
	}
	for _, f := range flows {
		if f.In != 20 || f.Out != 20 || src[f.Local] != 20 {
			t.Errorf("flow %+v: want 20 each way, from the loopback port the server saw", f)
		}
		if l, ok := r.LocalFor(f.Peer); !ok || l != f.Local {
			t.Errorf("LocalFor(%v) = %v, %v", f.Peer, l, ok)
		}
	}
	if st := r.Stats(); st.In != 60 || st.Out != 60 || st.Flows != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestRelayServerFirst: the real side may send to a peer's loopback port at any time after the
// flow exists (a PBX calling a registered phone), and the datagram reaches the peer.
func TestRelayServerFirst(t *testing.T) {
	echo := newRealEcho(t)
	_, hs := startNetwork(t, "gw", "phone")
	r, err := hs[0].RelayToReal(0, echo.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	phone, err := hs[1].Net.ListenPacket("udp4", hs[1].IP.String()+":5070")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if _, _, _, err := roundTrip(phone, net.UDPAddrFromAddrPort(r.Addr()), "REGISTER", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	local, ok := r.LocalFor(netip.MustParseAddrPort(hs[1].IP.String() + ":5070"))
	if !ok {
		t.Fatalf("no flow for the phone: %+v", r.Flows())
	}
	// Another real socket (the PBX's RTP port, say) sends to the phone's loopback port.
	other, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteToUDPAddrPort([]byte("INVITE"), local); err != nil {
		t.Fatal(err)
	}
	phone.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, from, err := phone.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "INVITE" || from.String() != r.Addr().String() {
		t.Fatalf("phone got %q from %v (%v), want INVITE from the relay %v", buf[:n], from, err, r.Addr())
	}
}

// TestRelayFromReal: a real loopback client reaches a vnet server through the relay, both ways,
// and the vnet link's delay applies (real time: the round trip takes at least twice the delay).
func TestRelayFromReal(t *testing.T) {
	nw, err := netem.New("")
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := nw.AddHost("gw", "")
	srv, _ := nw.AddHost("srv", "")
	const oneWay = 20 * time.Millisecond
	if err := srv.Down.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: oneWay}}); err != nil {
		t.Fatal(err)
	}
	if err := nw.Start(); err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	sc, err := srv.Net.ListenPacket("udp4", srv.IP.String()+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := sc.ReadFrom(buf)
			if err != nil {
				return
			}
			sc.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	r, err := gw.RelayFromReal(netip.AddrPortFrom(loopback, 0), netip.AddrPortFrom(srv.IP, 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Addr().Addr().IsLoopback() || r.Addr().Port() == 0 {
		t.Fatalf("relay listens on %v, want a loopback port", r.Addr())
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		got, _, rtt, err := roundTrip(c, net.UDPAddrFromAddrPort(r.Addr()), fmt.Sprintf("hello %d", i), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got != fmt.Sprintf("HELLO %d", i) {
			t.Fatalf("got %q", got)
		}
		if rtt < oneWay || rtt > time.Second {
			t.Errorf("round trip %v: want at least the link's %v and well under a second", rtt, oneWay)
		}
	}
	if f := r.Flows(); len(f) != 1 || f[0].Local.Addr() != gw.IP {
		t.Errorf("flows %+v: want one, from a socket of the gateway host", f)
	}
}

// TestRelayIdleAndClose: idle flows are closed; Close ends every goroutine the relay started and
// the listening port stops answering.
func TestRelayIdleAndClose(t *testing.T) {
	echo := newRealEcho(t)
	_, hs := startNetwork(t, "gw", "a")
	before := runtime.NumGoroutine()
	r, err := netem.NewRelay(netem.RelayConfig{
		ListenNet: hs[0].Net, ListenAddr: netip.AddrPortFrom(hs[0].IP, 0),
		TargetNet: stdNet(t), TargetIP: loopback, Target: echo.addr(), IdleTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := hs[1].Net.ListenPacket("udp4", hs[1].IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(r.Addr())
	if _, _, _, err := roundTrip(c, dst, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Flows()); n != 1 {
		t.Fatalf("%d flows, want 1", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(r.Flows()) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(r.Flows()); n != 0 {
		t.Fatalf("%d flows after the idle timeout, want 0", n)
	}
	// A new datagram opens a new flow.
	if _, _, _, err := roundTrip(c, dst, "y", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, _, err := roundTrip(c, dst, "z", 200*time.Millisecond); err == nil {
		t.Fatal("the relay still answers after Close")
	}
	deadline = time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before the relay:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestRelayErrors(t *testing.T) {
	if _, err := netem.NewRelay(netem.RelayConfig{}); err == nil {
		t.Error("empty config: want an error")
	}
	_, hs := startNetwork(t, "gw")
	if _, err := hs[0].RelayToReal(0, netip.AddrPort{}); err == nil {
		t.Error("no target: want an error")
	}
}

func stdNet(t *testing.T) *stdnet.Net {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
