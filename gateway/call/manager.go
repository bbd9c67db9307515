package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/media"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// Errors of the call layer.
var (
	// ErrDraining: the gateway is shutting down and takes no new call.
	ErrDraining = errors.New("call: gateway is shutting down")
	// ErrNoServer: Attach was not called before the first call.
	ErrNoServer = errors.New("call: no signalling server attached")
	errInvalid  = errors.New("call: invalid config")
)

// DefaultHangupTimeout bounds the wait for the answer to a BYE when a call ends.
const DefaultHangupTimeout = 5 * time.Second

// Config is what a Manager builds its calls from.
type Config struct {
	// UA is the SIP user agent holding the proxy and pool accounts (required).
	UA *sipua.UA
	// RTC builds each call's PeerConnection (codecs, ICE, network).
	RTC rtc.Config
	// MediaNet opens the SIP legs' RTP/RTCP sockets; nil is the standard network.
	MediaNet transport.Net
	// MediaIP is where the SIP legs listen and the address written in the SIP SDP (required).
	// SDPIP, when valid, is written instead (1:1 NAT).
	MediaIP, SDPIP netip.Addr
	// PortMin and PortMax bound the SIP legs' ports (0, 0: any).
	PortMin, PortMax uint16
	// Pool are the accounts WebRTC users call out from; Proxy is the account inbound calls
	// routed by X-Number arrive on ("" when off). With an empty pool, calls leave from Proxy.
	Pool  []string
	Proxy string
	// PSTNPrefix and PSTNServer route calls whose invitation content flags them as PSTN calls
	// ({"pstn":true}): the INVITE goes to sip:PSTNPrefix+number@PSTNServer.
	PSTNPrefix string
	PSTNServer netip.AddrPort
	// Registered reports whether an account is registered; the pool prefers those. Optional.
	Registered func(account string) bool
	// OnEnd receives every call's record once it has ended (CDR, metrics). It runs on the
	// call's teardown goroutine, under the lock Observe takes: it must not call Observe.
	OnEnd func(Record)
	// OnAnswer is told each call's setup time (invite to answer) when it is answered.
	OnAnswer func(Direction, time.Duration)
	// HangupTimeout bounds the wait for a BYE's answer (default 5 s).
	HangupTimeout time.Duration
	// Logger receives the calls' events; nil discards.
	Logger *slog.Logger
}

// Manager ties SIP dialogs, signalling invitations and media bridges into calls. It implements
// signaling.Backend for the client side and takes incoming SIP calls with HandleIncoming.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	pool      *accountPool
	supported []rtc.Codec

	srv atomic.Pointer[signaling.Server]

	ctx     context.Context
	cancel  context.CancelFunc
	running tracker // the goroutines of goTrack

	// deliverMu is held while an incoming call is delivered and registered, so that a client
	// answering at once finds its call.
	deliverMu sync.Mutex

	// statsMu orders a call's last counters (OnEnd) against Observe.
	statsMu sync.Mutex

	mu       sync.Mutex
	calls    map[string]*Call
	draining bool
	closed   bool
	idle     chan struct{} // closed when calls becomes empty while draining
}

var _ signaling.Backend = (*Manager)(nil)

// New builds a Manager; Attach gives it the signalling server before the first call.
func New(cfg Config) (*Manager, error) {
	if cfg.UA == nil {
		return nil, fmt.Errorf("%w: no user agent", errInvalid)
	}
	if !cfg.MediaIP.IsValid() {
		return nil, fmt.Errorf("%w: no media address", errInvalid)
	}
	if len(cfg.Pool) == 0 && cfg.Proxy == "" {
		return nil, fmt.Errorf("%w: neither a pool nor a proxy account", errInvalid)
	}
	if cfg.HangupTimeout <= 0 {
		cfg.HangupTimeout = DefaultHangupTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, log: log, pool: newAccountPool(cfg.Pool), supported: cfg.RTC.SupportedCodecs(),
		ctx: ctx, cancel: cancel, calls: map[string]*Call{},
	}, nil
}

