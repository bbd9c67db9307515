// Package sipphone is the lab's SIP phone: a real user agent that registers with digest
// authentication, places and answers calls with SDP offer/answer, supports reliable provisional
// responses (RFC 3262, both sides), follows re-INVITEs (hold and resume), and sends and records
// real G.711 RTP (or silent Opus), and with the Video option a synthetic VP8 or H.264 stream on a second
// m-line.
//
// Its SIP side is the gateway's own dialog layer, gateway/sipua: the phone adds what a phone
// does with it (G.711 and Opus offers and answers, the RTP/RTCP session of each call,
// auto-answer).
//
// Every socket, SIP and RTP alike, is opened through the injected transport.Net, so the same phone
// runs on the host's network (stdnet) and on a pion vnet host, inside testing/synctest too. SIP
// runs over UDP. Close ends every goroutine the phone started.
package sipphone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/gateway/sipua"
)

// Default values of Config fields left zero.
const (
	DefaultRTPPortMin = 20000
	DefaultRTPPortMax = 29999
	defaultUserAgent  = "siprtc-sipphone"
)

// Config describes one phone. Net and LocalIP are required; the rest have working defaults.
type Config struct {
	Net     transport.Net // every socket is opened through it
	LocalIP netip.Addr    // address SIP and RTP bind to, and the one put in Contact and SDP
	SIPPort int           // 0 picks any free port

	User, Password, Domain string         // AOR user@Domain and digest credentials
	Registrar              netip.AddrPort // PBX address (SIP over UDP); outbound proxy for calls by user name
	DisplayName            string

	Codecs                 []string // preference order among PCMU, PCMA and opus; default {"PCMU", "PCMA"}
	RTPPortMin, RTPPortMax int      // default 20000-29999, even ports are used for RTP

	// Support100rel advertises "Supported: 100rel" on INVITEs and lets incoming calls ring
	// reliably. Reliable provisional responses to the phone's INVITEs are PRACKed either way.
	Support100rel bool

	Logger *slog.Logger // default slog.Default()
}

// Option tunes a phone beyond its Config.
type Option func(*options)

type options struct {
	autoAnswerDelay time.Duration
	toneHz          float64
	packetLogLimit  int
	manualMedia     bool
	refresh         bool
	userAgent       string
	video           *videoOptions
}

func defaultOptions() options {
	return options{toneHz: 440, packetLogLimit: 100000, refresh: true, userAgent: defaultUserAgent}
}

// AutoAnswer sets how long the default incoming-call handler rings before answering (default 0).
func AutoAnswer(delay time.Duration) Option { return func(o *options) { o.autoAnswerDelay = delay } }

// ToneFrequency sets the frequency of the sine the phone sends as audio (default 440 Hz).
func ToneFrequency(hz float64) Option { return func(o *options) { o.toneHz = hz } }

// PacketLogLimit caps each per-packet log of a call, received and sent (default 100000 packets).
func PacketLogLimit(n int) Option { return func(o *options) { o.packetLogLimit = n } }

// ManualMedia stops calls from starting their tone on answer: call Media().Start() yourself.
func ManualMedia() Option { return func(o *options) { o.manualMedia = true } }

// RegisterRefresh sets whether a successful Register is refreshed before it expires (default on).
func RegisterRefresh(on bool) Option { return func(o *options) { o.refresh = on } }

// UserAgent sets the User-Agent header (default "siprtc-sipphone").
func UserAgent(name string) Option { return func(o *options) { o.userAgent = name } }

// Phone is one SIP user agent with its calls. Its goroutines run under its user agent's
// lifecycle (sipua.UA.Go), so closing the user agent waits for them too.
type Phone struct {
	cfg    Config
	opts   options
	codecs []codec
	log    *slog.Logger
	ua     *sipua.UA

	// ctx is the phone's lifetime: Close cancels it, and the phone's own waits select on it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	onIncoming func(*Incoming)
	calls      map[*Call]struct{}
	medias     map[*Media]struct{}
}

