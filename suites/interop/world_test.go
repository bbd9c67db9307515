package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
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

// worldConfig tunes a world.
type worldConfig struct {
	timeouts signaling.Timeouts
	sip      func(*sipua.Config)
	conf     string // extra rtx.conf lines
	codecs   string // [media] codecs
}

type worldOption func(*worldConfig)

func withTimeouts(t signaling.Timeouts) worldOption {
	return func(c *worldConfig) { c.timeouts = t }
}

func withSIP(f func(*sipua.Config)) worldOption { return func(c *worldConfig) { c.sip = f } }

// withConf appends lines to the gateway's rtx.conf.
func withConf(lines string) worldOption { return func(c *worldConfig) { c.conf += lines } }

// withCodecs sets the gateway's [media] codecs.
func withCodecs(list string) worldOption { return func(c *worldConfig) { c.codecs = list } }

// world is one scenario's lab: the embedded PBX, the gateway, and whatever peers the scenario
// adds, on loopback or on an emulated network. close tears it all down.
type world struct {
	emulated bool
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	nw       *netem.Network
	hosts    map[string]host
	pbx      *pbx.Embedded
	gw       *gateway.Gateway
	httpAddr string // the gateway's HTTP side, ip:port
	secret   []byte
	cdr      *lineBuffer
	served   chan struct{}
	closers  []func() error
}

// inWorld builds a world, runs f in it and tears it down: in virtual time on the emulated
// network, in real time on loopback. f measures and returns what the spec asserts outside.
func inWorld[T any](n network, f func(w *world) (T, error), opts ...worldOption) (T, error) {
	run := func() (T, error) {
		var zero T
		w, err := newWorld(n.emulated, opts...)
		if err != nil {
			if w != nil {
				err = errors.Join(err, w.close())
			}
			return zero, err
		}
		res, err := f(w)
		return res, errors.Join(err, w.close())
	}
	if n.emulated {
		return lab.Virtual(suiteT, run)
	}
	return run()
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

func newWorld(emulated bool, opts ...worldOption) (*world, error) {
	wc := worldConfig{codecs: "opus,g722,pcmu,pcma,vp8,h264"}
	for _, o := range opts {
		o(&wc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{emulated: emulated, ctx: ctx, cancel: cancel, log: logger(), hosts: map[string]host{},
		secret: []byte("interop-secret-0123456789"), cdr: &lineBuffer{}, served: make(chan struct{})}
	names := []string{"pbx", "gateway", "phone", "client"}
	if emulated {
		nw, err := netem.New("", netem.WithSeed(7))
		if err != nil {
			return nil, err
		}
		w.nw = nw
		w.closers = append(w.closers, nw.Close)
		for _, name := range names {
			h, err := nw.AddHost(name, "")
			if err != nil {
				return w, err
			}
			w.hosts[name] = host{net: h.Net, ip: h.IP, netem: h, dialer: h.Stream.DialContext}
		}
		if err := nw.Start(); err != nil {
			return w, err
		}
	} else {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		lo := netip.MustParseAddr("127.0.0.1")
		for _, name := range names {
			w.hosts[name] = host{net: std, ip: lo, dialer: (&net.Dialer{}).DialContext}
		}
	}

	ph := w.hosts["pbx"]
	port := 0
	if !emulated {
		port = pbx.AnyPort
	}
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: ph.net, IP: ph.ip, SIPPort: port, Logger: w.log.With("who", "pbx")})
	if err != nil {
		return w, fmt.Errorf("pbx: %w", err)
	}
	w.pbx = p
	w.closers = append(w.closers, p.Close)

	password, _ := p.Password("1000")
	conf := fmt.Sprintf(`[global]
sip_svr=%s
[rtm2sip]
on=1
acc_rule=10[05-09]
[proxy]
on=1
sip_account=1000
sip_pwd=%s
[signaling]
app_secret=%s
[media]
codecs=%s
video=1
[sip]
options_interval=5
%s`, p.SIPAddr(), password, w.secret, wc.codecs, wc.conf)
	cfg, _, err := config.Parse(strings.NewReader(conf), "interop.conf")
	if err != nil {
		return w, fmt.Errorf("config: %w", err)
	}
	gh := w.hosts["gateway"]
	sigOpts := []signaling.Option{}
	if wc.timeouts != (signaling.Timeouts{}) {
		sigOpts = append(sigOpts, signaling.WithTimeouts(wc.timeouts))
	}
	g, err := gateway.New(cfg,
		gateway.WithNet(gh.net), gateway.WithLocalIP(gh.ip), gateway.WithLogger(w.log.With("who", "gateway")),
		gateway.WithCDR(w.cdr), gateway.WithSignalingOptions(sigOpts...),
		gateway.WithSIP(func(c *sipua.Config) {
			if !emulated {
				c.Port = 0
			}
			c.RetryMin, c.RetryMax = 500*time.Millisecond, 2*time.Second
			c.Stagger = time.Millisecond
			if wc.sip != nil {
				wc.sip(c)
			}
		}))
	if err != nil {
		return w, fmt.Errorf("gateway: %w", err)
	}
	w.gw = g
	if err := g.Start(ctx); err != nil {
		return w, fmt.Errorf("gateway start: %w", err)
	}
	var l net.Listener
	if emulated {
		l, err = gh.netem.Stream.Listen("tcp", netip.AddrPortFrom(gh.ip, 8080).String())
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return w, err
	}
	w.httpAddr = l.Addr().String()
	go func() {
		defer close(w.served)
		_ = g.Serve(l)
	}()
	if err := waitFor(ctx, 10*time.Second, func() bool { return g.Healthy().Healthy && allRegistered(g) }); err != nil {
		return w, fmt.Errorf("gateway not registered: %+v", g.Healthy())
	}
	return w, nil
}

func allRegistered(g *gateway.Gateway) bool {
	for _, r := range g.Registrations() {
		if r.State != sipua.Registered {
			return false
		}
	}
	return true
}

// close tears the world down, newest first; every goroutine has ended when it returns.
func (w *world) close() error {
	var errs []error
	if w.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, w.gw.Close(ctx))
		cancel()
		select {
		case <-w.served:
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("HTTP server did not stop"))
		}
	}
	for i := len(w.closers) - 1; i >= 0; i-- {
		if err := w.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	w.cancel()
	return errors.Join(errs...)
}

