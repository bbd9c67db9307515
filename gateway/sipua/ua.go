package sipua

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
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
	DefaultRegisterExpires = 600 * time.Second
	DefaultRetryMin        = time.Second
	DefaultRetryMax        = time.Minute
	DefaultKeepAlive       = 30 * time.Second
	DefaultRequestTimeout  = 8 * time.Second
	DefaultStagger         = 20 * time.Millisecond
	DefaultMinSE           = 90 * time.Second
	// DefaultSessionExpires is the session interval RFC 4028 recommends; Config.SessionExpires
	// is 0 (no session timers) unless set.
	DefaultSessionExpires = 1800 * time.Second
	defaultUserAgent      = "siprtc"
)

// The transports of Config.Transport.
const (
	UDP = "udp"
	TCP = "tcp"
	TLS = "tls"
)

// The DTMF bodies of SIP INFO (Config.DTMFType).
const (
	// DTMFRelay is application/dtmf-relay: "Signal=5\r\nDuration=160\r\n" (Cisco, FreeSWITCH).
	DTMFRelay = "application/dtmf-relay"
	// DTMFPlain is application/dtmf: the digit alone.
	DTMFPlain = "application/dtmf"
)

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, INFO, UPDATE"

// Account is one identity of the user agent: the address of record User@Domain with its digest
// credentials. Its contact is sip:User@LocalIP:Port.
type Account struct {
	User, Password string
	AuthUser       string // digest user name when it is not User
	DisplayName    string
}

// Config describes a user agent. Net and LocalIP are required; the rest have working defaults.
type Config struct {
	Net     transport.Net // every socket is opened through it
	LocalIP netip.Addr    // address SIP binds to, and the one put in Contact
	Port    int           // SIP port (UDP, and TCP with Transport "tcp"); 0 picks a free one

	// Server is the PBX: registrar, and outbound proxy for calls to bare numbers.
	Server netip.AddrPort
	// Transport is how requests to Server travel: "udp" (default), "tcp" or "tls". With "tcp" the
	// UA also serves TCP on Port.
	Transport string
	// TLS configures SIP over TLS: with Certificates the UA serves TLS on TLSPort (0: any), and
	// its RootCAs (and ServerName) check the servers the UA connects to over TLS.
	TLS     *tls.Config
	TLSPort int
	// Domain is the domain of the accounts' addresses of record (default: Server's address).
	Domain string

	Accounts  []Account
	UserAgent string // User-Agent header (default "siprtc")

	// Support100rel sends provisional responses reliably (RFC 3262) to callers that support it
	// and advertises it on INVITEs. Reliable provisional responses received are PRACKed anyway.
	Support100rel bool
	// SessionExpires enables session timers (RFC 4028) with this interval (0: none);
	// DefaultSessionExpires is the usual value. MinSE is the smallest interval accepted
	// (default 90 s, the RFC's minimum).
	SessionExpires, MinSE time.Duration
	// DTMFType is the body SendDTMF uses: DTMFRelay (default) or DTMFPlain. Both are received.
	DTMFType string

	// RegisterExpires is the binding time KeepRegistered asks for (default 600 s). A binding is
	// refreshed after half its granted time, and at least 5 s before it ends.
	RegisterExpires time.Duration
	// RetryMin and RetryMax bound the exponential backoff (with jitter) between failed
	// registration attempts (default 1 s and 1 min).
	RetryMin, RetryMax time.Duration
	// KeepAlive is the interval of the OPTIONS sent to Server while registrations are kept, to
	// keep NAT bindings open and notice a lost server (default 30 s; negative: none). A keepalive
	// without an answer marks the registrations failed and starts re-registering.
	KeepAlive time.Duration
	// RequestTimeout bounds one REGISTER or keepalive exchange (default 8 s).
	RequestTimeout time.Duration
	// Stagger spaces the REGISTERs of KeepRegistered's accounts (default 20 ms), so that a large
	// pool does not hit the PBX in one burst.
	Stagger time.Duration
	// OnRegistration sees every change of a registration's state. It runs on the registration's
	// goroutine: keep it short.
	OnRegistration func(RegistrationStatus)

	Logger *slog.Logger // default slog.Default()
}

