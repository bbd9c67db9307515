package signaling

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Path is where Serve answers WebSocket upgrades.
const Path = "/ws"

// Subprotocol is the WebSocket subprotocol the server selects when a client offers it; clients
// that offer none are served the same protocol.
const Subprotocol = "siprtc.signaling.v1"

// Backend is the call side: what clients do reaches it here, and it reports what SIP does
// through the invitations' methods (LocalInvitation.Received, RemoteInvitation.Confirm, ...)
// and pushes per-call events through Session.Send or Server.Deliver.
//
// Methods are called from the connection's goroutine, one request at a time, or from timer
// goroutines; they must not wait for the remote side (return once the SIP request is sent) and
// may call back into this package. No lock of this package is held during a call.
type Backend interface {
	// Invite places li, a call from s's user to li.Callee(). On nil the client gets the call
	// id and li goes to SENT_TO_REMOTE; on error the client gets an error reply (the code of an
	// *Error, else INTERNAL) and li is dropped.
	Invite(ctx context.Context, s *Session, li *LocalInvitation) error
	// Cancel withdraws li: the client canceled (li.State() is CANCELED) or this package ended it
	// (FAILURE with PEER_NO_RESPONSE, INVITATION_EXPIRE or NOT_LOGGEDIN). Send SIP CANCEL.
	Cancel(ctx context.Context, s *Session, li *LocalInvitation) error
	// Ringing: the client has ri and is alerting its user (send SIP 180).
	Ringing(ctx context.Context, s *Session, ri *RemoteInvitation) error
	// Accept: the client accepted ri with response and, optionally, its SDP answer to ri's
	// offer. Send SIP 200 and call ri.Confirm on the ACK; an error fails ri with ACCEPT_FAILURE.
	Accept(ctx context.Context, s *Session, ri *RemoteInvitation, response string, answer *SessionDescription) error
	// Refuse: the client refused ri; sipCode is 486, 600 or 603 (default 603).
	Refuse(ctx context.Context, s *Session, ri *RemoteInvitation, response string, sipCode int) error
	// Abandon: this package ended ri without the client's answer (ri.FailureCode() is
	// PEER_OFFLINE, PEER_NO_RESPONSE, INVITATION_EXPIRE, ACCEPT_FAILURE or NOT_LOGGEDIN).
	// Answer the SIP side (e.g. 480, 408).
	Abandon(ri *RemoteInvitation)
	// SDP, Candidate and DTMF carry the client's WebRTC signalling for a call of s (any state
	// until the call ends). A Candidate with an empty Candidate string is end-of-candidates.
	SDP(ctx context.Context, s *Session, callID string, d SessionDescription) error
	Candidate(ctx context.Context, s *Session, callID string, c ICECandidate) error
	DTMF(ctx context.Context, s *Session, callID string, d DTMF) error
	// Hangup: the client ended an established call (send SIP BYE).
	Hangup(ctx context.Context, s *Session, callID string, reason string) error
	// SessionClosed: s ended (logout, replaced by a newer login, connection lost, shutdown).
	// Its pending invitations were already reported through Cancel and Abandon; every
	// established call of s must now be hung up.
	SessionClosed(s *Session)
}

// Server is the signalling server. Build it with New, serve it with Serve or mount it as an
// http.Handler, and stop it with Close.
type Server struct {
	secret  []byte
	backend Backend
	opts    options
	log     *slog.Logger
	metrics Metrics
	ctx     context.Context
	cancel  context.CancelFunc

	mu       sync.Mutex
	closed   bool
	sessions map[string]*Session            // by user
	pending  map[string][]*RemoteInvitation // by callee: waiting for a login
	conns    map[*conn]struct{}
	https    []*http.Server
	wg       sync.WaitGroup
}

// New builds a Server that checks login tokens with the app secret and hands calls to backend.
func New(secret []byte, backend Backend, opts ...Option) (*Server, error) {
	if len(secret) == 0 {
		return nil, errors.New("signaling: empty app secret")
	}
	if backend == nil {
		return nil, errors.New("signaling: nil backend")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		secret: append([]byte(nil), secret...), backend: backend, opts: o, log: o.logger,
		ctx: ctx, cancel: cancel,
		sessions: map[string]*Session{}, pending: map[string][]*RemoteInvitation{}, conns: map[*conn]struct{}{},
	}, nil
}

// Metrics returns the server's counters.
func (srv *Server) Metrics() *Metrics { return &srv.metrics }

// Serve accepts connections on l and answers WebSocket upgrades at Path until Close, then
// returns ErrServerClosed. l may be any stream listener (the lab's in-memory link).
func (srv *Server) Serve(l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(Path, srv)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(srv.log.Handler(), slog.LevelDebug),
	}
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	srv.https = append(srv.https, hs)
	srv.mu.Unlock()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ErrServerClosed
}

// ServeHTTP upgrades the request to a WebSocket and serves the protocol on it until it closes.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	srv.wg.Add(1)
	srv.mu.Unlock()
	defer srv.wg.Done()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{Subprotocol},
		OriginPatterns: srv.opts.originPatterns,
	})
	if err != nil {
		srv.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(srv.opts.maxMessageBytes)
	c := newConn(srv, ws, r.RemoteAddr)
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	srv.conns[c] = struct{}{}
	srv.metrics.connsActive.Add(1)
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.conns, c)
		srv.metrics.connsActive.Add(-1)
		srv.mu.Unlock()
	}()
	c.serve()
}

