// Package sipphone is the lab's SIP phone: a real user agent on sipgo that registers with digest
// authentication, places and answers calls with SDP offer/answer, supports reliable provisional
// responses (RFC 3262, both sides), and sends and records real G.711 RTP.
//
// Every socket, SIP and RTP alike, is opened through the injected transport.Net, so the same phone
// runs on the host's network (stdnet) and on a pion vnet host, inside testing/synctest too. SIP
// runs over UDP only (vnet has no TCP). Close ends every goroutine the phone started.
//
// sipgo is used for what it does well, the transaction and transport layers; dialogs (route set,
// CSeq, tags), PRACK, CANCEL and 2xx ACK/retransmission are done here, because sipgo's dialog
// helpers have no 100rel support.
package sipphone

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"

	"github.com/siprtc/siprtc/internal/sipnet"
)

// Default values of Config fields left zero.
const (
	DefaultRTPPortMin = 20000
	DefaultRTPPortMax = 29999
	defaultUserAgent  = "siprtc-sipphone"
	allowMethods      = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK"
)

// Config describes one phone. Net and LocalIP are required; the rest have working defaults.
type Config struct {
	Net     transport.Net // every socket is opened through it
	LocalIP netip.Addr    // address SIP and RTP bind to, and the one put in Contact and SDP
	SIPPort int           // 0 picks any free port

	User, Password, Domain string         // AOR user@Domain and digest credentials
	Registrar              netip.AddrPort // PBX address (SIP over UDP); outbound proxy for calls by user name
	DisplayName            string

	Codecs                 []string // preference order; default {"PCMU", "PCMA"}
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
}

func defaultOptions() options {
	return options{toneHz: 440, packetLogLimit: 100000, refresh: true, userAgent: defaultUserAgent}
}

// AutoAnswer sets how long the default incoming-call handler rings before answering (default 0).
func AutoAnswer(delay time.Duration) Option { return func(o *options) { o.autoAnswerDelay = delay } }

// ToneFrequency sets the frequency of the sine the phone sends as audio (default 440 Hz).
func ToneFrequency(hz float64) Option { return func(o *options) { o.toneHz = hz } }

// PacketLogLimit caps the per-packet receive log of each call (default 100000 packets).
func PacketLogLimit(n int) Option { return func(o *options) { o.packetLogLimit = n } }

// ManualMedia stops calls from starting their tone on answer: call Media().Start() yourself.
func ManualMedia() Option { return func(o *options) { o.manualMedia = true } }

// RegisterRefresh sets whether a successful Register is refreshed before it expires (default on).
func RegisterRefresh(on bool) Option { return func(o *options) { o.refresh = on } }

// UserAgent sets the User-Agent header (default "siprtc-sipphone").
func UserAgent(name string) Option { return func(o *options) { o.userAgent = name } }

// Phone is one SIP user agent with its calls.
type Phone struct {
	cfg    Config
	opts   options
	codecs []codec
	log    *slog.Logger

	// ctx is the phone's lifetime: Close cancels it, and every wait of the phone selects on it.
	ctx    context.Context
	cancel context.CancelFunc

	// Set by Start, read-only afterwards.
	stack  *sipnet.Stack
	client *sipgo.Client
	addr   netip.AddrPort

	// sendMu guards sipgo's request path: nothing is sent after Close takes it, so a request
	// never races the SIP socket's shutdown.
	sendMu   sync.RWMutex
	sendDone bool

	wg        sync.WaitGroup // goroutines and sipgo handlers running phone code
	closeDone chan struct{}

	mu         sync.Mutex
	started    bool
	closed     bool
	stopCtx    func() bool
	onIncoming func(*Incoming)
	calls      map[string]*Call     // by dialog key
	pending    map[string]*Incoming // incoming calls not answered yet, by early dialog key
	medias     map[*Media]struct{}
	reg        registration
}

type registration struct {
	callID  string
	fromTag string
	cseq    uint32
	stop    chan struct{} // closes the refresh goroutine of the last successful Register
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
			return nil, fmt.Errorf("%w: unsupported codec %q (PCMU and PCMA are)", ErrInvalidConfig, name)
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Phone{
		cfg:       cfg,
		opts:      o,
		codecs:    codecs,
		log:       cfg.Logger.With("phone", cfg.User),
		ctx:       ctx,
		cancel:    cancel,
		calls:     make(map[string]*Call),
		closeDone: make(chan struct{}),
		pending:   make(map[string]*Incoming),
		medias:    make(map[*Media]struct{}),
		reg:       registration{callID: newCallID(), fromTag: sip.GenerateTagN(16), cseq: randSeq()},
	}, nil
}