// UA is a SIP user agent for a set of accounts: registrations, calls both ways and their dialogs.
// Every goroutine it starts ends by Close.
type UA struct {
	cfg      Config
	log      *slog.Logger
	accounts map[string]*Account
	regs     map[string]*Registration // one per account, in Config order below
	order    []string

	// ctx is the UA's lifetime: Close cancels it, and every wait of the UA selects on it.
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

	wg         sync.WaitGroup // goroutines and sipgo handlers running UA code
	closeDone  chan struct{}
	onIncoming atomic.Pointer[func(*Incoming)]

	mu        sync.Mutex
	started   bool
	closed    bool
	stopCtx   func() bool
	dialogs   map[string]*Dialog   // by dialog key
	pending   map[string]*Incoming // incoming calls not answered yet, by early dialog key
	keepalive bool                 // the keepalive loop runs
	kick      chan struct{}        // wakes the keepalive loop when a registration starts
}

// New validates cfg and builds a user agent; Start serves SIP.
func New(cfg Config) (*UA, error) {
	if cfg.Net == nil {
		return nil, fmt.Errorf("%w: Net is required", ErrInvalidConfig)
	}
	if !cfg.LocalIP.IsValid() || cfg.LocalIP.IsUnspecified() {
		return nil, fmt.Errorf("%w: LocalIP must be a specific address, got %v", ErrInvalidConfig, cfg.LocalIP)
	}
	if cfg.Port < 0 || cfg.Port > 65535 || cfg.TLSPort < 0 || cfg.TLSPort > 65535 {
		return nil, fmt.Errorf("%w: port %d/%d", ErrInvalidConfig, cfg.Port, cfg.TLSPort)
	}
	cfg.Transport = strings.ToLower(cfg.Transport)
	switch cfg.Transport {
	case "":
		cfg.Transport = UDP
	case UDP, TCP:
	case TLS:
		if cfg.TLS == nil {
			return nil, fmt.Errorf("%w: transport tls needs a TLS config", ErrInvalidConfig)
		}
	default:
		return nil, fmt.Errorf("%w: transport %q (udp, tcp or tls)", ErrInvalidConfig, cfg.Transport)
	}
	switch cfg.DTMFType {
	case "":
		cfg.DTMFType = DTMFRelay
	case DTMFRelay, DTMFPlain:
	default:
		return nil, fmt.Errorf("%w: DTMF type %q", ErrInvalidConfig, cfg.DTMFType)
	}
	if cfg.MinSE == 0 {
		cfg.MinSE = DefaultMinSE
	}
	if cfg.SessionExpires < 0 || (cfg.SessionExpires > 0 && cfg.SessionExpires < cfg.MinSE) {
		return nil, fmt.Errorf("%w: session expires %v below Min-SE %v", ErrInvalidConfig, cfg.SessionExpires, cfg.MinSE)
	}
	setDefault(&cfg.RegisterExpires, DefaultRegisterExpires)
	setDefault(&cfg.RetryMin, DefaultRetryMin)
	setDefault(&cfg.RetryMax, DefaultRetryMax)
	setDefault(&cfg.KeepAlive, DefaultKeepAlive)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.Stagger, DefaultStagger)
	if cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("%w: RetryMax %v below RetryMin %v", ErrInvalidConfig, cfg.RetryMax, cfg.RetryMin)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &UA{
		cfg:       cfg,
		log:       cfg.Logger,
		accounts:  map[string]*Account{},
		regs:      map[string]*Registration{},
		ctx:       ctx,
		cancel:    cancel,
		closeDone: make(chan struct{}),
		dialogs:   map[string]*Dialog{},
		pending:   map[string]*Incoming{},
		kick:      make(chan struct{}, 1),
	}
	for _, a := range cfg.Accounts {
		if a.User == "" {
			cancel()
			return nil, fmt.Errorf("%w: account without a user", ErrInvalidConfig)
		}
		if _, dup := u.accounts[a.User]; dup {
			cancel()
			return nil, fmt.Errorf("%w: account %q twice", ErrInvalidConfig, a.User)
		}
		acc := a
		u.accounts[a.User] = &acc
		u.regs[a.User] = newRegistration(u, &acc)
		u.order = append(u.order, a.User)
	}
	return u, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// Start binds the SIP socket through Config.Net and serves SIP. It returns once sipgo has
