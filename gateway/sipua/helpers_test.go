package sipua_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

const confDir = "../../freeswitch/conf"

// testLogger is silent unless SIPUA_DEBUG is set: sipgo keeps logging from timers after a test
// has ended, which testing's own log would not accept.
func testLogger() *slog.Logger {
	if os.Getenv("SIPUA_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestMain(m *testing.M) {
	sip.SetDefaultLogger(testLogger()) // sipgo logs a few things to its global logger only
	os.Exit(m.Run())
}

// networks are where the PBX specs run: real sockets on 127.0.0.1, or hosts on the lab's
// emulated network (lab/netem).
var networks = []string{"loopback", "vnet"}

// world is one test's network.
type world struct {
	t     testing.TB
	kind  string
	nw    *netem.Network // nil on loopback
	std   transport.Net
	hosts int
}

type host struct {
	net  transport.Net
	ip   netip.Addr
	link *netem.Host // nil on loopback
}

// run runs f as subtest kind, with its network: on the emulated network inside a synctest bubble
// (virtual time, and no goroutine may outlive the test), on loopback in real time.
func run(t *testing.T, kind string, f func(t *testing.T, ctx context.Context, w *world)) {
	t.Run(kind, func(t *testing.T) {
		body := func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			f(t, ctx, newWorld(t, kind))
		}
		if kind == "vnet" {
			synctest.Test(t, body)
			return
		}
		body(t)
	})
}

// eachNetwork runs f on every network.
func eachNetwork(t *testing.T, f func(t *testing.T, ctx context.Context, w *world)) {
	for _, kind := range networks {
		run(t, kind, f)
	}
}

func newWorld(t testing.TB, kind string) *world {
	t.Helper()
	w := &world{t: t, kind: kind}
	if kind == "loopback" {
		n, err := stdnet.NewNet()
		must(t, err)
		w.std = n
		return w
	}
	// 10.77/16 is inside the overlay's domains ACL; hosts placed in 10.99/16 are outside it.
	nw, err := netem.New("10.0.0.0/8")
	must(t, err)
	w.nw = nw
	t.Cleanup(func() { _ = nw.Close() })
	return w
}

// host adds a machine (in 10.77/16 on the emulated network); ip overrides the address.
func (w *world) host(name string, ip ...string) host {
	w.t.Helper()
	if w.nw == nil {
		return host{net: w.std, ip: netip.MustParseAddr("127.0.0.1")}
	}
	addr := ""
	if len(ip) > 0 {
		addr = ip[0]
	} else {
		w.hosts++
		addr = fmt.Sprintf("10.77.0.%d", 10+w.hosts)
	}
	h, err := w.nw.AddHost(name, addr)
	must(w.t, err)
	return host{net: h.Net, ip: h.IP, link: h}
}

func (w *world) start() {
	if w.nw != nil {
		must(w.t, w.nw.Start())
	}
}

// sinceStart is the time since the emulated network started (outages count from there).
func (w *world) sinceStart() time.Duration { return time.Since(w.nw.StartTime()) }

func startPBX(t testing.TB, ctx context.Context, h host, port int) *pbx.Embedded {
	t.Helper()
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: h.net, IP: h.ip, SIPPort: port, Logger: testLogger()})
	must(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// account is a directory user of the PBX with its password.
func account(p *pbx.Embedded, user string) sipua.Account {
	pw, _ := p.Password(user)
	return sipua.Account{User: user, Password: pw}
}

// startUA starts a user agent on h for the PBX's accounts users; tune adjusts its config.
func startUA(t testing.TB, ctx context.Context, h host, p *pbx.Embedded, users []string, tune func(*sipua.Config)) *sipua.UA {
	t.Helper()
	cfg := sipua.Config{Net: h.net, LocalIP: h.ip, Support100rel: true, Logger: testLogger()}
	if p != nil {
		cfg.Server, cfg.Domain = p.SIPAddr(), p.Domain()
		for _, u := range users {
			cfg.Accounts = append(cfg.Accounts, account(p, u))
		}
	} else {
		for _, u := range users {
			cfg.Accounts = append(cfg.Accounts, sipua.Account{User: u})
		}
	}
	if tune != nil {
		tune(&cfg)
	}
	ua, err := sipua.New(cfg)
	must(t, err)
	t.Cleanup(func() { _ = ua.Close() })
	must(t, ua.Start(ctx))
	return ua
}

// startPhone starts a lab phone for a directory user, registered.
func startPhone(t testing.TB, ctx context.Context, h host, p *pbx.Embedded, user string, opts ...sipphone.Option) *sipphone.Phone {
	t.Helper()
	pw, _ := p.Password(user)
	ph, err := sipphone.New(sipphone.Config{Net: h.net, LocalIP: h.ip, User: user, Password: pw, Domain: p.Domain(),
		Registrar: p.SIPAddr(), Support100rel: true, Logger: testLogger()}, opts...)
	must(t, err)
	t.Cleanup(func() { _ = ph.Close() })
	must(t, ph.Start(ctx))
	_, err = ph.Register(ctx, time.Hour)
	must(t, err)
	return ph
}

// sdp is a G.711 audio description at ip:port with a direction.
func sdp(ip netip.Addr, port int, version int, direction string) []byte {
	return fmt.Appendf(nil, "v=0\r\no=- 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=%s\r\n",
		version, ip, ip, port, direction)
}

// direction is the a= direction attribute of a description ("" when none).
func direction(body []byte) string {
	for _, line := range strings.Split(string(body), "\n") {
		switch d := strings.TrimPrefix(strings.TrimSpace(line), "a="); d {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return d
		}
	}
	return ""
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 10 ms for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