// Close stops serving: listeners close, every connection is closed (status 1001) after its
// queued messages, every session ends, and waiting remote invitations fail with PEER_OFFLINE.
// It returns once all connections are gone.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return nil
	}
	srv.closed = true
	https, conns, pending := srv.https, maps.Clone(srv.conns), srv.pending
	srv.pending = map[string][]*RemoteInvitation{}
	srv.mu.Unlock()

	for _, hs := range https {
		_ = hs.Close()
	}
	for c := range conns {
		c.closeWith(websocket.StatusGoingAway, "server shutting down")
	}
	for _, list := range pending {
		for _, ri := range list {
			srv.metrics.pendingActive.Add(-1)
			ri.timeout(RemoteIdle, PeerOffline)
		}
	}
	srv.wg.Wait()
	srv.cancel()
	return nil
}

// Deliver pushes an event about one of user's calls to the user's session.
func (srv *Server) Deliver(user string, ev Event) error {
	srv.mu.Lock()
	s := srv.sessions[user]
	srv.mu.Unlock()
	if s == nil {
		return ErrNotLoggedIn
	}
	return s.Send(ev)
}

// DeliverInvitation offers a call to in.Callee. If the callee is logged in, the client gets the
// invitation at once; otherwise it waits up to Timeouts.PeerOffline for a login and then fails
// with PEER_OFFLINE (Backend.Abandon). It returns ErrBusy when the callee holds the maximum
// number of calls (answer 486), an *Error for invalid fields.
func (srv *Server) DeliverInvitation(in IncomingInvitation) (*RemoteInvitation, error) {
	if err := validIncoming(in); err != nil {
		return nil, err
	}
	ri := &RemoteInvitation{
		call:   newCall(srv),
		caller: in.Caller, callee: in.Callee, content: in.Content, channelID: in.ChannelID, offer: in.Offer,
		state: RemoteIdle,
	}
	ri.mu.Lock()
	ri.startTimerLocked(timerOffline, srv.opts.timeouts.PeerOffline, func() { ri.timeout(RemoteIdle, PeerOffline) })
	ri.mu.Unlock()
	if err := srv.route(ri); err != nil {
		ri.mu.Lock()
		ri.stopTimersLocked()
		ri.ended = true
		ri.mu.Unlock()
		return nil, err
	}
	return ri, nil
}

// route hands ri to its callee's session, or parks it until the callee logs in.
func (srv *Server) route(ri *RemoteInvitation) error {
	for {
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			return ErrServerClosed
		}
		s := srv.sessions[ri.callee]
		if s == nil {
			if len(srv.pending[ri.callee]) >= srv.opts.maxCalls {
				srv.mu.Unlock()
				return ErrBusy
			}
			srv.pending[ri.callee] = append(srv.pending[ri.callee], ri)
			srv.metrics.pendingActive.Add(1)
			srv.mu.Unlock()
			return nil
		}
		srv.mu.Unlock()
		// A session that ended meanwhile is already unregistered: look again.
		if err := ri.attach(s); err != errSessionClosed {
			return err
		}
	}
}

// deliverPending hands s the invitations that waited for its user.
func (srv *Server) deliverPending(s *Session) {
	srv.mu.Lock()
	list := srv.pending[s.user]
	delete(srv.pending, s.user)
	srv.metrics.pendingActive.Add(-int64(len(list)))
	srv.mu.Unlock()
	for _, ri := range list {
		if err := srv.route(ri); err != nil {
			// Only a shutdown gets here; the offline timer still ends ri.
			srv.log.Debug("pending invitation not delivered", "call", ri.id, "err", err)
		}
	}
}

func (srv *Server) removePending(ri *RemoteInvitation) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	list := srv.pending[ri.callee]
	for i, p := range list {
		if p == ri {
			list = append(list[:i:i], list[i+1:]...)
			srv.metrics.pendingActive.Add(-1)
			break
		}
	}
	if len(list) == 0 {
		delete(srv.pending, ri.callee)
	} else {
		srv.pending[ri.callee] = list
	}
}

// register makes s its user's session and returns the session it replaces.
func (srv *Server) register(s *Session) (*Session, error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return nil, ErrServerClosed
	}
	old := srv.sessions[s.user]
	srv.sessions[s.user] = s
	return old, nil
}

func (srv *Server) unregister(s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.sessions[s.user] == s {
		delete(srv.sessions, s.user)
	}
}

func (srv *Server) backendCancel(s *Session, li *LocalInvitation) {
	if err := srv.backend.Cancel(s.ctx, s, li); err != nil {
		srv.log.Warn("backend cancel failed", "call", li.id, "err", err)
	}
}

// backendError turns a backend error into the reply: an *Error passes through, anything else
// is logged and reported as INTERNAL without its text (it may name internal addresses).
func (srv *Server) backendError(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	srv.log.Warn("backend failed", "op", op, "err", err)
	return errorf(CodeInternal, op+" failed")
}

func publicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

func newID() string { return rand.Text() }