// registered the socket, so requests go out of it (never out of an OS socket sipgo opens itself).
// The UA serves until Close, or until ctx is done.
func (u *UA) Start(ctx context.Context) error {
	u.mu.Lock()
	switch {
	case u.closed:
		u.mu.Unlock()
		return ErrClosed
	case u.started:
		u.mu.Unlock()
		return ErrAlreadyStarted
	}
	u.started = true
	u.mu.Unlock()

	nc := sipnet.Config{
		Net:               u.cfg.Net,
		Bind:              netip.AddrPortFrom(u.cfg.LocalIP, uint16(u.cfg.Port)),
		UserAgent:         u.cfg.UserAgent,
		Hostname:          u.domain(),
		Logger:            u.log,
		NAT:               true, // Via ;rport
		UnhandledResponse: u.onStrayResponse,
		TCP:               u.cfg.Transport == TCP,
		ClientTLS:         u.cfg.TLS,
	}
	if t := u.cfg.TLS; t != nil && (len(t.Certificates) > 0 || t.GetCertificate != nil) {
		nc.TLS, nc.TLSPort = t, u.cfg.TLSPort
	}
	stack, err := sipnet.Listen(nc)
	if err != nil {
		return fmt.Errorf("sipua: %w", err)
	}
	u.stack, u.client, u.addr = stack, stack.Client, stack.Addr

	srv := stack.Server
	srv.OnInvite(u.handler(u.handleInvite))
	srv.OnAck(u.handler(u.inDialog(u.handleAck)))
	srv.OnBye(u.handler(u.inDialog(u.handleBye)))
	srv.OnCancel(u.handler(u.handleStrayCancel))
	srv.OnPrack(u.handler(u.handlePrack))
	srv.OnOptions(u.handler(u.handleOptions))
	srv.OnInfo(u.handler(u.inDialog(u.handleInfo)))
	srv.OnUpdate(u.handler(u.inDialog(u.handleUpdate)))

	if err := stack.Serve(ctx); err != nil {
		_ = u.Close()
		if errors.Is(err, sipnet.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("sipua: starting SIP: %w", err)
	}
	u.mu.Lock()
	u.stopCtx = context.AfterFunc(ctx, func() { _ = u.Close() })
	u.mu.Unlock()
	u.log.Debug("SIP serving", "addr", u.addr, "transport", u.cfg.Transport)
	return nil
}

// Addr is the UDP address the UA serves SIP on (valid after Start).
func (u *UA) Addr() netip.AddrPort { return u.addr }

// TLSAddr is where the UA serves SIP over TLS (invalid when it does not).
func (u *UA) TLSAddr() netip.AddrPort {
	if u.stack == nil {
		return netip.AddrPort{}
	}
	return u.stack.TLSAddr
}

// Contact is the contact URI of an account, sip:user@ip:port (after Start), with the transport
// parameter when Config.Transport is not UDP. Other user agents call it directly.
func (u *UA) Contact(user string) *sip.Uri {
	c := &sip.Uri{Scheme: "sip", User: user, Host: u.addr.Addr().String(), Port: int(u.addr.Port())}
	switch u.cfg.Transport {
	case TCP:
		c.UriParams = sip.NewParams()
		c.UriParams.Add("transport", TCP)
	case TLS:
		c.UriParams = sip.NewParams()
		c.UriParams.Add("transport", TLS)
		if a := u.TLSAddr(); a.IsValid() {
			c.Port = int(a.Port())
		}
	}
	return c
}

// AOR is an account's address of record, sip:user@domain.
func (u *UA) AOR(user string) *sip.Uri {
	return &sip.Uri{Scheme: "sip", User: user, Host: u.domain()}
}

// OnIncoming sets the handler of incoming calls. It runs on its own goroutine per call; the call
// stays pending until the handler (or anything it starts) answers or rejects it, or the caller
// cancels. A handler that waits must also stop waiting on Cancelled, or Close waits for it.
// Without a handler, calls are rejected with 480.
func (u *UA) OnIncoming(h func(*Incoming)) { u.onIncoming.Store(&h) }

// Dialogs returns the established dialogs.
func (u *UA) Dialogs() []*Dialog {
	u.mu.Lock()
	defer u.mu.Unlock()
	ds := make([]*Dialog, 0, len(u.dialogs))
	for _, d := range u.dialogs {
		ds = append(ds, d)
	}
	return ds
}

// Close stops keeping registrations (bindings are left to expire: Unregister removes them),
// hangs up every dialog (a BYE is sent, its answer is not awaited), rejects incoming calls still
// pending with 480, closes the socket and waits for every goroutine the UA started.
func (u *UA) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		<-u.closeDone // a concurrent Close returns when the first one is done
		return nil
	}
	u.closed = true
	defer close(u.closeDone)
	stopCtx := u.stopCtx
	dialogs := make([]*Dialog, 0, len(u.dialogs))
	for _, d := range u.dialogs {
		dialogs = append(dialogs, d)
	}
	u.mu.Unlock()
	if stopCtx != nil {
		stopCtx()
	}
	for _, r := range u.regs {
		r.stopKeeping()
	}
	for _, d := range dialogs {
		d.byeAndForget()
	}
	// Handlers waiting on pending calls wake up, answer 480 and return; loops end.
	u.cancel()
	u.wg.Wait()

	u.sendMu.Lock()
	u.sendDone = true
	u.sendMu.Unlock()
	if u.stack != nil {
		_ = u.stack.Close()
	}
	u.log.Debug("closed")
	return nil
}