// New validates cfg and builds a phone. Call Start to serve SIP.
func New(cfg Config, opts ...Option) (*Phone, error) {
	if cfg.Net == nil {
		return nil, fmt.Errorf("%w: Net is required", ErrInvalidConfig)
	}
	if !cfg.LocalIP.IsValid() || !cfg.LocalIP.Is4() {
		return nil, fmt.Errorf("%w: LocalIP must be an IPv4 address, got %v", ErrInvalidConfig, cfg.LocalIP)
	}
	if cfg.SIPPort < 0 || cfg.SIPPort > 65535 {
		return nil, fmt.Errorf("%w: SIPPort %d", ErrInvalidConfig, cfg.SIPPort)
	}
	if cfg.User == "" {
		cfg.User = "sipphone"
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []string{"PCMU", "PCMA"}
	}
	codecs := make([]codec, 0, len(cfg.Codecs))
	for _, name := range cfg.Codecs {
		c, ok := codecByName(name)
		if !ok {
			return nil, fmt.Errorf("%w: unsupported codec %q (PCMU, PCMA and opus are)", ErrInvalidConfig, name)
		}
		codecs = append(codecs, c)
	}
	if cfg.RTPPortMin == 0 && cfg.RTPPortMax == 0 {
		cfg.RTPPortMin, cfg.RTPPortMax = DefaultRTPPortMin, DefaultRTPPortMax
	}
	if cfg.RTPPortMin <= 0 || cfg.RTPPortMax > 65535 || cfg.RTPPortMax < cfg.RTPPortMin+1 {
		return nil, fmt.Errorf("%w: RTP port range %d-%d", ErrInvalidConfig, cfg.RTPPortMin, cfg.RTPPortMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.video != nil && !isVP8(o.video.codec) && !isH264(o.video.codec) {
		return nil, fmt.Errorf("%w: unsupported video codec %q (VP8 and H264 are)", ErrInvalidConfig, o.video.codec)
	}
	log := cfg.Logger.With("phone", cfg.User)
	ua, err := sipua.New(sipua.Config{
		Net: cfg.Net, LocalIP: cfg.LocalIP, Port: cfg.SIPPort,
		Server: cfg.Registrar, Domain: cfg.Domain,
		Accounts:      []sipua.Account{{User: cfg.User, Password: cfg.Password, DisplayName: cfg.DisplayName}},
		UserAgent:     o.userAgent,
		Support100rel: cfg.Support100rel,
		KeepAlive:     -1, // a phone's registration is refreshed, not probed
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Phone{
		cfg:    cfg,
		opts:   o,
		codecs: codecs,
		log:    log,
		ua:     ua,
		ctx:    ctx,
		cancel: cancel,
		calls:  make(map[*Call]struct{}),
		medias: make(map[*Media]struct{}),
	}, nil
}

// Start binds the SIP socket through Config.Net and serves SIP. It returns once sipgo has
// registered the socket, so requests go out of it (never out of an OS socket sipgo opens itself).
// The phone serves until Close, or until ctx is done.
func (p *Phone) Start(ctx context.Context) error {
	p.ua.OnIncoming(p.handleIncoming)
	if err := p.ua.Start(ctx); err != nil {
		if !errors.Is(err, ErrAlreadyStarted) {
			_ = p.Close()
		}
		return err
	}
	context.AfterFunc(ctx, func() { _ = p.Close() })
	return nil
}

// Addr is the SIP address the phone serves on (valid after Start).
func (p *Phone) Addr() netip.AddrPort { return p.ua.Addr() }

// Contact is the phone's contact URI, sip:user@ip:port (after Start): another phone calls it
// directly with Call(ctx, p.Contact().String()).
func (p *Phone) Contact() *sip.Uri { return p.ua.Contact(p.cfg.User) }

// AOR is the phone's address of record, sip:user@domain.
func (p *Phone) AOR() *sip.Uri { return p.ua.AOR(p.cfg.User) }

// OnIncoming sets the handler of incoming calls; nil restores the default, which rings and
// answers after the AutoAnswer delay. The handler runs on its own goroutine per call; the call
// stays pending until the handler (or anything it starts) calls Answer or Reject, or the caller
// cancels. A handler that waits must also stop waiting on Cancelled, or Close waits for it.
func (p *Phone) OnIncoming(h func(*Incoming)) {
	p.mu.Lock()
	p.onIncoming = h
	p.mu.Unlock()
}

// Calls returns the established calls of the phone.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	calls := make([]*Call, 0, len(p.calls))
	for c := range p.calls {
		calls = append(calls, c)
	}
	return calls
}

// Close hangs up every call (a BYE is sent, its answer is not awaited), rejects incoming calls
// still pending, closes every socket and waits for every goroutine the phone started.
func (p *Phone) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	// Handlers waiting on pending calls wake up first, then the user agent ends the dialogs
	// (their calls end with them), answers what is still pending with 480 and waits for the
	// phone's goroutines.
	p.cancel()
	err := p.ua.Close()
	p.mu.Lock()
	medias := make([]*Media, 0, len(p.medias))
	for m := range p.medias {
		medias = append(medias, m)
	}
	p.mu.Unlock()
	for _, m := range medias {
		m.close()
	}
	return err
}

// Options sends OPTIONS to target (a user, through the registrar, or a SIP URI) and returns the
// final response: the probe PBXs and phones use to check each other. A non-2xx is returned with
// a *StatusError.
func (p *Phone) Options(ctx context.Context, target string) (*sip.Response, error) {
	return p.ua.Options(ctx, p.cfg.User, target)
}