// Attach sets the signalling server remote invitations are delivered through.
func (m *Manager) Attach(srv *signaling.Server) { m.srv.Store(srv) }

// Active is the number of calls in progress.
func (m *Manager) Active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

// Calls returns a snapshot of the calls in progress.
func (m *Manager) Calls() []*Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		out = append(out, c)
	}
	return out
}

// Observe runs f with the calls in progress, while no call can end: counters summed over the
// records OnEnd received and f's live calls grow monotonically. f must not block.
func (m *Manager) Observe(f func(live []*Call)) {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	f(m.Calls())
}

// StopAccepting makes the manager refuse new calls: client invites get an error, SIP INVITEs
// 503. Calls in progress go on.
func (m *Manager) StopAccepting() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draining = true
}

// Drain stops new calls and waits until the calls in progress have ended on their own, or ctx
// is done (its error is returned then).
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	if len(m.calls) == 0 {
		m.mu.Unlock()
		return nil
	}
	if m.idle == nil {
		m.idle = make(chan struct{})
	}
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HangupAll ends every call in progress (BYE, CANCEL or a final response on the SIP side, a
// hangup or failure event on the client side).
func (m *Manager) HangupAll(reason string) {
	for _, c := range m.Calls() {
		c.hangup(reason)
	}
}

// Close stops new calls, hangs up every call and waits, within ctx, until every call has
// been torn down and every goroutine of the manager has ended.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.draining, m.closed = true, true
	m.mu.Unlock()
	m.HangupAll("gateway shutdown")
	err := m.running.wait(ctx)
	m.cancel() // abort what still waits (BYE answers, INVITEs)
	if err != nil {
		_ = m.running.wait(context.Background())
	}
	return err
}

// goTrack runs f on a goroutine that Close waits for.
func (m *Manager) goTrack(f func()) {
	m.running.add()
	go func() {
		defer m.running.done()
		f()
	}()
}

// tracker counts running goroutines. Unlike a WaitGroup it may gain goroutines while
// somebody waits for it to drain (a call ending during Close starts its teardown).
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
}

// wait returns once no goroutine runs, or with ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.n == 0 {
			t.mu.Unlock()
			return nil
		}
		zero := t.zero
		t.mu.Unlock()
		select {
		case <-zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Accepting reports whether the manager takes new calls: false once StopAccepting or Drain ran.
func (m *Manager) Accepting() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.draining
}

func (m *Manager) add(c *Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.draining {
		return ErrDraining
	}
	m.calls[c.id] = c
	return nil
}

func (m *Manager) remove(c *Call) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls[c.id] == c {
		delete(m.calls, c.id)
	}
	if len(m.calls) == 0 && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
}

// find returns the call with the signalling id, or nil.
func (m *Manager) find(id string) *Call {
	m.mu.Lock()
	c := m.calls[id]
	m.mu.Unlock()
	if c != nil {
		return c
	}
	// An incoming call being delivered is registered right after DeliverInvitation returns.
	m.deliverMu.Lock()
	m.deliverMu.Unlock() //nolint:staticcheck // an empty critical section: wait for the delivery
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[id]
}

// callOf finds a call of session s for a client request.
func (m *Manager) callOf(s *signaling.Session, id string) (*Call, error) {
	c := m.find(id)
	if c == nil || (s != nil && c.user != s.User()) {
		return nil, &signaling.Error{Code: signaling.CodeUnknownCall, Message: "no such call"}
	}
	return c, nil
}

// ---- signaling.Backend ----

// Invite places a client's call to a SIP number (see outbound.go).
func (m *Manager) Invite(ctx context.Context, s *signaling.Session, li *signaling.LocalInvitation) error {
	return m.invite(s, li)
}

