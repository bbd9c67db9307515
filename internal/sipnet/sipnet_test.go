package sipnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
)

// testLogger is silent unless SIPNET_DEBUG is set: sipgo keeps logging from timers after a test
// has ended, which testing's own log would not accept.
func testLogger() *slog.Logger {
	if os.Getenv("SIPNET_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestMain(m *testing.M) {
	sip.SetDefaultLogger(testLogger()) // sipgo logs a few things to its global logger only
	os.Exit(m.Run())
}

// both runs f in real time and inside a synctest bubble (where a goroutine outliving the test
// fails it).
func both(t *testing.T, f func(t *testing.T)) {
	t.Run("realtime", f)
	t.Run("synctest", func(t *testing.T) { synctest.Test(t, f) })
}

// routed is a vnet router (10.77.0.0/24) with two hosts, the lab's usual set-up.
func routed(t *testing.T) (a, b transport.Net, aIP, bIP netip.Addr) {
	t.Helper()
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.77.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	host := func(ip netip.Addr) transport.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip.String()}})
		if err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	aIP, bIP = netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("10.77.0.3")
	a, b = host(aIP), host(bIP)
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = router.Stop() })
	return a, b, aIP, bIP
}

// loopbackNet is a vnet host without a router: its stacks talk over the host's virtual 127.0.0.1.
// Tests that provoke sipgo's own sockets use it, so that a regression sends its stray packets to
// the machine's loopback, never to a virtual 10.77.x.x address on the real network.
func loopbackNet(t *testing.T) transport.Net {
	t.Helper()
	n, err := vnet.NewNet(&vnet.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var loopback = netip.MustParseAddr("127.0.0.1")

func listen(t *testing.T, n transport.Net, bind netip.AddrPort) *Stack {
	t.Helper()
	s, err := Listen(Config{Net: n, Bind: bind, UserAgent: "sipnet-test", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func serve(t *testing.T, s *Stack) {
	t.Helper()
	if err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func options(to netip.AddrPort) *sip.Request {
	return sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "probe", Host: to.Addr().String(), Port: int(to.Port())})
}

// osUDPSockets counts the UDP sockets this process holds in the operating system: the sockets
// among /proc/self/fd whose inodes /proc/self/net/udp{,6} list. Everything of a vnet lives in
// memory, so any OS UDP socket appearing during a test was opened by sipgo on its own.
func osUDPSockets(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		if strings.Contains(os.Getenv("LAB_REQUIRE"), "procfs") {
			t.Fatalf("LAB_REQUIRE names procfs but this is %s: counting the process's UDP sockets needs Linux's /proc", runtime.GOOS)
		}
		t.Skip("counting the process's UDP sockets needs Linux's /proc (set LAB_REQUIRE=procfs to make this a failure)")
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 9 && mine[fields[9]] {
				n++
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// checkOSSockets fails the test if the process holds more OS UDP sockets than before. Those are
// sipgo's own: it then closes the stacks' transport layers, which closes them and ends their
// readers, so that a synctest bubble can still end.
func checkOSSockets(t *testing.T, before int, what string, stacks ...*Stack) {
	t.Helper()
	if got := osUDPSockets(t); got != before {
		for _, s := range stacks {
			_ = s.UA.Close()
		}
		t.Fatalf("%s: %d OS UDP sockets, want %d: sipgo opened its own", what, got, before)
	}
}

// TestRequestResponse runs an OPTIONS transaction between two stacks on routed vnet hosts, then
// closes both: serving ends, and (in the bubble) no goroutine is left.
func TestRequestResponse(t *testing.T) {
	both(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		aNet, bNet, aIP, bIP := routed(t)
		a := listen(t, aNet, netip.AddrPortFrom(aIP, 5060))
		b := listen(t, bNet, netip.AddrPortFrom(bIP, 0))
		var got atomic.Pointer[sip.Request]
		a.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			got.Store(req)
			res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
			res.AppendHeader(sip.NewHeader("X-Served-By", a.Addr.String()))
			_ = tx.Respond(res)
		})
		serve(t, a)
		serve(t, b)
		if b.Addr.Addr() != bIP || b.Addr.Port() == 0 {
			t.Fatalf("b serves on %v, want %v and a port", b.Addr, bIP)
		}

		res, err := b.Client.Do(ctx, options(a.Addr))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != sip.StatusOK || res.GetHeader("X-Served-By").Value() != a.Addr.String() {
			t.Fatalf("response %d %v, want a's 200", res.StatusCode, res.GetHeader("X-Served-By"))
		}
		req := got.Load()
		if via := req.Via(); via.Host != bIP.String() || via.Port != int(b.Addr.Port()) {
			t.Errorf("request came with Via %s, want b's socket %v", via, b.Addr)
		}
		if src := req.Source(); src != b.Addr.String() {
			t.Errorf("request came from %s, want b's socket %v", src, b.Addr)
		}
		if peers := a.Peers(); !slices.Equal(peers, []string{b.Addr.String()}) {
			t.Errorf("a's peers %v, want [%v]", peers, b.Addr)
		}

		select {
		case <-a.Done():
			t.Fatal("a stopped serving before Close")
		default:
		}
		for _, s := range []*Stack{a, b} {
			if err := s.Close(); err != nil {
				t.Errorf("close %v: %v", s.Addr, err)
			}
			select {
			case <-s.Done():
			default:
				t.Errorf("%v: Done still open after Close", s.Addr)
			}
		}
	})
}

// TestSipgoOpensSocketOnPoolMiss shows the hazard this package exists for, and that
// osUDPSockets sees it: plain sipgo, its pool cleared by UserAgent.Close while its socket is
// still read, handles a second request from a peer it already knows by opening an OS socket (to
// answer on the machine's loopback here). If this fails, sipgo no longer does so and the package
// doc needs a look.
func TestSipgoOpensSocketOnPoolMiss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := loopbackNet(t)
	pc, err := n.ListenPacket("udp4", "127.0.0.1:45060")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(testLogger())),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(testLogger())))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(testLogger()))
	handled := make(chan struct{}, 2)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		handled <- struct{}{}
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeUDP(pc)
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-served
		_ = ua.Close() // closes the OS socket sipgo opened
	})
	peer := listen(t, n, netip.AddrPortFrom(loopback, 45062))
	serve(t, peer)
	send := func() {
		t.Helper()
		if err := peer.Client.WriteRequest(options(netip.MustParseAddrPort("127.0.0.1:45060"))); err != nil {
			t.Fatal(err)
		}
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("request not handled")
		}
	}

	before := osUDPSockets(t)
	send()
	if got := osUDPSockets(t); got != before {
		t.Fatalf("%d OS UDP sockets after a request with the pool intact, want %d", got, before)
	}
	_ = ua.Close() // clears the pool; the read loop goes on
	send()
	if got := osUDPSockets(t); got != before+1 {
		t.Fatalf("%d OS UDP sockets after a request with the pool cleared, want sipgo's own: %d", got, before+1)
	}
}

