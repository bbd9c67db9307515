package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway/call"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/gateway/web"
)

// Errors of the gateway.
var (
	ErrInvalidConfig = errors.New("gateway: invalid configuration")
	ErrNotStarted    = errors.New("gateway: not started")
	ErrClosed        = errors.New("gateway: closed")
)

// Option tunes a Gateway beyond its Config; the defaults run it on the host's network.
type Option func(*options)

type options struct {
	net     transport.Net
	localIP netip.Addr
	logger  *slog.Logger
	stderr  io.Writer
	sigOpts []signaling.Option
	rtc     []func(*rtc.Config)
	sip     []func(*sipua.Config)
	cdr     io.Writer
}

// WithNet opens every SIP and media socket through n (default: the host's network). The lab
// passes a netem host's Net.
func WithNet(n transport.Net) Option { return func(o *options) { o.net = n } }

// WithLocalIP binds SIP and media to ip and keeps ICE host candidates to it (default: the
// address the host routes to the SIP server from, every interface for ICE).
func WithLocalIP(ip netip.Addr) Option { return func(o *options) { o.localIP = ip } }

// WithLogger replaces the logger [log] describes.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSignalingOptions passes options to the signalling server (timeouts, limits).
func WithSignalingOptions(opts ...signaling.Option) Option {
	return func(o *options) { o.sigOpts = append(o.sigOpts, opts...) }
}

// WithRTC adjusts the configuration of each call's PeerConnection after the gateway filled it
// in from [media] (and WithNet, WithLocalIP). Several WithRTC options compose: each function
// runs, in the order the options were given, on what the previous ones left.
func WithRTC(f func(*rtc.Config)) Option {
	return func(o *options) {
		if f != nil {
			o.rtc = append(o.rtc, f)
		}
	}
}

// WithSIP adjusts the SIP user agent's configuration after the gateway filled it in from
// [global], [sip], [proxy] and [rtm2sip] (ports, retry timers...). Several WithSIP options
// compose, in the order they were given.
func WithSIP(f func(*sipua.Config)) Option {
	return func(o *options) {
		if f != nil {
			o.sip = append(o.sip, f)
		}
	}
}

// WithCDR writes each call's detail record, one JSON line per call, to w (default: the log).
func WithCDR(w io.Writer) Option { return func(o *options) { o.cdr = w } }

// Gateway is the SIP <-> WebRTC gateway built from one Config: the SIP user agent holding the
// proxy and pool accounts, the signalling server, the call layer, and the HTTP side (/ws, the
// browser page at /, /healthz, /metrics).
type Gateway struct {
	cfg     *config.Config
	opts    options
	log     *slog.Logger
	logFile io.Closer
	localIP netip.Addr

	ua      *sipua.UA
	calls   *call.Manager
	sig     *signaling.Server
	metrics *metrics
	handler http.Handler

	proxy string
	pool  []string

	cdrMu sync.Mutex

	mu      sync.Mutex
	started bool
	closed  bool
	servers []*http.Server
}

// defaultNACKRetries bounds how often the gateway NACKs one packet the client sent.
const defaultNACKRetries = 10