// Go runs f on a goroutine Close waits for, so that work tied to the UA's calls ends with it;
// false (and f not run) once the UA is closed.
func (u *UA) Go(f func()) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		f()
	}()
	return true
}

// handler wraps a sipgo handler so that Close waits for it and nothing runs after Close.
func (u *UA) handler(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			if !req.IsAck() {
				_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Service Unavailable", nil))
			}
			return
		}
		u.wg.Add(1)
		u.mu.Unlock()
		defer u.wg.Done()
		h(req, tx)
	}
}

// ready reports whether the UA can send.
func (u *UA) ready() error {
	u.mu.Lock()
	closed, serving := u.closed, u.started && u.client != nil
	u.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !serving {
		return ErrNotStarted
	}
	return nil
}

func (u *UA) account(user string) (*Account, error) {
	acc := u.accounts[user]
	if acc == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownAccount, user)
	}
	return acc, nil
}

// connect opens the stream connection a request over TCP or TLS needs.
func (u *UA) connect(ctx context.Context, req *sip.Request) error {
	if !sip.IsReliable(req.Transport()) {
		return nil
	}
	dest, err := netip.ParseAddrPort(req.Destination())
	if err != nil {
		return fmt.Errorf("%w: destination %q: %w", ErrTransaction, req.Destination(), err)
	}
	if err := u.stack.Connect(ctx, req.Transport(), dest); err != nil {
		return fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	return nil
}

// request starts a client transaction, unless the UA is closing.
func (u *UA) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	u.sendMu.RLock()
	defer u.sendMu.RUnlock()
	if u.sendDone {
		return nil, ErrClosed
	}
	if err := u.connect(ctx, req); err != nil {
		return nil, err
	}
	tx, err := u.client.TransactionRequest(ctx, req, sipnet.BuildRequest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrTransaction, req.Method, req.Recipient.String(), err)
	}
	return tx, nil
}

// write sends a request outside any transaction (ACK for 2xx), unless the UA is closing.
func (u *UA) write(req *sip.Request) error {
	u.sendMu.RLock()
	defer u.sendMu.RUnlock()
	if u.sendDone {
		return ErrClosed
	}
	if err := u.connect(u.ctx, req); err != nil {
		return err
	}
	return u.client.WriteRequest(req, sipnet.BuildRequest)
}