// TestNoOSSocketAfterClose checks the pool lookups sipgo makes for a request from a known peer
// (and for a client request) after Close: they find the closed socket, so writes fail and no OS
// socket is opened. This is the state a request read just before Close is handled in.
func TestNoOSSocketAfterClose(t *testing.T) {
	both(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n := loopbackNet(t)
		a := listen(t, n, netip.AddrPortFrom(loopback, 45070))
		b := listen(t, n, netip.AddrPortFrom(loopback, 45072))
		a.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
		serve(t, a)
		serve(t, b)
		before := osUDPSockets(t)
		if _, err := b.Client.Do(ctx, options(a.Addr)); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}

		// What a server transaction does for a request from b: look b's address up.
		req := options(b.Addr)
		req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
			Host: a.Addr.Addr().String(), Port: int(a.Addr.Port()), Params: sip.NewParams()})
		conn, err := a.UA.TransportLayer().ClientRequestConnection(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if conn.LocalAddr().String() != a.Addr.String() {
			t.Errorf("lookup of b after Close gave a connection on %v, want a's socket %v", conn.LocalAddr(), a.Addr)
		}
		if err := conn.WriteMsg(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)); err == nil {
			t.Error("writing on the closed socket succeeded")
		}
		_, _ = conn.TryClose()
		checkOSSockets(t, before, "lookup after Close", a, b)

		// And the stack's own client.
		if _, err := a.Client.Do(ctx, options(b.Addr)); err == nil {
			t.Error("a request after Close succeeded")
		}
		if err := a.Client.WriteRequest(options(b.Addr)); err == nil {
			t.Error("writing a request after Close succeeded")
		}
		checkOSSockets(t, before, "after Close", a, b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRequestsDuringClose floods a stack with requests (transactions, and ACKs outside any, as
// after a 2xx) from a peer it already knows while it closes, over and over: sipgo never opens an
// OS socket to answer one, and (in the bubble) every goroutine ends.
func TestRequestsDuringClose(t *testing.T) {
	both(t, func(t *testing.T) {
		n := loopbackNet(t)
		before := osUDPSockets(t)
		for round := range 20 {
			a := listen(t, n, netip.AddrPortFrom(loopback, 45080))
			b := listen(t, n, netip.AddrPortFrom(loopback, 45082))
			var handled atomic.Int64
			a.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
				handled.Add(1)
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
			})
			a.Server.OnAck(func(*sip.Request, sip.ServerTransaction) { handled.Add(1) })
			serve(t, a)
			serve(t, b)

			stop := make(chan struct{})
			var flood sync.WaitGroup
			flood.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					req := options(a.Addr)
					if i%2 == 1 {
						req = sip.NewRequest(sip.ACK, req.Recipient)
					}
					_ = b.Client.WriteRequest(req)
					// No sleeping in a round: an OS socket's reader would keep the bubble's
					// clock from advancing, and the test would hang instead of failing.
					runtime.Gosched()
				}
			})
			for handled.Load() < 10 {
				runtime.Gosched()
			}
			if err := a.Close(); err != nil {
				t.Fatalf("round %d: close: %v", round, err)
			}
			close(stop)
			flood.Wait()
			if err := b.Close(); err != nil {
				t.Fatalf("round %d: close peer: %v", round, err)
			}
			checkOSSockets(t, before, fmt.Sprintf("round %d", round), a, b)
		}
	})
}

