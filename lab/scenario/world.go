// Package scenario builds the lab's worlds and runs its measurements: a World is one lab (the
// PBX, the gateway, and the peers that call through them, on the emulated network or on
// loopback); the runs (call setup, ARQ, FEC, BWE) place calls in a World and return what
// lab/metrics makes of the peers' logs. The suites under suites/ assert on those results; `make
// lab` reports them.
package scenario

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// The hosts of every world. Link configurations and scenario files name them.
const (
	HostPBX     = "pbx"
	HostGateway = "gateway"
	HostPhone   = "phone"
	HostClient  = "client"
)

// Hosts lists the world's hosts in the order they get addresses on the emulated network
// (10.77.0.1, .2, ...; with a container PBX only the gateway and the client are emulated, and
// get the first two).
var Hosts = []string{HostPBX, HostGateway, HostPhone, HostClient}

// DefaultCodecs is the gateway's [media] codecs unless Config.Codecs says otherwise.
const DefaultCodecs = "opus,g722,pcmu,pcma,vp8,h264"

// Link is the two directions of one host's link: Up shapes what the host sends, Down what it
// receives.
type Link struct {
	Up, Down netem.LinkConfig
}

// Config describes a world. The zero value is an unimpaired world on loopback with the
// embedded PBX.
type Config struct {
	// Emulated puts the world on the emulated network (In runs it inside lab.Virtual, in
	// virtual time, unless its PBX is a container); otherwise everything runs on 127.0.0.1 in
	// real time and Links is unused.
	Emulated bool
	// Backend is the PBX: pbx.BackendEmbedded (or "", the default) runs the embedded PBX in
	// the test process, on the world's network; pbx.BackendAsterisk and pbx.BackendFreeSWITCH
	// start a container (host networking, every socket on 127.0.0.1) serving the same ConfDir.
	// A container runs in real time, so a world with one never runs in a synctest bubble (In
	// runs it in real time, the emulated network on its real-time clock), and on the emulated
	// network it is split: the PBX, the phone and the gateway's SIP and RTP leg are real
	// (loopback), the client and the gateway's WebRTC leg and signalling are emulated, so the
	// client's link is impaired as in any emulated world while no emulated address ever
	// reaches a real socket. Links may then name only the client and the gateway.
	Backend pbx.Backend
	// PBXLogs, when set, gets a container PBX's output (its console log) when the world
	// closes: the suites attach it to a failing spec's report (lab.KeepPBXLogs). With a
	// shared PBX, only what it printed during the world's life.
	PBXLogs func(b pbx.Backend, logs string)
	// PBX, when set, is a running container PBX (StartPBX) the world uses instead of starting
	// one, and leaves running: a suite shares one container among its specs, saving the
	// container's start per spec. Its backend is the world's (Backend may be left empty). The
	// world hangs up whatever call the PBX still holds before using it; registrations left by
	// earlier worlds are replaced as the accounts register again (one contact per user).
	PBX pbx.Controlled
	// Seed seeds the emulated network's random models (0: netem's default).
	Seed int64
	// Links impairs hosts' links, by host name (HostClient, ...); absent hosts are perfect.
	Links map[string]Link
	// ConfDir is the FreeSWITCH configuration the PBX serves (the embedded PBX loads it, a
	// container's configuration is made from it; a shared PBX has its own); "" finds
	// freeswitch/conf of the module the working directory is in.
	ConfDir string
	// Codecs is the gateway's [media] codecs (DefaultCodecs when empty).
	Codecs string
	// GatewayConf is appended to the gateway's rtx.conf (extra keys and sections).
	GatewayConf string
	// Gateway are extra gateway options (RTC tweaks, signalling timeouts, ...).
	Gateway []gateway.Option
	// SIP adjusts the gateway's SIP user agent after the world's defaults.
	SIP func(*sipua.Config)
	// Logger gets every component's logs, tagged with "who"; nil discards them.
	Logger *slog.Logger
}