// Start binds the SIP socket through Config.Net and serves SIP. It returns once sipgo has
// registered the socket, so requests go out of it (never out of an OS socket sipgo opens itself).
// The phone serves until Close, or until ctx is done.
func (p *Phone) Start(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return ErrClosed
	case p.started:
		p.mu.Unlock()
		return ErrAlreadyStarted
	}
	p.started = true
	p.mu.Unlock()

	stack, err := sipnet.Listen(sipnet.Config{
		Net:               p.cfg.Net,
		Bind:              netip.AddrPortFrom(p.cfg.LocalIP, uint16(p.cfg.SIPPort)),
		UserAgent:         p.cfg.User,
		Hostname:          p.domain(),
		Logger:            p.log,
		NAT:               true, // Via ;rport
		UnhandledResponse: p.onStrayResponse,
	})
	if err != nil {
		return fmt.Errorf("sipphone: %w", err)
	}
	p.stack, p.client, p.addr = stack, stack.Client, stack.Addr

	srv := stack.Server
	srv.OnInvite(p.handler(p.handleInvite))
	srv.OnAck(p.handler(p.handleAck))
	srv.OnBye(p.handler(p.handleBye))
	srv.OnCancel(p.handler(p.handleStrayCancel))
	srv.OnPrack(p.handler(p.handlePrack))
	srv.OnOptions(p.handler(p.handleOptions))

	if err := stack.Serve(ctx); err != nil {
		_ = p.Close()
		if errors.Is(err, sipnet.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("sipphone: starting SIP: %w", err)
	}
	p.mu.Lock()
	p.stopCtx = context.AfterFunc(ctx, func() { _ = p.Close() })
	p.mu.Unlock()
	p.log.Debug("SIP serving", "addr", p.addr)
	return nil
}

// Addr is the SIP address the phone serves on (valid after Start).
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Contact is the phone's contact URI, sip:user@ip:port (after Start): another phone calls it
// directly with Call(ctx, p.Contact().String()).
func (p *Phone) Contact() *sip.Uri {
	return &sip.Uri{Scheme: "sip", User: p.cfg.User, Host: p.addr.Addr().String(), Port: int(p.addr.Port())}
}

// AOR is the phone's address of record, sip:user@domain.
func (p *Phone) AOR() *sip.Uri {
	return &sip.Uri{Scheme: "sip", User: p.cfg.User, Host: p.domain()}
}

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
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	return calls
}

// Close hangs up every call (a BYE is sent, its answer is not awaited), rejects incoming calls
// still pending, closes every socket and waits for every goroutine the phone started.
func (p *Phone) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.closeDone // a concurrent Close returns when the first one is done
		return nil
	}
	p.closed = true
	defer close(p.closeDone)
	stopCtx := p.stopCtx
	calls := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	if p.reg.stop != nil {
		close(p.reg.stop)
		p.reg.stop = nil
	}
	p.mu.Unlock()
	if stopCtx != nil {
		stopCtx()
	}

	for _, c := range calls {
		c.byeAndForget()
	}
	// Handlers waiting on pending calls wake up, answer 480 and return.
	p.cancel()

	p.mu.Lock()
	medias := make([]*Media, 0, len(p.medias))
	for m := range p.medias {
		medias = append(medias, m)
	}
	p.mu.Unlock()
	for _, m := range medias {
		m.close()
	}
	p.wg.Wait()

	p.sendMu.Lock()
	p.sendDone = true
	p.sendMu.Unlock()
	if p.stack != nil {
		_ = p.stack.Close()
	}
	p.log.Debug("closed")
	return nil
}

// goDo runs f on a goroutine Close waits for; false when the phone is closed.
func (p *Phone) goDo(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// handler wraps a sipgo handler so that Close waits for it and nothing runs after Close.
func (p *Phone) handler(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			if !req.IsAck() {
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Service Unavailable", nil))
			}
			return
		}
		p.wg.Add(1)
		p.mu.Unlock()
		defer p.wg.Done()
		h(req, tx)
	}
}

// ready reports whether the phone can send.
func (p *Phone) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case !p.started || p.client == nil:
		return ErrNotStarted
	}
	return nil
}

// request starts a client transaction, unless the phone is closing.
func (p *Phone) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.sendDone {
		return nil, ErrClosed
	}
	tx, err := p.client.TransactionRequest(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrTransaction, req.Method, req.Recipient.String(), err)
	}
	return tx, nil
}

// write sends a request outside any transaction (ACK for 2xx), unless the phone is closing.
func (p *Phone) write(req *sip.Request) error {
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.sendDone {
		return ErrClosed
	}
	return p.client.WriteRequest(req, sipgo.ClientRequestBuild)
}

