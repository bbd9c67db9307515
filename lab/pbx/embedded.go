package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/pbx/fsconf"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

// AnyPort asks the embedded PBX for a free SIP port instead of the profile's sip-port.
const AnyPort = -1

var (
	errNoProfile  = errors.New("sofia profile not found")
	errNotStarted = errors.New("embedded PBX not started")
)

// EmbeddedConfig says which configuration the embedded PBX loads and where it listens.
type EmbeddedConfig struct {
	// ConfDir is the FreeSWITCH conf directory holding freeswitch.xml (freeswitch/conf).
	ConfDir string
	// Net opens every socket: the standard network by default, a vnet host in the lab.
	Net transport.Net
	// IP is the PBX's address: FreeSWITCH's $${local_ip_v4}, so also the default domain.
	// Default 127.0.0.1.
	IP netip.Addr
	// Profile is the sofia profile to run (default "internal").
	Profile string
	// SIPPort overrides the profile's sip-port when non-zero; AnyPort picks a free one.
	SIPPort int
	// Vars override preprocessor variables after vars.xml (for example default_password).
	Vars map[string]string
	// Logger receives the PBX's log (default: discard).
	Logger *slog.Logger
}

// Embedded is the lab's own PBX: a sipgo registrar and B2BUA driven by the FreeSWITCH
// configuration (directory, XML dialplan, ACLs, sofia profile), anchoring media like FreeSWITCH.
type Embedded struct {
	cfg     EmbeddedConfig
	conf    *fsconf.Config
	profile *fsconf.Profile
	domain  string
	log     *slog.Logger
	auth    *digestAuth
	loc     *location
	alloc   *rtprelay.Allocator

	// Set by Start from stack, read-only afterwards.
	stack *sipnet.Stack
	ua    *sipgo.UserAgent
	srv   *sipgo.Server
	cli   *sipgo.Client
	// addr is the SIP listen address.
	addr netip.AddrPort

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	calls map[string]*leg // by Call-ID of either leg

	stats struct {
		registrations, challenges, calls, answered atomic.Int64
	}
}

// Stats counts what the embedded PBX did, for tests and benchmarks.
type Stats struct {
	Registrations, Challenges, Calls, Answered int64
	// RTPPortsInUse counts the RTP/RTCP port pairs the calls in progress hold (0 when idle).
	RTPPortsInUse int
}