// Host is one machine of a world: its network stack, address and stream dialer. With a
// container PBX on the emulated network, the gateway host is its WebRTC side (the emulated
// one); its SIP and RTP leg is on loopback.
type Host struct {
	Name  string
	Net   transport.Net
	IP    netip.Addr
	Netem *netem.Host // nil on loopback, and for the real hosts of a split world
	Dial  webclient.DialFunc
}

// World is one running lab. Its methods are safe for concurrent use; Close tears everything
// down, newest first, and returns once every goroutine the world started has ended.
type World struct {
	cfg      Config
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	nw       *netem.Network
	hosts    map[string]Host
	pbx      pbx.Controlled
	embedded *pbx.Embedded // nil with a container PBX
	gw       *gateway.Gateway
	// sipNet and sipIP are the gateway's SIP and RTP side: its host's, except in a split
	// world (loopback).
	sipNet   transport.Net
	sipIP    netip.Addr
	httpAddr string
	secret   []byte
	cdr      *LineBuffer
	served   chan struct{}

	mu      sync.Mutex
	peers   []func() error // closed first, newest first
	closers []func() error // the network and the PBX: closed after the gateway
}

// New builds and starts a world: network, PBX, gateway (registered, serving signalling). On
// error, whatever was started is stopped.
func New(cfg Config) (w *World, err error) {
	if cfg.PBX != nil {
		if cfg.Backend == "" {
			cfg.Backend = cfg.PBX.Backend()
		}
		if cfg.PBX.Backend() != cfg.Backend || !pbx.IsContainer(cfg.Backend) {
			return nil, fmt.Errorf("scenario: Config.PBX is a %s PBX, the world's backend %s: a shared PBX is a container of the world's backend", cfg.PBX.Backend(), cfg.Backend)
		}
	}
	if cfg.Backend == "" {
		cfg.Backend = pbx.BackendEmbedded
	}
	if !slices.Contains(pbx.Backends, cfg.Backend) {
		return nil, fmt.Errorf("scenario: unknown PBX backend %q", cfg.Backend)
	}
	if cfg.Codecs == "" {
		cfg.Codecs = DefaultCodecs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConfDir == "" {
		dir, err := FindConfDir()
		if err != nil {
			return nil, err
		}
		cfg.ConfDir = dir
	}
	for name := range cfg.Links {
		if !isHost(name) {
			return nil, fmt.Errorf("scenario: link for unknown host %q: the world's hosts are %s", name, strings.Join(Hosts, ", "))
		}
		if cfg.split() && !emulatedInSplit(name) {
			return nil, fmt.Errorf("scenario: link for host %q: with the %s PBX (a container, on loopback) only the %s and %s links are emulated", name, cfg.Backend, HostClient, HostGateway)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w = &World{cfg: cfg, ctx: ctx, cancel: cancel, log: cfg.Logger, hosts: map[string]Host{},
		secret: []byte("lab-secret-0123456789abcdef"), cdr: &LineBuffer{}, served: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.Close())
			w = nil
		}
	}()
	if err := w.startNetwork(); err != nil {
		return w, err
	}
	if err := w.startPBX(); err != nil {
		return w, err
	}
	if err := w.startGateway(); err != nil {
		return w, err
	}
	return w, nil
}

// Virtual tells whether In runs the world in virtual time: on the emulated network with the
// embedded PBX.
func (cfg Config) Virtual() bool { return cfg.Emulated && !pbx.IsContainer(cfg.backend()) }

// split: an emulated world with a container PBX (see Config.Backend).
func (cfg Config) split() bool { return cfg.Emulated && pbx.IsContainer(cfg.backend()) }

// backend is the world's PBX backend: Backend, else the shared PBX's, else the embedded one.
func (cfg Config) backend() pbx.Backend {
	switch {
	case cfg.Backend != "":
		return cfg.Backend
	case cfg.PBX != nil:
		return cfg.PBX.Backend()
	}
	return pbx.BackendEmbedded
}

// emulatedInSplit tells whether a host is on the emulated network in a split world.
func emulatedInSplit(name string) bool { return name == HostClient || name == HostGateway }

func isHost(name string) bool {
	for _, h := range Hosts {
		if h == name {
			return true
		}
	}
	return false
}

// FindConfDir returns freeswitch/conf of the module that contains the working directory.
func FindConfDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			conf := filepath.Join(dir, "freeswitch", "conf")
			if _, err := os.Stat(filepath.Join(conf, "freeswitch.xml")); err != nil {
				return "", fmt.Errorf("scenario: no FreeSWITCH configuration at %s: set Config.ConfDir", conf)
			}
			return conf, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scenario: not inside the siprtc module (no go.mod above the working directory): set Config.ConfDir")
		}
		dir = parent
	}
}

