package signaling

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// Session is one login of one user on one connection. It ends at logout, when a newer login
// of the same user replaces it, or when its connection closes; every call it holds ends with
// it (Backend.SessionClosed).
type Session struct {
	srv    *Server
	conn   *conn
	id     string
	user   string
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	calls  map[string]callRef
}

func newSession(c *conn, user string) *Session {
	ctx, cancel := context.WithCancel(c.srv.ctx)
	return &Session{srv: c.srv, conn: c, id: newID(), user: user, ctx: ctx, cancel: cancel, calls: map[string]callRef{}}
}

// User is the logged-in user id.
func (s *Session) User() string { return s.user }

// ID identifies this session (a user's next login gets another).
func (s *Session) ID() string { return s.id }

// Context is canceled when the session ends.
func (s *Session) Context() context.Context { return s.ctx }

// Send pushes an event about one of the session's calls to the client. It returns
// ErrUnknownCall when the session holds no such call, ErrCallEnded when it just ended.
func (s *Session) Send(ev Event) error {
	c := s.lookup(ev.eventCallID())
	if c == nil {
		return ErrUnknownCall
	}
	switch ev := ev.(type) {
	case SDPEvent:
		return c.SendSDP(ev.Description)
	case CandidateEvent:
		return c.SendCandidate(ev.Candidate)
	case DTMFEvent:
		return c.SendDTMF(ev.DTMF)
	case HangupEvent:
		return c.Hangup(ev.Reason, ev.SIPCode)
	}
	return ErrUnknownCall
}

func (s *Session) lookup(callID string) callRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[callID]
}

var errSessionClosed = errorf(CodeNotLoggedIn, "the session has ended")

func (s *Session) addCall(c callRef) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSessionClosed
	}
	if len(s.calls) >= s.srv.opts.maxCalls {
		return ErrBusy
	}
	s.calls[c.CallID()] = c
	s.srv.metrics.callsActive.Add(1)
	return nil
}

func (s *Session) removeCall(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.calls[id]; ok {
		delete(s.calls, id)
		s.srv.metrics.callsActive.Add(-1)
	}
}

// end closes the session once: pending invitations fail with NOT_LOGGEDIN (the backend hears
// of each through Cancel or Abandon), established calls get a hangup event, then the backend
// gets SessionClosed.
func (s *Session) end() {
	// Unregister before marking closed, so DeliverInvitation never finds a closed session.
	s.srv.unregister(s)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	calls := slices.Collect(maps.Values(s.calls))
	s.mu.Unlock()

	var notify []func()
	for _, c := range calls {
		if f := c.endWithSession(); f != nil {
			notify = append(notify, f)
		}
	}
	for _, f := range notify {
		f()
	}
	s.srv.metrics.sessionsActive.Add(-1)
	s.srv.backend.SessionClosed(s)
	s.cancel()
}

// The request handlers. They run on the connection's reader goroutine, one request at a time,
// and return the error to reply with, or nil once they have replied.

func (s *Session) invite(req request) *Error {
	li := &LocalInvitation{
		call:   newCall(s.srv),
		caller: s.user, callee: req.Callee, content: req.Content, channelID: req.ChannelID, offer: req.Description,
		state: LocalIdle,
	}
	li.session, li.published = s, false
	if err := s.addCall(li); err != nil {
		if err == ErrBusy {
			return errorf(CodeLimitExceeded, "too many calls in this session")
		}
		return errSessionClosed
	}
	if err := s.srv.backend.Invite(s.ctx, s, li); err != nil {
		li.withdraw()
		return s.srv.backendError("invite", err)
	}
	li.publish(okMsg{Type: TypeOK, ID: req.ID, CallID: li.id})
	return nil
}

func (s *Session) localInvitation(callID string) (*LocalInvitation, *Error) {
	li, ok := s.lookup(callID).(*LocalInvitation)
	if !ok {
		return nil, errorf(CodeUnknownCall, "no local invitation "+callID)
	}
	return li, nil
}

func (s *Session) remoteInvitation(callID string) (*RemoteInvitation, *Error) {
	ri, ok := s.lookup(callID).(*RemoteInvitation)
	if !ok {
		return nil, errorf(CodeUnknownCall, "no remote invitation "+callID)
	}
	return ri, nil
}