// New builds a gateway from cfg; Start registers it, Serve serves its HTTP side.
func New(cfg *config.Config, opts ...Option) (*Gateway, error) {
	if cfg == nil || !cfg.Global.SIPServer.IsValid() {
		return nil, fmt.Errorf("%w: [global] sip_svr is required", ErrInvalidConfig)
	}
	g := &Gateway{cfg: cfg, metrics: newMetrics()}
	g.opts.stderr = os.Stderr
	for _, o := range opts {
		o(&g.opts)
	}
	if g.opts.logger != nil {
		g.log, g.logFile = g.opts.logger, io.NopCloser(nil)
	} else {
		l, c, err := NewLogger(cfg.Log, g.opts.stderr)
		if err != nil {
			return nil, err
		}
		g.log, g.logFile = l, c
	}
	if cfg.Global.AppID != "" {
		// SRProxy's appid names the deployment: every line says which one it comes from.
		g.log = g.log.With("appid", cfg.Global.AppID)
	}
	n := g.opts.net
	if n == nil {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		n = std
	}
	g.localIP = g.opts.localIP
	if !g.localIP.IsValid() {
		ip, err := routeTo(n, cfg.Global.SIPServer)
		if err != nil {
			return nil, fmt.Errorf("gateway: local address toward %s: %w", cfg.Global.SIPServer, err)
		}
		g.localIP = ip
	}

	var accounts []sipua.Account
	if cfg.Proxy.On {
		g.proxy = cfg.Proxy.Account
		accounts = append(accounts, sipua.Account{User: cfg.Proxy.Account, Password: cfg.Proxy.Password.Reveal()})
	}
	if cfg.RTM2SIP.On {
		g.pool = cfg.RTM2SIP.Accounts
		for _, a := range cfg.RTM2SIP.Accounts {
			accounts = append(accounts, sipua.Account{User: a, Password: cfg.RTM2SIP.Password.Reveal()})
		}
	}
	if len(accounts) == 0 {
		return nil, fmt.Errorf("%w: neither [proxy] nor [rtm2sip] is on", ErrInvalidConfig)
	}
	keepAlive := cfg.SIP.OptionsInterval
	if keepAlive == 0 {
		keepAlive = -1
	}
	sipCfg := sipua.Config{
		Net: n, LocalIP: g.localIP, Port: int(cfg.Global.SIPLocalPort),
		Server: cfg.Global.SIPServer, Transport: string(cfg.SIP.Transport),
		Accounts: accounts, UserAgent: "siprtc", Support100rel: true,
		RegisterExpires: cfg.SIP.RegisterExpires, KeepAlive: keepAlive,
		// Session timers (RFC 4028): advertised, accepted when a peer requires them, refreshed
		// and enforced by the UA; a dialog it ends on expiry ends the call (call.watchDialog).
		SessionExpires: cfg.SIP.SessionExpires, MinSE: cfg.SIP.MinSE,
		OnRegistration: g.onRegistration, Logger: g.log.With("component", "sip"),
	}
	if cfg.SIP.Transport == config.TransportTLS {
		tc, err := sipTLS(cfg.SIP)
		if err != nil {
			return nil, err
		}
		sipCfg.TLS = tc
	}
	for _, f := range g.opts.sip {
		f(&sipCfg)
	}
	ua, err := sipua.New(sipCfg)
	if err != nil {
		return nil, err
	}
	g.ua = ua

	rtcCfg := rtc.Config{
		Net: n, PublicIP: cfg.Media.PublicIP, ICELite: cfg.Media.ICELite,
		PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax,
		Codecs: cfg.Media.Codecs, Video: cfg.Media.Video,
		RED: cfg.Media.RED, REDDistance: cfg.Media.REDDistance,
		FlexFEC: cfg.Media.FlexFEC, FECMediaPackets: cfg.Media.FECMediaPackets, FECPackets: cfg.Media.FECPackets,
		// Ask for a lost packet at most 10 times, as browsers do: pion's default asks until
		// the packet leaves its log, and under congestion (RFC 8867 5.1 in suites/bwe) that
		// NACK load pushed a third of the client's gcc runs to their floor.
		NACKMaxRetries: defaultNACKRetries,
		// Audio RTX with a client that offers it, both ways (browsers do not: plain NACK).
		SendAudioRTX: true,
	}
	if g.opts.localIP.IsValid() {
		ip := g.opts.localIP
		rtcCfg.IPFilter = func(a netip.Addr) bool { return a == ip }
		rtcCfg.IncludeLoopback = ip.IsLoopback()
	}
	for _, f := range g.opts.rtc {
		f(&rtcCfg)
	}
	calls, err := call.New(call.Config{
		UA: ua, RTC: rtcCfg, MediaNet: n, MediaIP: g.localIP,
		PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax,
		Pool: g.pool, Proxy: g.proxy,
		PSTNPrefix: cfg.PSTN.Prefix, PSTNServer: cfg.PSTNServer(),
		Registered: g.registered,
		OnEnd:      g.callEnded,
		OnAnswer:   g.metrics.callAnswered,
		Logger:     g.log.With("component", "call"),
	})
	if err != nil {
		return nil, err
	}
	g.calls = calls
	sigOpts := append([]signaling.Option{signaling.WithLogger(g.log.With("component", "signaling"))}, g.opts.sigOpts...)
	sig, err := signaling.New([]byte(cfg.Signaling.AppSecret.Reveal()), calls, sigOpts...)
	if err != nil {
		return nil, err
	}
	g.sig = sig
	calls.Attach(sig)
	ua.OnIncoming(calls.HandleIncoming)

	mux := http.NewServeMux()
	mux.Handle(signaling.Path, sig)
	mux.HandleFunc("/healthz", g.serveHealth)
	mux.HandleFunc("/metrics", g.serveMetrics)
	mux.Handle("/", web.Handler())
	g.handler = mux
	return g, nil
}