func (w *World) addCloser(f func() error) {
	w.mu.Lock()
	w.closers = append(w.closers, f)
	w.mu.Unlock()
}

func (w *World) addPeer(f func() error) {
	w.mu.Lock()
	w.peers = append(w.peers, f)
	w.mu.Unlock()
}

func (w *World) startNetwork() error {
	std, err := stdnet.NewNet()
	if err != nil {
		return err
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, name := range Hosts {
		w.hosts[name] = Host{Name: name, Net: std, IP: lo, Dial: (&net.Dialer{}).DialContext}
	}
	w.sipNet, w.sipIP = std, lo
	if !w.cfg.Emulated {
		return nil
	}
	var opts []netem.Option
	if w.cfg.Seed != 0 {
		opts = append(opts, netem.WithSeed(w.cfg.Seed))
	}
	nw, err := netem.New("", opts...)
	if err != nil {
		return err
	}
	w.nw = nw
	w.addCloser(nw.Close)
	for _, name := range Hosts {
		if w.cfg.split() && !emulatedInSplit(name) {
			continue // real: loopback
		}
		h, err := nw.AddHost(name, "")
		if err != nil {
			return err
		}
		if l, ok := w.cfg.Links[name]; ok {
			if err := h.Up.Set(l.Up); err != nil {
				return fmt.Errorf("scenario: %s up: %w", name, err)
			}
			if err := h.Down.Set(l.Down); err != nil {
				return fmt.Errorf("scenario: %s down: %w", name, err)
			}
		}
		w.hosts[name] = Host{Name: name, Net: h.Net, IP: h.IP, Netem: h, Dial: h.Stream.DialContext}
	}
	if !w.cfg.split() {
		gw := w.hosts[HostGateway]
		w.sipNet, w.sipIP = gw.Net, gw.IP
	}
	return nw.Start()
}

// pbxStartTimeout bounds a container PBX's start (the image's start-up, SIP and the control
// socket answering).
const pbxStartTimeout = 2 * time.Minute

func (w *World) startPBX() error {
	h := w.hosts[HostPBX]
	log := w.log.With("who", "pbx")
	switch w.cfg.Backend {
	case pbx.BackendEmbedded:
		port := 0
		if !w.cfg.Emulated {
			port = pbx.AnyPort
		}
		p, err := pbx.StartEmbedded(w.ctx, pbx.EmbeddedConfig{ConfDir: w.cfg.ConfDir, Net: h.Net, IP: h.IP,
			SIPPort: port, Logger: log})
		if err != nil {
			return fmt.Errorf("scenario: pbx: %w", err)
		}
		w.embedded, w.pbx = p, p.Control()
		w.addCloser(p.Close)
		return nil
	}
	if p := w.cfg.PBX; p != nil {
		return w.useShared(p)
	}
	p, err := StartPBX(w.ctx, w.cfg.Backend, w.cfg.ConfDir, log)
	if err != nil {
		return err
	}
	w.pbx = p
	w.addCloser(func() error {
		err := p.Close()
		if w.cfg.PBXLogs != nil {
			w.cfg.PBXLogs(w.cfg.Backend, p.Logs())
		}
		return err
	})
	return nil
}

// useShared takes a running container PBX (Config.PBX): whatever call it still holds is hung
// up first, and at close the world passes on only the output it printed meanwhile.
func (w *World) useShared(p pbx.Controlled) error {
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := p.HangupAll(ctx); err != nil {
		return fmt.Errorf("scenario: the shared %s PBX: hang up what it holds: %w", w.cfg.Backend, err)
	}
	if err := waitEvery(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
		n, err := p.ActiveCalls(ctx)
		return err == nil && n == 0
	}); err != nil {
		return fmt.Errorf("scenario: the shared %s PBX still holds calls: %w", w.cfg.Backend, err)
	}
	from := len(p.Logs())
	w.pbx = p
	w.addCloser(func() error {
		if w.cfg.PBXLogs != nil {
			logs := p.Logs()
			if from <= len(logs) {
				logs = logs[from:]
			}
			w.cfg.PBXLogs(w.cfg.Backend, logs)
		}
		return nil
	})
	return nil
}

