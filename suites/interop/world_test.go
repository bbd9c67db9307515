package interop_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
	"github.com/siprtc/siprtc/lab/scenario"
)

const confDir = "../../freeswitch/conf"

// network is where a scenario runs: the network, and the PBX.
type network struct {
	name     string
	emulated bool
	backend  pbx.Backend
}

// asterisk tells whether the scenario runs against the Asterisk container.
func (n network) asterisk() bool { return n.backend == pbx.BackendAsterisk }

var (
	embeddedLoopback = network{"loopback", false, pbx.BackendEmbedded}
	embeddedEmulated = network{"the emulated network", true, pbx.BackendEmbedded}
)

// networks are where every scenario runs, for each PBX backend LAB_PBX selects (lab.Backends):
// the embedded PBX on loopback (real time) and on the emulated network (virtual time); each
// container PBX (Asterisk, FreeSWITCH when its image exists) on loopback, in real time. The
// container runs are the embedded loopback scenarios against a real PBX: the emulated network
// adds impairments, which the lab suites (setup, arq, fec, bwe) measure against the containers.
// A container backend that is not available skips its scenarios with the reason (or fails them
// when LAB_REQUIRE names it).
var networks = func() []network {
	var out []network
	for _, b := range lab.Backends() {
		if b == pbx.BackendEmbedded {
			out = append(out, embeddedLoopback, embeddedEmulated)
			continue
		}
		out = append(out, network{"loopback with the " + string(b) + " PBX", false, b})
	}
	return out
}()

// host is one machine of a world: its network stack, address and stream dialer.
type host struct {
	net    transport.Net
	ip     netip.Addr
	netem  *netem.Host // nil on loopback
	dialer webclient.DialFunc
}

type worldOption func(*scenario.Config)

func withTimeouts(t signaling.Timeouts) worldOption {
	return func(c *scenario.Config) {
		c.Gateway = append(c.Gateway, gateway.WithSignalingOptions(signaling.WithTimeouts(t)))
	}
}

func withSIP(f func(*sipua.Config)) worldOption { return func(c *scenario.Config) { c.SIP = f } }

// withConf appends lines to the gateway's rtx.conf.
func withConf(lines string) worldOption {
	return func(c *scenario.Config) { c.GatewayConf += lines }
}

// withCodecs sets the gateway's [media] codecs.
func withCodecs(list string) worldOption { return func(c *scenario.Config) { c.Codecs = list } }

// world is one scenario's lab (lab/scenario's World: the embedded PBX, the gateway, and the
// peers the scenario adds, on loopback or on the emulated network) with the interop suite's
// shortcuts.
type world struct {
	*scenario.World
	emulated bool
	ctx      context.Context
	log      *slog.Logger
	nw       *netem.Network
	hosts    map[string]host
	pbx      pbx.Controlled
	backend  pbx.Backend
	gw       *gateway.Gateway
	httpAddr string
}

// inWorld builds a world, runs f in it and tears it down: in virtual time on the emulated
// network, in real time on loopback. f measures and returns what the spec asserts outside.
//
// A container PBX's world skips the spec when the backend is unavailable (lab.UseBackend); it
// uses the suite's shared container (sharedPBX), and what the container printed during the
// spec is attached to the report when the spec fails.
func inWorld[T any](n network, f func(w *world) (T, error), opts ...worldOption) (T, error) {
	lab.UseBackend(n.backend)
	log := logger()
	cfg := scenario.Config{Emulated: n.emulated, Seed: 7, ConfDir: confDir, Logger: log, Backend: n.backend}
	if pbx.IsContainer(n.backend) {
		p, err := sharedPBX(n.backend)
		if err != nil {
			var zero T
			return zero, err
		}
		cfg.PBX, cfg.PBXLogs = p, lab.KeepPBXLogs()
	}
	for _, o := range opts {
		o(&cfg)
	}
	return scenario.In(suiteT, cfg, func(sw *scenario.World) (T, error) {
		w := &world{World: sw, emulated: n.emulated, ctx: sw.Context(), log: log, nw: sw.Network(),
			hosts: map[string]host{}, pbx: sw.PBX(), backend: n.backend, gw: sw.Gateway(), httpAddr: sw.HTTPAddr()}
		for _, name := range scenario.Hosts {
			h := sw.Host(name)
			w.hosts[name] = host{net: h.Net, ip: h.IP, netem: h.Netem, dialer: h.Dial}
		}
		return f(w)
	})
}