// routeTo finds the local address the host sends to dst from (a UDP "connect" sends nothing).
func routeTo(n transport.Net, dst netip.AddrPort) (netip.Addr, error) {
	c, err := n.Dial("udp4", dst.String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

func sipTLS(c config.SIP) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("[sip] ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: [sip] ca %s holds no certificate", ErrInvalidConfig, c.CA)
		}
		tc.RootCAs = pool
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("[sip] tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Start serves SIP and starts keeping every account registered. It returns once the SIP
// socket is open; registrations complete in the background (see Healthy).
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.started {
		return sipua.ErrAlreadyStarted
	}
	if err := g.ua.Start(ctx); err != nil {
		return err
	}
	g.started = true
	g.ua.KeepRegistered()
	g.log.Info("gateway started", "sip", g.ua.Addr(), "server", g.cfg.Global.SIPServer, "proxy", g.proxy, "pool", len(g.pool), "media_ip", g.localIP)
	return nil
}

// Handler is the HTTP side: the signalling WebSocket at /ws, /healthz, /metrics and the
// browser page at /.
func (g *Gateway) Handler() http.Handler { return g.handler }

// MetricsHandler serves only /metrics and /healthz, for a separate [metrics] listener.
func (g *Gateway) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", g.serveHealth)
	mux.HandleFunc("/metrics", g.serveMetrics)
	return mux
}

// Serve serves the HTTP side on l (plain: wrap l with tls.NewListener for TLS) until Close.
func (g *Gateway) Serve(l net.Listener) error { return g.serve(l, g.handler) }

// ServeMetrics serves MetricsHandler on l until Close.
func (g *Gateway) ServeMetrics(l net.Listener) error { return g.serve(l, g.MetricsHandler()) }

func (g *Gateway) serve(l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		_ = l.Close()
		return ErrClosed
	}
	g.servers = append(g.servers, srv)
	g.mu.Unlock()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrClosed
	}
	return err
}

// SIPAddr is the UDP address the gateway serves SIP on (after Start).
func (g *Gateway) SIPAddr() netip.AddrPort { return g.ua.Addr() }

// ActiveCalls is the number of calls in progress.
func (g *Gateway) ActiveCalls() int { return g.calls.Active() }

// Registrations is a snapshot of every account's registration.
func (g *Gateway) Registrations() []sipua.RegistrationStatus { return g.ua.Registrations() }

// Signaling is the gateway's signalling server.
func (g *Gateway) Signaling() *signaling.Server { return g.sig }

// Health is what /healthz reports.
type Health struct {
	Healthy bool `json:"healthy"`
	// Proxy is the proxy account's registration state ("" when [proxy] is off).
	Proxy string `json:"proxy,omitempty"`
	// PoolRegistered counts the pool accounts registered, of Pool.
	PoolRegistered int `json:"pool_registered"`
	Pool           int `json:"pool"`
	// States counts the accounts by registration state.
	States map[string]int `json:"states"`
	// Failing lists up to 20 accounts whose registration failed, with the last reason.
	Failing     []string `json:"failing,omitempty"`
	ActiveCalls int      `json:"active_calls"`
	Draining    bool     `json:"draining,omitempty"`
}