// Cancel withdraws an outgoing call: SIP CANCEL.
func (m *Manager) Cancel(ctx context.Context, s *signaling.Session, li *signaling.LocalInvitation) error {
	c := m.find(li.CallID())
	if c == nil {
		return nil
	}
	reason, code := "canceled by the caller", 487
	if li.State() == signaling.LocalFailure {
		reason = "invitation failed: " + string(li.FailureCode())
		if li.FailureCode() == signaling.PeerNoResponse || li.FailureCode() == signaling.InvitationExpire {
			code = 408
		}
	}
	c.end(ending{reason: reason, code: code, outcome: OutcomeCanceled})
	return nil
}

// Ringing sends 180 Ringing for an incoming call the client is alerting.
func (m *Manager) Ringing(ctx context.Context, s *signaling.Session, ri *signaling.RemoteInvitation) error {
	c := m.find(ri.CallID())
	if c == nil || c.in == nil {
		return nil
	}
	m.goTrack(func() {
		if err := c.in.Ring(); err != nil {
			c.log.Debug("180 not sent", "err", err)
		}
	})
	return nil
}

// Accept answers an incoming call with the client's SDP answer (see inbound.go).
func (m *Manager) Accept(ctx context.Context, s *signaling.Session, ri *signaling.RemoteInvitation, response string, answer *signaling.SessionDescription) error {
	c := m.find(ri.CallID())
	if c == nil {
		return &signaling.Error{Code: signaling.CodeUnknownCall, Message: "no such call"}
	}
	return c.accept(s, answer)
}

// Refuse rejects an incoming call with the client's code (486, 600, 603).
func (m *Manager) Refuse(ctx context.Context, s *signaling.Session, ri *signaling.RemoteInvitation, response string, sipCode int) error {
	c := m.find(ri.CallID())
	if c == nil {
		return nil
	}
	if sipCode == 0 {
		sipCode = 603
	}
	c.end(ending{reason: "refused by the callee", code: sipCode, reject: sipCode, outcome: OutcomeRefused})
	return nil
}

// Abandon answers the SIP side of an incoming call the signalling layer ended on its own.
func (m *Manager) Abandon(ri *signaling.RemoteInvitation) {
	c := m.find(ri.CallID())
	if c == nil {
		return
	}
	code := ri.FailureCode()
	e := ending{reason: "invitation failed: " + string(code), code: 480, reject: 480, outcome: OutcomeFailed, bye: true}
	switch code {
	case signaling.InvitationExpire:
		e.code, e.reject = 408, 408
	case signaling.PeerOffline, signaling.NotLoggedIn:
		e.outcome = OutcomeOffline
	}
	c.end(e)
}

// SDP takes a description the client sends after its invite or accept: the answer to the
// gateway's offer, or a new offer (renegotiation), answered with an sdp event.
func (m *Manager) SDP(ctx context.Context, s *signaling.Session, callID string, d signaling.SessionDescription) error {
	c, err := m.callOf(s, callID)
	if err != nil {
		return err
	}
	return c.clientSDP(d)
}

// Candidate adds one of the client's trickled ICE candidates.
func (m *Manager) Candidate(ctx context.Context, s *signaling.Session, callID string, cand signaling.ICECandidate) error {
	c, err := m.callOf(s, callID)
	if err != nil {
		return err
	}
	init := webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid, SDPMLineIndex: cand.SDPMLineIndex, UsernameFragment: cand.UsernameFragment}
	if cand.End() {
		return nil // pion needs no end-of-candidates
	}
	if init.SDPMid == nil && init.SDPMLineIndex == nil {
		zero := uint16(0) // BUNDLE: the first m-line carries the transport
		init.SDPMLineIndex = &zero
	}
	if err := c.peer.AddICECandidate(init); err != nil {
		c.log.Debug("client candidate not taken", "err", err)
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "candidate not taken"}
	}
	return nil
}

