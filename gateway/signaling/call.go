package signaling

import (
	"sync"
	"time"
)

// call is what both invitation kinds share: the call id, the session holding the call, the
// invitation timers, and the per-call signalling (SDP, candidates, DTMF) that follows.
type call struct {
	srv *Server
	id  string

	mu      sync.Mutex
	session *Session // nil while a remote invitation waits for its callee to log in
	ended   bool     // no longer held by a session: over, hung up, or the session closed
	// published is false while the backend's Invite runs: events are held until the client has
	// had the invite reply that tells it the call id.
	published bool
	held      []any
	timers    map[string]*time.Timer
}

func newCall(srv *Server) call {
	return call{srv: srv, id: newID(), published: true, timers: map[string]*time.Timer{}}
}

// CallID is the call's id on the wire.
func (c *call) CallID() string { return c.id }

// Session is the session holding the call, or nil (a remote invitation waiting for its callee).
func (c *call) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// SendSDP sends the gateway's offer or answer for this call to the client.
func (c *call) SendSDP(d SessionDescription) error {
	return c.push(sdpMsg{Type: TypeSDP, CallID: c.id, Description: d})
}

// SendCandidate trickles one of the gateway's ICE candidates to the client; an empty candidate
// sends end-of-candidates.
func (c *call) SendCandidate(cand ICECandidate) error {
	m := candidateMsg{Type: TypeCandidate, CallID: c.id}
	if !cand.End() {
		m.Candidate = &cand
	}
	return c.push(m)
}

// SendDTMF sends a digit received from the SIP side to the client.
func (c *call) SendDTMF(d DTMF) error {
	return c.push(dtmfMsg{Type: TypeDTMF, CallID: c.id, Digit: d.Digit, Duration: d.Duration.Milliseconds()})
}

func (c *call) push(m any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return ErrCallEnded
	}
	if c.session == nil {
		return ErrNotLoggedIn
	}
	c.emitLocked(m)
	return nil
}

func (c *call) emitLocked(m any) {
	switch {
	case c.ended || c.session == nil:
	case !c.published:
		c.held = append(c.held, m)
	default:
		c.session.conn.send(m)
	}
}

// detachLocked removes the call from its session (or from the pending invitations).
func (c *call) detachLocked() {
	if c.ended {
		return
	}
	c.ended = true
	c.stopTimersLocked()
	if c.session != nil {
		c.session.removeCall(c.id)
	}
}

// startTimerLocked runs fire after d unless the timer is stopped or replaced first.
func (c *call) startTimerLocked(name string, d time.Duration, fire func()) {
	c.stopTimerLocked(name)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		c.mu.Lock()
		current := c.timers[name] == t
		if current {
			delete(c.timers, name)
		}
		c.mu.Unlock()
		if current {
			fire()
		}
	})
	c.timers[name] = t
}

func (c *call) stopTimerLocked(name string) {
	if t, ok := c.timers[name]; ok {
		t.Stop()
		delete(c.timers, name)
	}
}

func (c *call) stopTimersLocked() {
	for name := range c.timers {
		c.stopTimerLocked(name)
	}
}

// callRef is a call as its session holds it.
type callRef interface {
	CallID() string
	Hangup(reason string, sipCode int) error
	SendSDP(SessionDescription) error
	SendCandidate(ICECandidate) error
	SendDTMF(DTMF) error
	// clientHangup ends an established call at the client's request.
	clientHangup() *Error
	// endWithSession ends the call because its session ended and returns what to tell the
	// backend afterwards (outside any lock), or nil.
	endWithSession() func()
}

// Timer names.
const (
	timerOffline    = "offline"
	timerNoResponse = "noResponse"
	timerExpire     = "expire"
	timerConfirm    = "confirm"
)