// phone starts and registers a SIP phone for a directory user.
func (w *world) phone(user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	h := w.hosts["phone"]
	pw, _ := w.pbx.Password(user)
	ph, err := sipphone.New(sipphone.Config{
		Net: h.net, LocalIP: h.ip, User: user, Password: pw, Domain: w.pbx.Domain(),
		Registrar: w.pbx.SIPAddr(), Support100rel: true, Logger: w.log.With("who", "phone "+user),
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := ph.Start(w.ctx); err != nil {
		return nil, err
	}
	// Closed before the gateway's teardown would hang up its calls: phones go first.
	w.closers = append(w.closers, ph.Close)
	if _, err := ph.Register(w.ctx, time.Minute); err != nil {
		return nil, fmt.Errorf("register %s: %w", user, err)
	}
	return ph, nil
}

// client builds a WebRTC client for user and logs it in.
func (w *world) client(user string, opts ...webclient.Option) (*webclient.Client, error) {
	cl, err := w.newClient(user, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		return nil, fmt.Errorf("client %s: %w", user, err)
	}
	return cl, nil
}

// newClient builds a client without connecting it.
func (w *world) newClient(user string, opts ...webclient.Option) (*webclient.Client, error) {
	return w.newClientWith(user, nil, opts...)
}

// newClientWith builds a client whose Config edit adjusts (nil: none), without connecting it.
func (w *world) newClientWith(user string, edit func(*webclient.Config), opts ...webclient.Option) (*webclient.Client, error) {
	h := w.hosts["client"]
	cfg := webclient.Config{
		URL: "ws://" + w.httpAddr + signaling.Path, Dial: h.dialer, Net: h.net, LocalIP: h.ip,
		User: user, Token: signaling.MakeToken(w.secret, user, time.Now().Add(time.Hour)),
		Logger: w.log.With("who", "client "+user),
	}
	if edit != nil {
		edit(&cfg)
	}
	cl, err := webclient.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, cl.Close)
	return cl, nil
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
	for _, line := range w.cdr.lines() {
		var r call.Record
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// quiesce waits until the gateway and the PBX hold no call.
func (w *world) quiesce() error {
	return waitFor(w.ctx, 10*time.Second, func() bool { return w.gw.ActiveCalls() == 0 && w.pbx.ActiveCalls() == 0 })
}

// waitFor polls cond every 10 ms until it holds or d has passed.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// lineBuffer collects written lines (CDRs) safely.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// goroutines is the number of goroutines now (loopback leak checks).
func goroutines() int { return runtime.NumGoroutine() }