// LoadEmbedded loads the configuration; it opens no socket (Start does).
func LoadEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Net == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("standard network: %w", err)
		}
		cfg.Net = n
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.Profile == "" {
		cfg.Profile = "internal"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	conf, err := fsconf.Load(cfg.ConfDir, fsconf.Options{
		Vars: map[string]string{
			"local_ip_v4": cfg.IP.String(),
			"hostname":    host,
			"conf_dir":    cfg.ConfDir,
		},
		Overrides: cfg.Vars,
		Apps:      implementedApps(),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded PBX: %w", err)
	}
	prof, ok := conf.Profiles[cfg.Profile]
	if !ok {
		return nil, fmt.Errorf("embedded PBX: %w: %q in %s", errNoProfile, cfg.Profile, cfg.ConfDir)
	}
	p := &Embedded{
		cfg: cfg, conf: conf, profile: prof,
		domain: conf.Directory.DefaultDomain(),
		log:    cfg.Logger.With("pbx", "embedded", "profile", prof.Name),
		calls:  map[string]*leg{},
	}
	ttl := 60 * time.Second
	if n, err := strconv.Atoi(prof.Param("nonce-ttl", "60")); err == nil && n > 0 {
		ttl = time.Duration(n) * time.Second
	}
	p.auth = newDigestAuth(ttl)
	p.loc = newLocation(p.now)
	return p, nil
}

// StartEmbedded loads the configuration and starts serving SIP.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	p, err := LoadEmbedded(cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Embedded) now() time.Time { return time.Now() }

// Config is the loaded FreeSWITCH configuration.
func (p *Embedded) Config() *fsconf.Config { return p.conf }

// Start opens the SIP socket and the RTP port range and serves until Close or ctx ends.
func (p *Embedded) Start(ctx context.Context) error {
	ip := p.cfg.IP
	port := p.cfg.SIPPort
	switch port {
	case 0:
		v, err := strconv.Atoi(p.profile.Param("sip-port", "5060"))
		if err != nil {
			return fmt.Errorf("embedded PBX: %s: sip-port %q is not a port number", p.profile.ParamPos["sip-port"], p.profile.Param("sip-port", ""))
		}
		port = v
	case AnyPort:
		port = 0
	}
	rtpMin, rtpMax := 16384, 32768
	if v, err := strconv.Atoi(p.conf.Switch["rtp-start-port"]); err == nil {
		rtpMin = v
	}
	if v, err := strconv.Atoi(p.conf.Switch["rtp-end-port"]); err == nil {
		rtpMax = v
	}
	alloc, err := rtprelay.NewAllocator(p.cfg.Net, ip, rtpMin, rtpMax)
	if err != nil {
		return fmt.Errorf("embedded PBX: RTP ports: %w", err)
	}
	p.alloc = alloc

	stack, err := sipnet.Listen(sipnet.Config{
		Net:       p.cfg.Net,
		Bind:      netip.AddrPortFrom(ip, uint16(port)),
		UserAgent: "siprtc-embedded-pbx",
		Hostname:  ip.String(),
		Logger:    p.log,
		TCP:       true, // on real networks; the lab's vnet has no TCP
	})
	if err != nil {
		return fmt.Errorf("embedded PBX: listen SIP on %s:%d/udp: %w", ip, port, err)
	}
	p.stack = stack
	p.ua, p.srv, p.cli, p.addr = stack.UA, stack.Server, stack.Client, stack.Addr
	srv := stack.Server
	srv.OnRegister(p.handleRegister)
	srv.OnInvite(p.handleInvite)
	srv.OnAck(p.handleAck)
	srv.OnBye(p.handleBye)
	srv.OnPrack(p.handlePrack)
	srv.OnOptions(p.handleOptions)
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL that matched no INVITE transaction (sipgo answers matching ones itself).
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
	})
	srv.OnInfo(p.handleInDialog)
	srv.OnUpdate(p.handleInDialog)

	p.ctx, p.cancel = context.WithCancel(ctx)
	// Requests the B2BUA sends must go out of the SIP socket: Serve returns once sipgo has it.
	if err := stack.Serve(p.ctx); err != nil {
		p.Close()
		return fmt.Errorf("embedded PBX: %w", err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-p.ctx.Done()
		p.hangupAll()
	}()
	p.log.Info("embedded PBX listening", "sip", p.addr, "domain", p.domain, "rtp", fmt.Sprintf("%d-%d", rtpMin, rtpMax),
		"users", len(p.conf.Directory.Domains[p.domain].Users))
	return nil
}

// Backend implements PBX.
func (p *Embedded) Backend() Backend { return BackendEmbedded }

// SIPAddr implements PBX.
func (p *Embedded) SIPAddr() netip.AddrPort { return p.addr }

// TCPAddr is where the PBX serves SIP over TCP (invalid on networks without TCP, like vnet).
func (p *Embedded) TCPAddr() netip.AddrPort { return p.stack.TCPAddr }

// Domain implements PBX.
func (p *Embedded) Domain() string { return p.domain }

// Password implements PBX.
func (p *Embedded) Password(user string) (string, bool) {
	u, ok := p.conf.Directory.Lookup(user, p.domain)
	if !ok {
		return "", false
	}
	return u.Params["password"], true
}

// Registrations lists the live contact bindings.
func (p *Embedded) Registrations() []Registration { return p.loc.all() }

// Stats returns the counters.
func (p *Embedded) Stats() Stats {
	return Stats{
		Registrations: p.stats.registrations.Load(), Challenges: p.stats.challenges.Load(),
		Calls: p.stats.calls.Load(), Answered: p.stats.answered.Load(),
		RTPPortsInUse: p.alloc.InUse(),
	}
}

// ActiveCalls is the number of calls (A legs) in progress.
func (p *Embedded) ActiveCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.calls {
		if l.isA {
			n++
		}
	}
	return n
}

// Close hangs up every call, stops serving and waits for every goroutine.
func (p *Embedded) Close() error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	p.waitCalls()
	var err error
	if p.stack != nil {
		err = p.stack.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Embedded) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte) {
	p.respondRes(tx, sip.NewResponseFromRequest(req, code, reason, body))
}

func (p *Embedded) respondRes(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		p.log.Debug("respond failed", "code", res.StatusCode, "err", err)
	}
}

func (p *Embedded) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, INFO, UPDATE, REGISTER"))
	if p.profile.Bool("enable-100rel", false) {
		res.AppendHeader(sip.NewHeader("Supported", "100rel"))
	}
	p.respondRes(tx, res)
}

// sourceAddr is where a request came from (FreeSWITCH's network_ip).
func sourceAddr(req *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
