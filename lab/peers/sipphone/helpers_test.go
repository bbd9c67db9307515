package sipphone

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/transport/v5/vnet"

	"github.com/siprtc/siprtc/internal/sipnet"
)

// testLogger is silent unless SIPPHONE_DEBUG is set: sipgo keeps logging from timers after a
// test has ended, which testing's own log would not accept.
func testLogger() *slog.Logger {
	if os.Getenv("SIPPHONE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// vnetMu serializes building vnet routers and hosts: pion's vnet numbers their MAC addresses
// with a package-level counter it does not lock, so parallel tests that build networks race.
var vnetMu sync.Mutex

// testNetwork hands out transport.Nets with their own addresses: loopback on the host (127.0.0.1
// only), or hosts 10.77.0.2, .3, ... on a pion vnet router.
type testNetwork struct {
	name   string
	router *vnet.Router
	next   int
}

func newTestNetwork(t testing.TB, name string) *testNetwork {
	t.Helper()
	n := &testNetwork{name: name, next: 2}
	if name == "vnet" {
		vnetMu.Lock()
		router, err := vnet.NewRouter(&vnet.RouterConfig{
			CIDR:          "10.77.0.0/24",
			LoggerFactory: logging.NewDefaultLoggerFactory(),
		})
		vnetMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		n.router = router
	}
	return n
}

// host returns a Net and the address to bind on it. Call start after the last host was added.
func (n *testNetwork) host(t testing.TB) (transport.Net, netip.Addr) {
	t.Helper()
	if n.router == nil {
		nw, err := stdnet.NewNet()
		if err != nil {
			t.Fatal(err)
		}
		return nw, netip.MustParseAddr("127.0.0.1")
	}
	ip := netip.AddrFrom4([4]byte{10, 77, 0, byte(n.next)})
	n.next++
	vnetMu.Lock()
	nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip.String()}})
	vnetMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.router.AddNet(nw); err != nil {
		t.Fatal(err)
	}
	return nw, ip
}

// serveSIP serves a plain sipgo stack on nw (a test's registrar or caller) with the handlers
// handle registers. Closing it is registered as a cleanup; tests may close it earlier.
func serveSIP(t testing.TB, nw transport.Net, bind netip.AddrPort, handle func(*sipgo.Server)) *sipnet.Stack {
	t.Helper()
	s, err := sipnet.Listen(sipnet.Config{Net: nw, Bind: bind, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if handle != nil {
		handle(s.Server)
	}
	if err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (n *testNetwork) start(t testing.TB) {
	t.Helper()
	if n.router == nil {
		return
	}
	if err := n.router.Start(); err != nil {
		t.Fatal(err)
	}
}

func (n *testNetwork) stop() {
	if n.router != nil {
		_ = n.router.Stop()
	}
}

// newPhone builds and starts a phone on a new host of the network; Close is left to the caller
// (tests check it) but registered as a cleanup too.
func newPhone(t testing.TB, n *testNetwork, user string, tune func(*Config), opts ...Option) *Phone {
	t.Helper()
	nw, ip := n.host(t)
	cfg := Config{Net: nw, LocalIP: ip, User: user, Logger: testLogger()}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func startPhones(t testing.TB, ctx context.Context, phones ...*Phone) {
	t.Helper()
	for _, p := range phones {
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func waitClosed(t testing.TB, what string, ch <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not done after %v", what, d)
	}
}