// StartPBX starts a container PBX of backend b (pbx.BackendAsterisk, pbx.BackendFreeSWITCH) on
// 127.0.0.1 serving the FreeSWITCH configuration confDir ("": FindConfDir), as a world does:
// for Config.PBX, a container shared by several worlds. The caller closes it.
func StartPBX(ctx context.Context, b pbx.Backend, confDir string, log *slog.Logger) (pbx.Controlled, error) {
	if confDir == "" {
		dir, err := FindConfDir()
		if err != nil {
			return nil, err
		}
		confDir = dir
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, pbxStartTimeout)
	defer cancel()
	lo := netip.MustParseAddr("127.0.0.1")
	var (
		p   pbx.Controlled
		err error
	)
	switch b {
	case pbx.BackendAsterisk:
		p, err = pbx.StartAsterisk(ctx, pbx.AsteriskConfig{ConfDir: confDir, IP: lo, Logger: log})
	case pbx.BackendFreeSWITCH:
		p, err = pbx.StartFreeSWITCH(ctx, pbx.FreeSWITCHConfig{ConfDir: confDir, IP: lo, Logger: log})
	default:
		return nil, fmt.Errorf("scenario: %q is not a container PBX backend", b)
	}
	if err != nil {
		return nil, fmt.Errorf("scenario: %s pbx: %w", b, err)
	}
	return p, nil
}