// send runs one non-INVITE client transaction and returns its final response. One 401/407
// challenge is answered with acc's credentials; nextSeq gives the retry its new CSeq (nil: never
// retry, for CANCEL).
func (u *UA) send(ctx context.Context, acc *Account, req *sip.Request, nextSeq func() uint32) (*sip.Response, error) {
	authorized := false
	for {
		tx, err := u.request(ctx, req)
		if err != nil {
			return nil, err
		}
		res, err := u.waitFinal(ctx, tx, nil)
		tx.Terminate()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.Recipient.String(), err)
		}
		if authorized || nextSeq == nil || !isChallenge(res) || acc == nil || acc.Password == "" {
			return res, nil
		}
		authorized = true
		// The finished transaction still holds req: retry on a copy.
		req = req.Clone()
		if err := authorize(acc, req, res); err != nil {
			return res, err
		}
		req.CSeq().SeqNo = nextSeq()
		req.RemoveHeader("Via")
	}
}

// waitFinal waits for the final response of a transaction, until ctx or stop (a dialog's end:
// ErrEnded) or the UA's end.
func (u *UA) waitFinal(ctx context.Context, tx sip.ClientTransaction, stop <-chan struct{}) (*sip.Response, error) {
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
		case <-stop:
			return nil, ErrEnded
		case <-u.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (u *UA) domain() string {
	if u.cfg.Domain != "" {
		return u.cfg.Domain
	}
	if u.cfg.Server.IsValid() {
		return u.cfg.Server.Addr().String()
	}
	return u.cfg.LocalIP.String()
}

// serverHop is the PBX as next hop.
func (u *UA) serverHop() hop {
	return hop{addr: u.cfg.Server.String(), transport: u.cfg.Transport}
}

// fromHeader is an account's From for requests outside a dialog.
func (u *UA) fromHeader(acc *Account, tag string) *sip.FromHeader {
	from := &sip.FromHeader{DisplayName: acc.DisplayName, Address: *u.AOR(acc.User), Params: sip.NewParams()}
	from.Params.Add("tag", tag)
	return from
}

func (u *UA) contactHeader(acc *Account) *sip.ContactHeader {
	return &sip.ContactHeader{DisplayName: acc.DisplayName, Address: *u.Contact(acc.User)}
}

// supported lists the extensions the UA supports.
func (u *UA) supported() []string {
	var tags []string
	if u.cfg.Support100rel {
		tags = append(tags, "100rel")
	}
	if u.cfg.SessionExpires > 0 {
		tags = append(tags, "timer")
	}
	return tags
}

// commonHeaders adds the headers every request and answer of the UA carries.
func (u *UA) commonHeaders(m interface{ AppendHeader(sip.Header) }) {
	m.AppendHeader(sip.NewHeader("User-Agent", u.cfg.UserAgent))
	m.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if tags := u.supported(); len(tags) > 0 {
		m.AppendHeader(sip.NewHeader("Supported", strings.Join(tags, ", ")))
	}
}

// outOfDialog builds a request outside any dialog from acc to ruri.
func (u *UA) outOfDialog(method sip.RequestMethod, acc *Account, ruri sip.Uri, seq uint32) *sip.Request {
	req := sip.NewRequest(method, ruri)
	req.AppendHeader(u.fromHeader(acc, sip.GenerateTagN(16)))
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: ruri.Scheme, User: ruri.User, Host: ruri.Host, Port: ruri.Port}, Params: sip.NewParams()})
	callID := sip.CallIDHeader(newCallID())
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(u.contactHeader(acc))
	u.commonHeaders(req)
	return req
}

// onStrayResponse sees responses no transaction matched: a retransmitted 2xx to an INVITE whose
// transaction has ended still needs our ACK again (RFC 3261 13.2.2.4).
func (u *UA) onStrayResponse(res *sip.Response) {
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		return
	}
	key, ok := responseDialogKey(res)
	if !ok {
		return
	}
	if d := u.dialog(key); d != nil {
		d.resendAck(cseq.SeqNo)
	}
}

// Options sends OPTIONS from an account to target (a user, through Server, or a SIP URI) and
// returns the final response: the probe PBXs and phones use to check each other. A non-2xx is
// returned with a *StatusError.
func (u *UA) Options(ctx context.Context, from, target string) (*sip.Response, error) {
	if err := u.ready(); err != nil {
		return nil, err
	}
	acc, err := u.account(from)
	if err != nil {
		return nil, err
	}
	ruri, next, err := u.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	return u.options(ctx, acc, ruri, next)
}