// Healthy reports whether the gateway can carry calls: the proxy account registered (when on)
// and at least one pool account registered (when on), and the gateway is not shutting down.
func (g *Gateway) Healthy() Health {
	h := Health{States: map[string]int{}, Pool: len(g.pool), ActiveCalls: g.calls.Active()}
	for _, r := range g.ua.Registrations() {
		h.States[r.State.String()]++
		if r.User == g.proxy && g.proxy != "" {
			h.Proxy = r.State.String()
		} else if r.State == sipua.Registered {
			h.PoolRegistered++
		}
		if r.State == sipua.RegistrationFailed && len(h.Failing) < 20 {
			reason := r.Reason
			if r.Code != 0 {
				reason = fmt.Sprintf("%d %s", r.Code, r.Reason)
			}
			h.Failing = append(h.Failing, r.User+": "+reason)
		}
	}
	g.mu.Lock()
	// Draining from the moment new calls are refused (Shutdown's drain), not only once closed:
	// a load balancer must stop sending clients here while calls in progress end.
	h.Draining = g.closed || !g.calls.Accepting()
	started := g.started
	g.mu.Unlock()
	h.Healthy = started && !h.Draining &&
		(g.proxy == "" || h.Proxy == sipua.Registered.String()) &&
		(len(g.pool) == 0 || h.PoolRegistered > 0)
	return h
}

func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := g.Healthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

func (g *Gateway) registered(account string) bool {
	if r := g.ua.Registration(account); r != nil {
		return r.Status().State == sipua.Registered
	}
	return false
}

func (g *Gateway) onRegistration(s sipua.RegistrationStatus) {
	switch s.State {
	case sipua.RegistrationFailed:
		g.log.Warn("registration failed", "account", s.User, "code", s.Code, "reason", s.Reason, "failures", s.Failures)
	default:
		g.log.Debug("registration", "account", s.User, "state", s.State.String(), "code", s.Code)
	}
}

func (g *Gateway) callEnded(r call.Record) {
	g.metrics.callEnded(r)
	line := r.JSON()
	if g.opts.cdr == nil {
		g.log.Info("cdr", "record", json.RawMessage(line))
		return
	}
	g.cdrMu.Lock()
	defer g.cdrMu.Unlock()
	if _, err := g.opts.cdr.Write(append(line, '\n')); err != nil {
		g.log.Warn("cdr not written", "err", err)
	}
}

// Shutdown stops the gateway gracefully: no new calls, the calls in progress may end on their
// own until drain's deadline, then Close hangs up the rest within closeTimeout.
func (g *Gateway) Shutdown(drain context.Context, closeTimeout time.Duration) error {
	g.calls.StopAccepting()
	if n := g.calls.Active(); n > 0 {
		g.log.Info("draining calls", "active", n)
	}
	_ = g.calls.Drain(drain)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return g.Close(ctx)
}

// Close stops the gateway: no new calls, every call hung up (waiting for them within ctx),
// client connections closed (1001), every account unregistered, SIP and HTTP stopped. Every
// goroutine the gateway started has ended when it returns.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	started := g.started
	servers := g.servers
	g.mu.Unlock()

	var errs []error
	if err := g.calls.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("calls: %w", err))
	}
	if err := g.sig.Close(); err != nil && !errors.Is(err, signaling.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("signaling: %w", err))
	}
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			_ = s.Close()
		}
	}
	if started {
		uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := g.ua.UnregisterAll(uctx); err != nil {
			g.log.Warn("unregister", "err", err)
		}
		cancel()
	}
	if err := g.ua.Close(); err != nil && !errors.Is(err, sipua.ErrClosed) {
		errs = append(errs, fmt.Errorf("sip: %w", err))
	}
	g.log.Info("gateway stopped")
	_ = g.logFile.Close()
	return errors.Join(errs...)
}