var (
	sharedMu sync.Mutex
	shared   = map[pbx.Backend]pbx.Controlled{}
)

// sharedPBX returns the suite's container of backend b, started on first use and closed after
// the suite: the scenarios share one container per backend (its start would otherwise be a good
// part of a short scenario's time), and each world hangs up whatever the container still holds
// before using it (scenario.Config.PBX).
func sharedPBX(b pbx.Backend) (pbx.Controlled, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if p, ok := shared[b]; ok {
		return p, nil
	}
	p, err := scenario.StartPBX(context.Background(), b, confDir, logger().With("who", "pbx"))
	if err != nil {
		return nil, err
	}
	shared[b] = p
	return p, nil
}

var _ = AfterSuite(func() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for b, p := range shared {
		Expect(p.Close()).To(Succeed(), "closing the shared %s PBX", b)
		delete(shared, b)
	}
})

func logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("INTEROP_LOG") == "debug" {
		level = slog.LevelDebug
	} else if os.Getenv("INTEROP_LOG") == "info" {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: level}))
}

// phone starts and registers a SIP phone for a directory user.
func (w *world) phone(user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	return w.Phone(user, opts...)
}

// client builds a WebRTC client for user and logs it in.
func (w *world) client(user string, opts ...webclient.Option) (*webclient.Client, error) {
	return w.Client(user, opts...)
}

// callPhone places a call from cl to number, which rings phone, and waits until the gateway
// reports it accepted and the phone holds it; it returns the client's call, the phone's and the
// ACCEPTED_BY_REMOTE event.
func callPhone(ctx context.Context, cl *webclient.Client, phone *sipphone.Phone, number string) (*webclient.Call, *sipphone.Call, webclient.StateEvent, error) {
	c, err := cl.Call(ctx, number)
	if err != nil {
		return nil, nil, webclient.StateEvent{}, err
	}
	acc, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
	if err != nil {
		return c, nil, acc, err
	}
	if err := waitFor(ctx, 5*time.Second, func() bool { return len(phone.Calls()) == 1 }); err != nil {
		return c, nil, acc, err
	}
	return c, phone.Calls()[0], acc, nil
}

// audioCall starts phone 1001 and client alice, has alice call 1001 (answered at once) and
// waits until the client receives audio.
func (w *world) audioCall(ctx context.Context) (*webclient.Call, *sipphone.Call, error) {
	phone, err := w.phone("1001")
	if err != nil {
		return nil, nil, err
	}
	cl, err := w.client("alice")
	if err != nil {
		return nil, nil, err
	}
	c, pc, _, err := callPhone(ctx, cl, phone, "1001")
	if err != nil {
		return nil, nil, err
	}
	return c, pc, c.WaitMedia(ctx, 25, 0)
}

// newClient builds a client without connecting it.
func (w *world) newClient(user string, opts ...webclient.Option) (*webclient.Client, error) {
	return w.NewClient(user, nil, opts...)
}

// newClientWith builds a client whose Config edit adjusts (nil: none), without connecting it.
func (w *world) newClientWith(user string, edit func(*webclient.Config), opts ...webclient.Option) (*webclient.Client, error) {
	return w.NewClient(user, edit, opts...)
}

// get fetches a path of the gateway's HTTP side from the client host.
func (w *world) get(path string) (int, []byte, error) {
	h := w.hosts["client"]
	tr := &http.Transport{DialContext: h.dialer, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	res, err := c.Get("http://" + w.httpAddr + path)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// health is /healthz's status and report.
func (w *world) health() (int, gateway.Health, error) {
	code, body, err := w.get("/healthz")
	var h gateway.Health
	if err == nil {
		err = json.Unmarshal(body, &h)
	}
	return code, h, err
}

// records are the CDR lines written so far.
func (w *world) records() []call.Record {
	var out []call.Record
	for _, line := range w.CDR() {
		var r call.Record
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// quiesce waits until the gateway and the PBX hold no call.
func (w *world) quiesce() error { return w.Quiesce(10 * time.Second) }

// pbxCalls is the PBX's count of calls in progress (-1 when its control socket fails).
func (w *world) pbxCalls() int {
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	n, err := w.pbx.ActiveCalls(ctx)
	if err != nil {
		return -1
	}
	return n
}

// waitFor polls cond every 10 ms until it holds or d has passed.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	return scenario.WaitFor(ctx, d, cond)
}

// goroutines is the number of goroutines now (loopback leak checks).
func goroutines() int { return runtime.NumGoroutine() }
