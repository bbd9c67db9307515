package signaling

import (
	"fmt"
	"unicode/utf8"
)

// IncomingInvitation describes a call arriving from SIP for a WebRTC user; the call side hands
// it to Server.DeliverInvitation.
type IncomingInvitation struct {
	Caller    string              // shown to the callee, e.g. the SIP From user (at most 128 bytes)
	Callee    string              // the user to ring
	Content   string              // at most 8 KiB of UTF-8
	ChannelID string              // at most 64 bytes
	Offer     *SessionDescription // the gateway's SDP offer for the client, optional
}

// RemoteInvitation is a call offered to a logged-in client (SIP -> gateway -> client). The
// client's answers reach the Backend (Ringing, Accept, Refuse); the backend reports the SIP
// side through Confirm, Cancel and Fail. Transitions and timers:
//
//	IDLE -> INVITATION_RECEIVED      the callee is logged in (at once, or when it logs in)
//	     -> FAILURE PEER_OFFLINE     the callee did not log in within Timeouts.PeerOffline
//	INVITATION_RECEIVED
//	     -> FAILURE PEER_NO_RESPONSE the client did not send "received" (or answer) within
//	                                 Timeouts.PeerNoResponse
//	     -> FAILURE INVITATION_EXPIRE the client did not answer within Timeouts.Expire
//	     -> REFUSED                  the client refused (Backend.Refuse)
//	     -> ACCEPT_SENT_TO_LOCAL     the client accepted (Backend.Accept sends the 200)
//	     -> CANCELED                 Cancel: the SIP caller gave up (CANCEL)
//	ACCEPT_SENT_TO_LOCAL
//	     -> ACCEPTED                 Confirm (the ACK arrived)
//	     -> FAILURE ACCEPT_FAILURE   Backend.Accept failed, Fail, or no Confirm within
//	                                 Timeouts.AcceptConfirm
//	any pending state -> FAILURE NOT_LOGGEDIN when the callee's session ends.
//
// Whenever this package ends the invitation on its own (the timers, the session ending), it
// calls Backend.Abandon so the SIP side can be answered (480, 408).
type RemoteInvitation struct {
	call
	caller, callee, content, channelID string
	offer                              *SessionDescription

	state    RemoteState
	code     FailureCode
	acked    bool
	response string
}

// Caller is who is calling, as the call side described it.
func (ri *RemoteInvitation) Caller() string { return ri.caller }

// Callee is the user being rung.
func (ri *RemoteInvitation) Callee() string { return ri.callee }

// Content is the invitation's content.
func (ri *RemoteInvitation) Content() string { return ri.content }

// ChannelID is the invitation's channel id.
func (ri *RemoteInvitation) ChannelID() string { return ri.channelID }

// Offer is the SDP offer sent to the client with the invitation, or nil.
func (ri *RemoteInvitation) Offer() *SessionDescription { return ri.offer }

// State is the invitation's state now.
func (ri *RemoteInvitation) State() RemoteState {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.state
}

// FailureCode is why the invitation failed, once it is in FAILURE.
func (ri *RemoteInvitation) FailureCode() FailureCode {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.code
}

// Response is the client's response text, once it accepted or refused.
func (ri *RemoteInvitation) Response() string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.response
}

// Confirm reports that the acceptance reached the caller (the SIP ACK): ACCEPTED.
func (ri *RemoteInvitation) Confirm() error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.moveLocked(RemoteAccepted, remoteInvitationMsg{})
}

// Cancel reports that the caller gave up (SIP CANCEL): CANCELED.
func (ri *RemoteInvitation) Cancel(reason string) error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.moveLocked(RemoteCanceled, remoteInvitationMsg{Reason: reason})
}

// Fail reports that the invitation failed on the SIP side, e.g. ACCEPT_FAILURE when the 200
// was never acknowledged.
func (ri *RemoteInvitation) Fail(code FailureCode, sipCode int, reason string) error {
	if !code.valid() {
		return fmt.Errorf("signaling: unknown failure code %q", code)
	}
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.moveLocked(RemoteFailure, remoteInvitationMsg{Code: code, SIPCode: sipCode, Reason: reason})
}

// Hangup ends the accepted call from the SIP side (BYE) and tells the client.
func (ri *RemoteInvitation) Hangup(reason string, sipCode int) error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.ended {
		return ErrCallEnded
	}
	if ri.state != RemoteAccepted && ri.state != RemoteAcceptSentToLocal {
		return fmt.Errorf("%w: hangup in %s (use Cancel or Fail)", ErrIllegalTransition, ri.state)
	}
	ri.emitLocked(hangupMsg{Type: TypeHangup, CallID: ri.id, Reason: reason, SIPCode: sipCode})
	ri.detachLocked()
	return nil
}