// DTMF sends a digit the client pressed to the SIP side: RFC 4733 in the RTP leg when the SIP
// side negotiated telephone-event, SIP INFO otherwise.
func (m *Manager) DTMF(ctx context.Context, s *signaling.Session, callID string, d signaling.DTMF) error {
	c, err := m.callOf(s, callID)
	if err != nil {
		return err
	}
	return c.sendDTMF(rune(d.Digit[0]), d.Duration)
}

// Hangup ends an established call at the client's request: SIP BYE.
func (m *Manager) Hangup(ctx context.Context, s *signaling.Session, callID string, reason string) error {
	c, err := m.callOf(s, callID)
	if err != nil {
		return err
	}
	r := "hung up by the WebRTC user"
	if reason != "" {
		r += ": " + reason
	}
	// reject: an incoming call whose 200 is not out yet is refused instead.
	c.end(ending{reason: r, bye: true, reject: 480, outcome: OutcomeAnswered})
	return nil
}

// SessionClosed hangs up the established calls of an ended session and frees the pool
// account its user held.
func (m *Manager) SessionClosed(s *signaling.Session) {
	for _, c := range m.Calls() {
		if c.sessionID() == s.ID() {
			c.end(ending{reason: "session closed", bye: true, reject: 480, outcome: OutcomeAnswered})
		}
	}
	m.pool.release(s.User())
}

// ---- routing ----

// isPSTN reports whether an invitation's content flags a PSTN call: a JSON object with
// "pstn": true.
func isPSTN(content string) bool {
	if !strings.Contains(content, "pstn") {
		return false
	}
	var v struct {
		PSTN bool `json:"pstn"`
	}
	return json.Unmarshal([]byte(content), &v) == nil && v.PSTN
}

// routeIncoming finds the WebRTC user an incoming SIP call is for: the X-Number user for the
// proxy account, the holder of a pool account.
func (m *Manager) routeIncoming(in *sipua.Incoming) (string, bool) {
	acc := in.Account()
	if acc == m.cfg.Proxy && m.cfg.Proxy != "" {
		xn := strings.TrimSpace(in.Header("X-Number"))
		if xn == "" {
			return "", false
		}
		var uri sip.Uri
		trimmed := strings.TrimSuffix(strings.TrimPrefix(xn, "<"), ">")
		if err := sip.ParseUri(trimmed, &uri); err == nil && uri.User != "" {
			return uri.User, true
		}
		if !strings.ContainsAny(trimmed, "@:<> ") {
			return trimmed, true // a bare number
		}
		return "", false
	}
	if m.pool.contains(acc) {
		return m.pool.holderOf(acc), true
	}
	return "", false
}

// accountFor is the account a user's call leaves from.
func (m *Manager) accountFor(user string) (string, error) {
	if len(m.cfg.Pool) == 0 {
		return m.cfg.Proxy, nil
	}
	return m.pool.acquire(user, m.cfg.Registered)
}

// newMediaBridge builds a call's PeerConnection and bridge.
func (m *Manager) newPeer(c *Call) error {
	peer, err := rtc.NewPeer(m.cfg.RTC, webrtc.Configuration{})
	if err != nil {
		return err
	}
	b, err := media.New(media.Config{
		PeerConnection: peer.PeerConnection, Repair: peer.Repair,
		Net: m.cfg.MediaNet, LocalIP: m.cfg.MediaIP, PortMin: m.cfg.PortMin, PortMax: m.cfg.PortMax,
		OnDTMF: c.onMediaDTMF, OnPictureFastUpdate: c.onPictureFastUpdate,
		CNAME: c.sess.cname, Logger: c.log,
	})
	if err != nil {
		_ = peer.Close()
		return err
	}
	c.peer, c.bridge = peer, b
	peer.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			c.end(ending{reason: "WebRTC media failed (ICE/DTLS)", bye: true, reject: 500, outcome: OutcomeFailed, tellClient: true})
		}
	})
	return nil
}

func (m *Manager) sdpIP() netip.Addr {
	if m.cfg.SDPIP.IsValid() {
		return m.cfg.SDPIP
	}
	return m.cfg.MediaIP
}