// failingNet hands out sockets whose reads fail on demand with an error other than a close.
type failingNet struct {
	transport.Net
	fail chan error
}

type failingConn struct {
	net.PacketConn
	fail chan error
}

func (n *failingNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &failingConn{PacketConn: pc, fail: n.fail}, nil
}

func (c *failingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	type result struct {
		n    int
		addr net.Addr
		err  error
	}
	got := make(chan result, 1)
	go func() {
		n, addr, err := c.PacketConn.ReadFrom(b)
		got <- result{n, addr, err}
	}()
	select {
	case r := <-got:
		return r.n, r.addr, r.err
	case err := <-c.fail:
		return 0, nil, err // the read above ends when the socket closes
	}
}

// TestSocketFailureKeepsPool breaks the socket under sipgo's read loop: serving ends (Done), and
// a request from a known peer still finds the socket rather than making sipgo open one.
func TestSocketFailureKeepsPool(t *testing.T) {
	both(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fn := &failingNet{Net: loopbackNet(t), fail: make(chan error, 1)}
		a := listen(t, fn, netip.AddrPortFrom(loopback, 45090))
		b := listen(t, fn.Net, netip.AddrPortFrom(loopback, 45092))
		a.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
		serve(t, a)
		serve(t, b)
		before := osUDPSockets(t)
		if _, err := b.Client.Do(ctx, options(a.Addr)); err != nil {
			t.Fatal(err)
		}
		fn.fail <- errors.New("injected read failure")
		select {
		case <-a.Done():
		case <-ctx.Done():
			t.Fatal("serving did not end on a read failure")
		}
		req := options(b.Addr)
		req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
			Host: a.Addr.Addr().String(), Port: int(a.Addr.Port()), Params: sip.NewParams()})
		conn, err := a.UA.TransportLayer().ClientRequestConnection(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.TryClose()
		if conn.LocalAddr().String() != a.Addr.String() {
			t.Errorf("lookup of b after the failure gave a connection on %v, want a's socket %v", conn.LocalAddr(), a.Addr)
		}
		checkOSSockets(t, before, "after the failure", a, b)
		for _, s := range []*Stack{a, a, b} {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestCloseIsIdempotent closes stacks more than once, concurrently, before and after Serve.
func TestCloseIsIdempotent(t *testing.T) {
	both(t, func(t *testing.T) {
		n := loopbackNet(t)

		// Never served: Close releases the socket and Done closes.
		idle := listen(t, n, netip.AddrPortFrom(loopback, 45100))
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		<-idle.Done()
		if err := idle.Serve(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Serve after Close: %v, want ErrClosed", err)
		}
		again := listen(t, n, netip.AddrPortFrom(loopback, 45100)) // the port is free again

		serve(t, again)
		if err := again.Serve(context.Background()); !errors.Is(err, ErrServing) {
			t.Errorf("second Serve: %v, want ErrServing", err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() { errs <- again.Close() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		<-again.Done()
		if err := again.Close(); err != nil {
			t.Error(err)
		}
	})
}

// TestServeGivesUpWithContext checks that Serve's wait is bounded by its context and that the
// stack still closes cleanly after.
func TestServeGivesUpWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := listen(t, loopbackNet(t), netip.AddrPortFrom(loopback, 45110))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// sipgo may or may not have started reading: both outcomes are fine, but not a hang.
		if err := s.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve with a done context: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestListenRejectsBadConfig(t *testing.T) {
	n := loopbackNet(t)
	for _, cfg := range []Config{
		{Bind: netip.AddrPortFrom(loopback, 0)},
		{Net: n},
		{Net: n, Bind: netip.MustParseAddrPort("0.0.0.0:5060")},
	} {
		if s, err := Listen(cfg); err == nil {
			_ = s.Close()
			t.Errorf("Listen(%+v) succeeded", cfg)
		}
	}
	if _, err := Listen(Config{Net: n, Bind: netip.MustParseAddrPort("10.1.2.3:5060")}); err == nil {
		t.Error("binding an address the host does not have succeeded")
	} else if !strings.Contains(err.Error(), "10.1.2.3:5060") {
		t.Errorf("bind error %q does not name the address", err)
	}
}