func (s *Session) cancelInvitation(req request) *Error {
	li, e := s.localInvitation(req.CallID)
	if e != nil {
		return e
	}
	li.mu.Lock()
	if li.state != LocalSentToRemote && li.state != LocalReceivedByRemote {
		state := li.state
		li.mu.Unlock()
		return errorf(CodeInvalidState, "invitation is "+string(state))
	}
	s.conn.reply(req.ID, req.CallID) // under the lock: the reply precedes the CANCELED event
	_ = li.moveLocked(LocalCanceled, localInvitationMsg{})
	li.mu.Unlock()
	s.srv.backendCancel(s, li)
	return nil
}

// lockReceived returns the remote invitation a client's received/accept/refuse names, locked,
// when it still waits for the client's answer (INVITATION_RECEIVED).
func (s *Session) lockReceived(req request) (*RemoteInvitation, *Error) {
	ri, e := s.remoteInvitation(req.CallID)
	if e != nil {
		return nil, e
	}
	ri.mu.Lock()
	if ri.state != RemoteInvitationReceived {
		state := ri.state
		ri.mu.Unlock()
		return nil, errorf(CodeInvalidState, "invitation is "+string(state))
	}
	return ri, nil
}

func (s *Session) received(req request) *Error {
	ri, e := s.lockReceived(req)
	if e != nil {
		return e
	}
	first := !ri.acked
	ri.acked = true
	ri.stopTimerLocked(timerNoResponse)
	s.conn.reply(req.ID, req.CallID)
	ri.mu.Unlock()
	if first {
		if err := s.srv.backend.Ringing(s.ctx, s, ri); err != nil {
			s.srv.log.Warn("backend ringing failed", "call", ri.id, "err", err)
		}
	}
	return nil
}

func (s *Session) accept(req request) *Error {
	ri, e := s.lockReceived(req)
	if e != nil {
		return e
	}
	ri.acked, ri.response = true, req.Response
	s.conn.reply(req.ID, req.CallID)
	_ = ri.moveLocked(RemoteAcceptSentToLocal, remoteInvitationMsg{})
	ri.mu.Unlock()
	if err := s.srv.backend.Accept(s.ctx, s, ri, req.Response, req.Description); err != nil {
		s.srv.log.Warn("backend accept failed", "call", ri.id, "err", err)
		ri.mu.Lock()
		if ri.state == RemoteAcceptSentToLocal {
			_ = ri.moveLocked(RemoteFailure, remoteInvitationMsg{Code: AcceptFailure, Reason: publicMessage(err)})
		}
		ri.mu.Unlock()
	}
	return nil
}

func (s *Session) refuse(req request) *Error {
	ri, e := s.lockReceived(req)
	if e != nil {
		return e
	}
	ri.acked, ri.response = true, req.Response
	s.conn.reply(req.ID, req.CallID)
	_ = ri.moveLocked(RemoteRefused, remoteInvitationMsg{SIPCode: req.SIPCode})
	ri.mu.Unlock()
	if err := s.srv.backend.Refuse(s.ctx, s, ri, req.Response, req.SIPCode); err != nil {
		s.srv.log.Warn("backend refuse failed", "call", ri.id, "err", err)
	}
	return nil
}

// media handles sdp, candidate and dtmf: they need a live call, of either kind, in any state.
func (s *Session) media(req request) *Error {
	if s.lookup(req.CallID) == nil {
		return errorf(CodeUnknownCall, "no call "+req.CallID)
	}
	var err error
	switch req.Type {
	case TypeSDP:
		err = s.srv.backend.SDP(s.ctx, s, req.CallID, *req.Description)
	case TypeCandidate:
		err = s.srv.backend.Candidate(s.ctx, s, req.CallID, req.Candidate)
	case TypeDTMF:
		err = s.srv.backend.DTMF(s.ctx, s, req.CallID, req.DTMF)
	}
	if err != nil {
		return s.srv.backendError(req.Type, err)
	}
	s.conn.reply(req.ID, req.CallID)
	return nil
}

func (s *Session) hangup(req request) *Error {
	c := s.lookup(req.CallID)
	if c == nil {
		return errorf(CodeUnknownCall, "no call "+req.CallID)
	}
	if e := c.clientHangup(); e != nil {
		return e
	}
	s.conn.reply(req.ID, req.CallID)
	if err := s.srv.backend.Hangup(s.ctx, s, req.CallID, req.Reason); err != nil {
		s.srv.log.Warn("backend hangup failed", "call", req.CallID, "err", err)
	}
	return nil
}