func (u *UA) options(ctx context.Context, acc *Account, ruri sip.Uri, next hop) (*sip.Response, error) {
	var seq atomic.Uint32
	seq.Store(randSeq())
	req := u.outOfDialog(sip.OPTIONS, acc, ruri, seq.Load())
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	next.apply(req)
	res, err := u.send(ctx, acc, req, func() uint32 { return seq.Add(1) })
	if err != nil {
		return nil, err
	}
	if !res.IsSuccess() {
		return res, statusError(sip.OPTIONS, res)
	}
	return res, nil
}

// resolveTarget turns a call target into a Request-URI and the next hop. target is a user
// ("1001", sent to Server as sip:1001@Domain), user@host, or a SIP URI, sent to its host
// directly when that is an IP address (and through Server otherwise).
func (u *UA) resolveTarget(target string) (sip.Uri, hop, error) {
	var uri sip.Uri
	bare := false
	lower := strings.ToLower(target)
	switch {
	case target == "":
		return uri, hop{}, fmt.Errorf("%w: empty", ErrBadTarget)
	case strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:"):
		if err := sip.ParseUri(target, &uri); err != nil {
			return uri, hop{}, fmt.Errorf("%w: %q: %w", ErrBadTarget, target, err)
		}
	case strings.Contains(target, "@"):
		if err := sip.ParseUri("sip:"+target, &uri); err != nil {
			return uri, hop{}, fmt.Errorf("%w: %q: %w", ErrBadTarget, target, err)
		}
	default:
		uri, bare = sip.Uri{Scheme: "sip", User: target, Host: u.domain()}, true
	}
	if uri.Scheme != "sip" {
		return uri, hop{}, fmt.Errorf("%w: %q: only sip: URIs", ErrBadTarget, target)
	}
	if h, ok := uriHop(uri, UDP); ok && !bare {
		if h.addr == u.cfg.Server.String() && !uri.UriParams.Has("transport") {
			h.transport = u.cfg.Transport
		}
		return uri, h, nil
	}
	if u.cfg.Server.IsValid() {
		return uri, u.serverHop(), nil
	}
	if h, ok := uriHop(uri, UDP); ok {
		return uri, h, nil
	}
	return uri, hop{}, fmt.Errorf("%w: to reach %q", ErrNoServer, target)
}

func (u *UA) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	u.commonHeaders(res)
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	if acc := u.accountOf(req); acc != nil {
		res.AppendHeader(u.contactHeader(acc))
	}
	u.respond(tx, res)
}

// handleStrayCancel answers CANCELs that matched no INVITE transaction (sipgo handles the rest).
func (u *UA) handleStrayCancel(req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
}

func (u *UA) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		u.log.Debug("respond failed", "status", res.StatusCode, "error", err)
	}
}

// accountOf is the account a request is for: the Request-URI's user, else the To user; with a
// single account, that one.
func (u *UA) accountOf(req *sip.Request) *Account {
	if acc := u.accounts[req.Recipient.User]; acc != nil {
		return acc
	}
	if to := req.To(); to != nil {
		if acc := u.accounts[to.Address.User]; acc != nil {
			return acc
		}
	}
	if len(u.order) == 1 {
		return u.accounts[u.order[0]]
	}
	return nil
}

// dialog finds an established dialog by key.
func (u *UA) dialog(key string) *Dialog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[key]
}

// dialogOf finds the dialog an in-dialog request belongs to.
func (u *UA) dialogOf(req *sip.Request) *Dialog {
	key, ok := requestDialogKey(req)
	if !ok {
		return nil
	}
	return u.dialog(key)
}

// noDialog answers an in-dialog request that matched no dialog.
func (u *UA) noDialog(req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
}

// wait blocks for d, or until ctx or the UA ends; false when it did not wait d out.
func (u *UA) wait(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
	case <-ctx.Done():
	case <-u.ctx.Done():
	}
	return false
}