func (w *World) startGateway() error {
	password, _ := w.pbx.Password("1000")
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
%s`, w.pbx.SIPAddr(), password, w.secret, w.cfg.Codecs, w.cfg.GatewayConf)
	cfg, _, err := config.Parse(strings.NewReader(conf), "lab-rtx.conf")
	if err != nil {
		return fmt.Errorf("scenario: gateway configuration: %w", err)
	}
	h := w.hosts[HostGateway]
	opts := []gateway.Option{
		gateway.WithNet(w.sipNet), gateway.WithLocalIP(w.sipIP), gateway.WithLogger(w.log.With("who", "gateway")),
		gateway.WithCDR(w.cdr),
		gateway.WithSIP(func(c *sipua.Config) {
			if w.sipIP.IsLoopback() {
				c.Port = 0 // a free port, not 5060 of the machine
			}
			c.RetryMin, c.RetryMax = 500*time.Millisecond, 2*time.Second
			c.Stagger = time.Millisecond
			if w.cfg.SIP != nil {
				w.cfg.SIP(c)
			}
		}),
	}
	if w.cfg.split() {
		// The WebRTC leg on the emulated network, its candidates the emulated address only;
		// Config.Gateway's own WithRTC options run after this one (a tap wraps the emulated
		// Net).
		vnet, ip := h.Net, h.IP
		opts = append(opts, gateway.WithRTC(func(rc *rtc.Config) {
			rc.Net = vnet
			rc.IPFilter = func(a netip.Addr) bool { return a == ip }
			rc.IncludeLoopback = false
		}))
	}
	g, err := gateway.New(cfg, append(opts, w.cfg.Gateway...)...)
	if err != nil {
		return fmt.Errorf("scenario: gateway: %w", err)
	}
	w.gw = g
	if err := g.Start(w.ctx); err != nil {
		return fmt.Errorf("scenario: gateway start: %w", err)
	}
	var l net.Listener
	if w.cfg.Emulated {
		l, err = h.Netem.Stream.Listen("tcp", netip.AddrPortFrom(h.IP, 8080).String())
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return err
	}
	w.httpAddr = l.Addr().String()
	go func() {
		defer close(w.served)
		_ = g.Serve(l)
	}()
	if err := WaitFor(w.ctx, 10*time.Second, func() bool { return g.Healthy().Healthy && w.AllRegistered() }); err != nil {
		return fmt.Errorf("scenario: gateway not registered with the PBX: %+v", g.Healthy())
	}
	return nil
}

// AllRegistered says whether every account of the gateway is registered with the PBX.
func (w *World) AllRegistered() bool {
	for _, r := range w.gw.Registrations() {
		if r.State != sipua.Registered {
			return false
		}
	}
	return true
}

// Close tears the world down: peers first (their calls end while the gateway still answers),
// then the gateway, the PBX and the network. Every goroutine has ended when it returns.
func (w *World) Close() error {
	w.mu.Lock()
	peers, closers := w.peers, w.closers
	w.peers, w.closers = nil, nil
	w.mu.Unlock()
	var errs []error
	for i := len(peers) - 1; i >= 0; i-- {
		errs = append(errs, ignoreClosed(peers[i]()))
	}
	if w.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, w.gw.Close(ctx))
		cancel()
		if w.httpAddr != "" {
			select {
			case <-w.served:
			case <-time.After(10 * time.Second):
				errs = append(errs, errors.New("scenario: the gateway's HTTP server did not stop"))
			}
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, ignoreClosed(closers[i]()))
	}
	w.cancel()
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Context is the world's lifetime: done once Close starts.
func (w *World) Context() context.Context { return w.ctx }

// Host returns one of the world's hosts by name (HostClient, ...).
func (w *World) Host(name string) Host { return w.hosts[name] }

// Network is the emulated network, nil on loopback.
func (w *World) Network() *netem.Network { return w.nw }

// PBX is the world's PBX, whatever its backend.
func (w *World) PBX() pbx.Controlled { return w.pbx }

// Embedded is the world's embedded PBX; nil with a container backend.
func (w *World) Embedded() *pbx.Embedded { return w.embedded }

// Backend is the world's PBX backend.
func (w *World) Backend() pbx.Backend { return w.cfg.Backend }

// Virtual tells whether the world runs in virtual time (Config.Virtual).
func (w *World) Virtual() bool { return w.cfg.Virtual() }

// Gateway is the world's gateway.
func (w *World) Gateway() *gateway.Gateway { return w.gw }

// CDR returns the call detail records the gateway wrote so far, one JSON line each.
func (w *World) CDR() []string { return w.cdr.Lines() }

// SignalingURL is the gateway's WebSocket endpoint.
func (w *World) SignalingURL() string { return "ws://" + w.httpAddr + signaling.Path }

// HTTPAddr is the gateway's HTTP side, ip:port.
func (w *World) HTTPAddr() string { return w.httpAddr }

// Token returns a login token for user, valid for an hour.
func (w *World) Token(user string) string {
	return signaling.MakeToken(w.secret, user, time.Now().Add(time.Hour))
}

// Phone starts a SIP phone for a directory user on the phone host and registers it.
func (w *World) Phone(user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	h := w.hosts[HostPhone]
	pw, ok := w.pbx.Password(user)
	if !ok {
		return nil, fmt.Errorf("scenario: %s is not a directory user of the PBX", user)
	}
	ph, err := sipphone.New(sipphone.Config{
		Net: h.Net, LocalIP: h.IP, User: user, Password: pw, Domain: w.pbx.Domain(),
		Registrar: w.pbx.SIPAddr(), Support100rel: true, Logger: w.log.With("who", "phone "+user),
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := ph.Start(w.ctx); err != nil {
		return nil, err
	}
	w.addPeer(ph.Close)
	if _, err := ph.Register(w.ctx, time.Minute); err != nil {
		return nil, fmt.Errorf("scenario: register %s: %w", user, err)
	}
	return ph, nil
}

// Client builds a WebRTC client for user on the client host and logs it in.
func (w *World) Client(user string, opts ...webclient.Option) (*webclient.Client, error) {
	cl, err := w.NewClient(user, nil, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		return nil, fmt.Errorf("scenario: client %s: %w", user, err)
	}
	return cl, nil
}

// NewClient builds a client for user without connecting it; edit (nil: none) adjusts its
// Config first.
func (w *World) NewClient(user string, edit func(*webclient.Config), opts ...webclient.Option) (*webclient.Client, error) {
	h := w.hosts[HostClient]
	cfg := webclient.Config{
		URL: w.SignalingURL(), Dial: h.Dial, Net: h.Net, LocalIP: h.IP,
		User: user, Token: w.Token(user), Logger: w.log.With("who", "client "+user),
	}
	if edit != nil {
		edit(&cfg)
	}
	cl, err := webclient.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	w.addPeer(cl.Close)
	return cl, nil
}

// OnClose adds f to what Close runs before it stops the gateway, with the peers (newest
// first): for peers a caller builds itself.
func (w *World) OnClose(f func() error) { w.addPeer(f) }

// Quiesce waits until the gateway and the PBX hold no call. A container PBX is asked through
// its control socket, every 100 ms; a control socket that fails counts as calls held.
func (w *World) Quiesce(d time.Duration) error {
	every := 10 * time.Millisecond
	if pbx.IsContainer(w.cfg.Backend) {
		every = 100 * time.Millisecond
	}
	var last error
	err := waitEvery(w.ctx, d, every, func() bool {
		if w.gw.ActiveCalls() != 0 {
			return false
		}
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		defer cancel()
		n, err := w.pbx.ActiveCalls(ctx)
		last = err
		return err == nil && n == 0
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (the %s PBX's call count: %v)", err, w.cfg.Backend, last)
	}
	return err
}

// WaitFor polls cond every 10 ms until it holds or d has passed.
func WaitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	return waitEvery(ctx, d, 10*time.Millisecond, cond)
}

func waitEvery(ctx context.Context, d, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// LineBuffer collects written lines (the gateway's CDRs) safely.
type LineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*LineBuffer)(nil)

func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns the complete lines written so far.
func (b *LineBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// In builds a world from cfg, runs f in it and closes it: inside a testing/synctest bubble
// (virtual time) when cfg.Virtual() (emulated, embedded PBX), in real time otherwise (loopback,
// or a container PBX). t is the running test (a Ginkgo suite keeps its TestXxx's t). f
// measures and returns; it must not fail t (see lab.Virtual).
func In[T any](t *testing.T, cfg Config, f func(*World) (T, error)) (T, error) {
	run := func() (T, error) {
		var zero T
		w, err := New(cfg)
		if err != nil {
			return zero, err
		}
		res, err := f(w)
		return res, errors.Join(err, w.Close())
	}
	if cfg.Virtual() {
		return lab.Virtual(t, run)
	}
	return run()
}

// ApplyScenario sets the links of a scenario file's hosts on cfg. roles maps the file's host
// names to the world's (for example "sender": HostClient); a name without a role must be one of
// the world's hosts. The scenario's seed becomes the world's unless cfg has one.
func (cfg *Config) ApplyScenario(s *netem.Scenario, roles map[string]string) error {
	if cfg.Links == nil {
		cfg.Links = map[string]Link{}
	}
	for _, h := range s.Hosts {
		name := h.Name
		if r, ok := roles[name]; ok {
			name = r
		}
		if !isHost(name) {
			return fmt.Errorf("scenario %s: host %q is not one of the world's (%s); map it with a role", s.Name, h.Name, strings.Join(Hosts, ", "))
		}
		cfg.Links[name] = Link{Up: h.Up, Down: h.Down}
	}
	if cfg.Seed == 0 {
		cfg.Seed = s.Seed
	}
	return nil
}
