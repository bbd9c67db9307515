package signaling

import "fmt"

// LocalInvitation is a call a logged-in client places (client -> gateway -> SIP). The Backend
// gets it in Invite and reports what the SIP side does through its methods; this type enforces
// the legal transitions and the timers:
//
//	IDLE -> SENT_TO_REMOTE           Backend.Invite returned nil (the INVITE is on its way)
//	     -> RECEIVED_BY_REMOTE       Received (SIP 180/183)
//	     -> ACCEPTED_BY_REMOTE       Accepted (SIP 200)
//	     -> REFUSED_BY_REMOTE        Refused (SIP 486/600/603, code carried)
//	     -> CANCELED                 the client canceled (Backend.Cancel follows)
//	     -> FAILURE                  Fail, or a timer: PEER_NO_RESPONSE when no Received within
//	                                 Timeouts.PeerNoResponse of sending, INVITATION_EXPIRE when
//	                                 not answered within Timeouts.Expire of sending (Backend.Cancel
//	                                 follows), NOT_LOGGEDIN when the session ends.
//
// A method that returns ErrIllegalTransition found the invitation already over (canceled, timed
// out): the backend must release the SIP side (CANCEL, or BYE after a late 200).
type LocalInvitation struct {
	call
	caller, callee, content, channelID string
	offer                              *SessionDescription

	state LocalState
	code  FailureCode
}

// Caller is the user who placed the call.
func (li *LocalInvitation) Caller() string { return li.caller }

// Callee is the number the client dialled.
func (li *LocalInvitation) Callee() string { return li.callee }

// Content is the invitation's free content (at most 8 KiB of UTF-8).
func (li *LocalInvitation) Content() string { return li.content }

// ChannelID is the invitation's channel id (at most 64 bytes).
func (li *LocalInvitation) ChannelID() string { return li.channelID }

// Offer is the client's SDP offer sent with the invitation, or nil.
func (li *LocalInvitation) Offer() *SessionDescription { return li.offer }

// State is the invitation's state now.
func (li *LocalInvitation) State() LocalState {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.state
}

// FailureCode is why the invitation failed, once it is in FAILURE.
func (li *LocalInvitation) FailureCode() FailureCode {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.code
}

// Received reports that the callee is alerted (SIP 180 or 183). Repeated reports are ignored.
func (li *LocalInvitation) Received(sipCode int) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	if li.state == LocalReceivedByRemote {
		return nil
	}
	return li.reportLocked(LocalReceivedByRemote, localInvitationMsg{SIPCode: sipCode})
}

// Accepted reports that the callee answered (SIP 200). response is shown to the caller.
func (li *LocalInvitation) Accepted(response string) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.reportLocked(LocalAcceptedByRemote, localInvitationMsg{SIPCode: 200, Response: response})
}

// Refused reports that the callee declined, with the SIP final response code (486, 600, 603).
func (li *LocalInvitation) Refused(sipCode int, response string) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.reportLocked(LocalRefusedByRemote, localInvitationMsg{SIPCode: sipCode, Response: response})
}

// Fail reports that the call failed: code is one of the failure codes (SIP 404/480 map to
// PEER_OFFLINE, 408 to PEER_NO_RESPONSE), sipCode and reason are passed to the client.
func (li *LocalInvitation) Fail(code FailureCode, sipCode int, reason string) error {
	if !code.valid() {
		return fmt.Errorf("signaling: unknown failure code %q", code)
	}
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.reportLocked(LocalFailure, localInvitationMsg{Code: code, SIPCode: sipCode, Reason: reason})
}

// Hangup ends the established call from the SIP side (BYE) and tells the client.
func (li *LocalInvitation) Hangup(reason string, sipCode int) error {
	li.mu.Lock()
	defer li.mu.Unlock()
	if li.ended {
		return ErrCallEnded
	}
	if li.state != LocalAcceptedByRemote {
		return fmt.Errorf("%w: hangup in %s (use Refused or Fail)", ErrIllegalTransition, li.state)
	}
	li.emitLocked(hangupMsg{Type: TypeHangup, CallID: li.id, Reason: reason, SIPCode: sipCode})
	li.detachLocked()
	return nil
}