// send runs one non-INVITE client transaction and returns its final response. One 401/407
// challenge is answered with the digest credentials; nextSeq gives the retry its new CSeq (nil:
// never retry, for CANCEL).
func (p *Phone) send(ctx context.Context, req *sip.Request, nextSeq func() uint32) (*sip.Response, error) {
	authorized := false
	for {
		tx, err := p.request(ctx, req)
		if err != nil {
			return nil, err
		}
		res, err := p.waitFinal(ctx, tx)
		tx.Terminate()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.Recipient.String(), err)
		}
		if authorized || nextSeq == nil || !isChallenge(res) || p.cfg.Password == "" {
			return res, nil
		}
		authorized = true
		// The finished transaction still holds req: retry on a copy.
		req = req.Clone()
		if err := p.authorize(req, res); err != nil {
			return res, err
		}
		req.CSeq().SeqNo = nextSeq()
		req.RemoveHeader("Via")
	}
}

// waitFinal waits for the final response of a non-INVITE transaction.
func (p *Phone) waitFinal(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			return nil, fmt.Errorf("%w: %w", ErrTransaction, tx.Err())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (p *Phone) domain() string {
	if p.cfg.Domain != "" {
		return p.cfg.Domain
	}
	if p.cfg.Registrar.IsValid() {
		return p.cfg.Registrar.Addr().String()
	}
	return p.cfg.LocalIP.String()
}

// fromHeader is the phone's From for requests outside a dialog.
func (p *Phone) fromHeader(tag string) *sip.FromHeader {
	from := &sip.FromHeader{DisplayName: p.cfg.DisplayName, Address: *p.AOR(), Params: sip.NewParams()}
	from.Params.Add("tag", tag)
	return from
}

func (p *Phone) contactHeader() *sip.ContactHeader {
	return &sip.ContactHeader{DisplayName: p.cfg.DisplayName, Address: *p.Contact()}
}

// commonHeaders adds the headers every request and answer of the phone carries.
func (p *Phone) commonHeaders(m interface{ AppendHeader(sip.Header) }) {
	m.AppendHeader(sip.NewHeader("User-Agent", p.opts.userAgent))
	m.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if p.cfg.Support100rel {
		m.AppendHeader(sip.NewHeader("Supported", "100rel"))
	}
}

// onStrayResponse sees responses no transaction matched: a retransmitted 2xx to an INVITE whose
// transaction has ended still needs our ACK again (RFC 3261 13.2.2.4).
func (p *Phone) onStrayResponse(res *sip.Response) {
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		return
	}
	key, ok := responseDialogKey(res)
	if !ok {
		return
	}
	p.mu.Lock()
	c := p.calls[key]
	p.mu.Unlock()
	if c != nil {
		c.resendAck()
	}
}

// Options sends OPTIONS to target (a user, through the registrar, or a SIP URI) and returns the
// final response: the probe PBXs and phones use to check each other. A non-2xx is returned with
// a *StatusError.
func (p *Phone) Options(ctx context.Context, target string) (*sip.Response, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	ruri, dest, err := p.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	req.AppendHeader(p.fromHeader(sip.GenerateTagN(16)))
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: ruri.Scheme, User: ruri.User, Host: ruri.Host, Port: ruri.Port}})
	callID := sip.CallIDHeader(newCallID())
	req.AppendHeader(&callID)
	var seq atomic.Uint32
	seq.Store(randSeq())
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq.Load(), MethodName: sip.OPTIONS})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(p.contactHeader())
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	p.commonHeaders(req)
	req.SetDestination(dest)
	res, err := p.send(ctx, req, func() uint32 { return seq.Add(1) })
	if err != nil {
		return nil, err
	}
	if !res.IsSuccess() {
		return res, statusError(sip.OPTIONS, res)
	}
	return res, nil
}

func (p *Phone) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	p.commonHeaders(res)
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res.AppendHeader(p.contactHeader())
	p.respond(tx, res)
}

// handleStrayCancel answers CANCELs that matched no INVITE transaction (sipgo handles the rest).
func (p *Phone) handleStrayCancel(req *sip.Request, tx sip.ServerTransaction) {
	p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
}

func (p *Phone) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		p.log.Debug("respond failed", "status", res.StatusCode, "error", err)
	}
}

func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x@siprtc", b)
}

// randSeq is a random initial CSeq or RSeq (RFC 3261 8.1.1.5, RFC 3262 3), kept at most 2^15 so
// that a long-lived sequence never reaches the 2^31 limit.
func randSeq() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])&0x7fff + 1
}