func (ri *RemoteInvitation) moveLocked(to RemoteState, m remoteInvitationMsg) error {
	if !legal(remoteNext, ri.state, to) {
		return fmt.Errorf("%w: %s -> %s", ErrIllegalTransition, ri.state, to)
	}
	from := ri.state
	ri.state = to
	ri.code = m.Code
	m.Type, m.CallID, m.Caller, m.State = TypeRemoteInvitation, ri.id, ri.caller, to
	if to == RemoteInvitationReceived {
		m.Content, m.ChannelID, m.Description = ri.content, ri.channelID, ri.offer
	}
	ri.emitLocked(m) // nothing is emitted while the invitation waits for its callee (no session)
	t := ri.srv.opts.timeouts
	switch to {
	case RemoteInvitationReceived:
		ri.stopTimerLocked(timerOffline)
		ri.startTimerLocked(timerNoResponse, t.PeerNoResponse, func() { ri.timeout(RemoteInvitationReceived, PeerNoResponse) })
		ri.startTimerLocked(timerExpire, t.Expire, func() { ri.timeout(RemoteInvitationReceived, InvitationExpire) })
	case RemoteAcceptSentToLocal:
		ri.stopTimersLocked()
		ri.startTimerLocked(timerConfirm, t.AcceptConfirm, func() { ri.timeout(RemoteAcceptSentToLocal, AcceptFailure) })
	}
	if to.Terminal() {
		ri.stopTimersLocked()
		ri.srv.metrics.remoteOutcome(to, ri.code)
		if from == RemoteIdle {
			ri.ended = true
			ri.srv.removePending(ri)
		} else if to != RemoteAccepted {
			ri.detachLocked()
		}
	}
	return nil
}

// timeout fails the invitation with code if it is still in state in, then tells the backend.
func (ri *RemoteInvitation) timeout(in RemoteState, code FailureCode) {
	ri.mu.Lock()
	if ri.state != in || (code == PeerNoResponse && ri.acked) {
		ri.mu.Unlock()
		return
	}
	err := ri.moveLocked(RemoteFailure, remoteInvitationMsg{Code: code})
	ri.mu.Unlock()
	if err == nil {
		ri.srv.backend.Abandon(ri)
	}
}

// attach delivers a waiting invitation to the callee's session.
func (ri *RemoteInvitation) attach(s *Session) error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.state != RemoteIdle {
		return nil // canceled or timed out meanwhile: nothing to deliver
	}
	if err := s.addCall(ri); err != nil {
		return err
	}
	ri.session = s
	return ri.moveLocked(RemoteInvitationReceived, remoteInvitationMsg{})
}

func (ri *RemoteInvitation) clientHangup() *Error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.state != RemoteAccepted && ri.state != RemoteAcceptSentToLocal {
		return errorf(CodeInvalidState, "invitation is "+string(ri.state)+": refuse it instead")
	}
	ri.detachLocked()
	return nil
}

func (ri *RemoteInvitation) endWithSession() func() {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	switch {
	case ri.ended:
		return nil
	case !ri.state.Terminal():
		_ = ri.moveLocked(RemoteFailure, remoteInvitationMsg{Code: NotLoggedIn})
		return func() { ri.srv.backend.Abandon(ri) }
	default: // accepted: SessionClosed covers it
		ri.emitLocked(hangupMsg{Type: TypeHangup, CallID: ri.id, Reason: "session closed"})
		ri.detachLocked()
		return nil
	}
}

func validIncoming(in IncomingInvitation) error {
	bad := func(msg string) error { return errorf(CodeInvalidArgument, msg) }
	switch {
	case validUserID(in.Callee) != "":
		return bad("callee " + validUserID(in.Callee))
	case in.Caller == "" || len(in.Caller) > 128 || !utf8.ValidString(in.Caller):
		return bad("caller must be 1 to 128 bytes of UTF-8")
	case len(in.Content) > MaxContentBytes || !utf8.ValidString(in.Content):
		return bad("content must be at most 8192 bytes of UTF-8")
	case len(in.ChannelID) > MaxChannelIDBytes || !utf8.ValidString(in.ChannelID):
		return bad("channelId must be at most 64 bytes of UTF-8")
	case in.Offer != nil && in.Offer.Type != "offer":
		return bad("the offer's type must be offer")
	}
	return nil
}