// reportLocked applies a transition the backend reports. A report that arrives while Invite
// is still running implies SENT_TO_REMOTE first.
func (li *LocalInvitation) reportLocked(to LocalState, m localInvitationMsg) error {
	if li.state == LocalIdle {
		if err := li.moveLocked(LocalSentToRemote, localInvitationMsg{}); err != nil {
			return err
		}
	}
	return li.moveLocked(to, m)
}

func (li *LocalInvitation) moveLocked(to LocalState, m localInvitationMsg) error {
	if !legal(localNext, li.state, to) {
		return fmt.Errorf("%w: %s -> %s", ErrIllegalTransition, li.state, to)
	}
	li.state = to
	li.code = m.Code
	m.Type, m.CallID, m.Callee, m.State = TypeLocalInvitation, li.id, li.callee, to
	li.emitLocked(m)
	t := li.srv.opts.timeouts
	switch to {
	case LocalSentToRemote:
		li.startTimerLocked(timerNoResponse, t.PeerNoResponse, func() { li.timeout(LocalSentToRemote, PeerNoResponse) })
		li.startTimerLocked(timerExpire, t.Expire, func() { li.timeout("", InvitationExpire) })
	case LocalReceivedByRemote:
		li.stopTimerLocked(timerNoResponse)
	}
	if to.Terminal() {
		li.stopTimersLocked()
		li.srv.metrics.localOutcome(to, li.code)
		if to != LocalAcceptedByRemote {
			li.detachLocked()
		}
	}
	return nil
}

// timeout fails the invitation with code if it is still pending (and in state only, if set),
// then tells the backend to withdraw the SIP side.
func (li *LocalInvitation) timeout(only LocalState, code FailureCode) {
	li.mu.Lock()
	if li.state.Terminal() || (only != "" && li.state != only) {
		li.mu.Unlock()
		return
	}
	s := li.session
	err := li.moveLocked(LocalFailure, localInvitationMsg{Code: code})
	li.mu.Unlock()
	if err == nil {
		li.srv.backendCancel(s, li)
	}
}

// publish ends the Invite call: the client gets the reply carrying the call id, then every
// event held meanwhile, and the invitation is SENT_TO_REMOTE unless the backend moved it on.
func (li *LocalInvitation) publish(reply okMsg) {
	li.mu.Lock()
	defer li.mu.Unlock()
	li.session.conn.send(reply)
	li.published = true
	for _, m := range li.held {
		li.session.conn.send(m)
	}
	li.held = nil
	if li.state == LocalIdle {
		_ = li.moveLocked(LocalSentToRemote, localInvitationMsg{})
	}
}

// withdraw drops an invitation whose Invite failed: the client never learns its call id.
func (li *LocalInvitation) withdraw() {
	li.mu.Lock()
	defer li.mu.Unlock()
	li.held = nil
	if !li.state.Terminal() {
		li.state, li.code = LocalFailure, ""
	}
	li.detachLocked()
}

func (li *LocalInvitation) clientHangup() *Error {
	li.mu.Lock()
	defer li.mu.Unlock()
	if li.state != LocalAcceptedByRemote {
		return errorf(CodeInvalidState, "invitation is "+string(li.state)+": cancel it instead")
	}
	li.detachLocked()
	return nil
}

func (li *LocalInvitation) endWithSession() func() {
	li.mu.Lock()
	defer li.mu.Unlock()
	switch {
	case li.ended:
		return nil
	case li.state == LocalIdle:
		// Invite is still running; publish will find the invitation over.
		li.held = nil
		li.state, li.code = LocalFailure, NotLoggedIn
		li.srv.metrics.localOutcome(LocalFailure, NotLoggedIn)
		li.detachLocked()
		return nil
	case !li.state.Terminal():
		s := li.session
		_ = li.moveLocked(LocalFailure, localInvitationMsg{Code: NotLoggedIn})
		return func() { li.srv.backendCancel(s, li) }
	default: // established: SessionClosed covers it
		li.emitLocked(hangupMsg{Type: TypeHangup, CallID: li.id, Reason: "session closed"})
		li.detachLocked()
		return nil
	}
}
