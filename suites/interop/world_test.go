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
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
	"github.com/siprtc/siprtc/lab/scenario"
)

const confDir = "../../freeswitch/conf"

// network is where a scenario runs.
type network struct {
	name     string
	emulated bool
}

var networks = []network{{"loopback", false}, {"the emulated network", true}}

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
	pbx      *pbx.Embedded
	gw       *gateway.Gateway
	httpAddr string
}

// inWorld builds a world, runs f in it and tears it down: in virtual time on the emulated
// network, in real time on loopback. f measures and returns what the spec asserts outside.
func inWorld[T any](n network, f func(w *world) (T, error), opts ...worldOption) (T, error) {
	log := logger()
	cfg := scenario.Config{Emulated: n.emulated, Seed: 7, ConfDir: confDir, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	return scenario.In(suiteT, cfg, func(sw *scenario.World) (T, error) {
		w := &world{World: sw, emulated: n.emulated, ctx: sw.Context(), log: log, nw: sw.Network(),
			hosts: map[string]host{}, pbx: sw.PBX(), gw: sw.Gateway(), httpAddr: sw.HTTPAddr()}
		for _, name := range scenario.Hosts {
			h := sw.Host(name)
			w.hosts[name] = host{net: h.Net, ip: h.IP, netem: h.Netem, dialer: h.Dial}
		}
		return f(w)
	})
}

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

// waitFor polls cond every 10 ms until it holds or d has passed.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	return scenario.WaitFor(ctx, d, cond)
}

// goroutines is the number of goroutines now (loopback leak checks).
func goroutines() int { return runtime.NumGoroutine() }
