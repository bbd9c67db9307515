package signaling

import (
	"errors"
	"time"
)

// Limits of the protocol, from the RTM call-invitation API.
const (
	// MaxContentBytes bounds an invitation's content and an acceptance's or refusal's response.
	MaxContentBytes = 8 * 1024
	// MaxChannelIDBytes bounds an invitation's channel id.
	MaxChannelIDBytes = 64
	// MaxUserIDBytes bounds a user id (a caller, a callee, a token's user).
	MaxUserIDBytes = 64
	// maxIDBytes bounds request ids and call ids.
	maxIDBytes = 64
	// maxTokenBytes bounds a login token.
	maxTokenBytes = 1024
	// maxReasonBytes bounds the free-text reason of a hangup.
	maxReasonBytes = 256
	// maxCandidateBytes bounds one ICE candidate line.
	maxCandidateBytes = 1024
)

// LocalState is the state of a LocalInvitation: a call a logged-in client places.
type LocalState string

// The LocalInvitation states, exactly as in the RTM API.
const (
	LocalIdle             LocalState = "IDLE"
	LocalSentToRemote     LocalState = "SENT_TO_REMOTE"
	LocalReceivedByRemote LocalState = "RECEIVED_BY_REMOTE"
	LocalAcceptedByRemote LocalState = "ACCEPTED_BY_REMOTE"
	LocalRefusedByRemote  LocalState = "REFUSED_BY_REMOTE"
	LocalCanceled         LocalState = "CANCELED"
	LocalFailure          LocalState = "FAILURE"
)

// Terminal reports whether no invitation transition leaves s.
func (s LocalState) Terminal() bool { _, ok := localNext[s]; return !ok }

// RemoteState is the state of a RemoteInvitation: a call offered to a logged-in client.
type RemoteState string

// The RemoteInvitation states, exactly as in the RTM API.
const (
	RemoteIdle               RemoteState = "IDLE"
	RemoteInvitationReceived RemoteState = "INVITATION_RECEIVED"
	RemoteAcceptSentToLocal  RemoteState = "ACCEPT_SENT_TO_LOCAL"
	RemoteRefused            RemoteState = "REFUSED"
	RemoteAccepted           RemoteState = "ACCEPTED"
	RemoteCanceled           RemoteState = "CANCELED"
	RemoteFailure            RemoteState = "FAILURE"
)

// Terminal reports whether no invitation transition leaves s.
func (s RemoteState) Terminal() bool { _, ok := remoteNext[s]; return !ok }

// The legal transitions. A state absent from the map is terminal. ACCEPTED_BY_REMOTE and
// ACCEPTED end the invitation but not the call: SDP, candidates, DTMF and hangup go on.
var (
	localNext = map[LocalState][]LocalState{
		LocalIdle:             {LocalSentToRemote, LocalFailure},
		LocalSentToRemote:     {LocalReceivedByRemote, LocalAcceptedByRemote, LocalRefusedByRemote, LocalCanceled, LocalFailure},
		LocalReceivedByRemote: {LocalAcceptedByRemote, LocalRefusedByRemote, LocalCanceled, LocalFailure},
	}
	remoteNext = map[RemoteState][]RemoteState{
		RemoteIdle:               {RemoteInvitationReceived, RemoteCanceled, RemoteFailure},
		RemoteInvitationReceived: {RemoteAcceptSentToLocal, RemoteRefused, RemoteCanceled, RemoteFailure},
		RemoteAcceptSentToLocal:  {RemoteAccepted, RemoteFailure},
	}
)

func legal[S comparable](table map[S][]S, from, to S) bool {
	for _, s := range table[from] {
		if s == to {
			return true
		}
	}
	return false
}

// FailureCode says why an invitation reached FAILURE. The set is the RTM API's.
type FailureCode string

// The failure codes.
const (
	// PeerOffline: the callee was not reachable. For a remote invitation, the callee did not log
	// in within Timeouts.PeerOffline; for a local one, the backend reports it (SIP 404/480).
	PeerOffline FailureCode = "PEER_OFFLINE"
	// PeerNoResponse: nobody acknowledged the invitation within Timeouts.PeerNoResponse (no SIP
	// 180/183 for a local invitation, no "received" from the client for a remote one).
	PeerNoResponse FailureCode = "PEER_NO_RESPONSE"
	// InvitationExpire: nobody answered within Timeouts.Expire of sending.
	InvitationExpire FailureCode = "INVITATION_EXPIRE"
	// NotLoggedIn: the session holding the invitation ended (logout, kick, connection lost).
	NotLoggedIn FailureCode = "NOT_LOGGEDIN"
	// AcceptFailure: the acceptance did not reach the caller (no SIP ACK, or the backend failed).
	AcceptFailure FailureCode = "ACCEPT_FAILURE"
)

func (c FailureCode) valid() bool {
	switch c {
	case PeerOffline, PeerNoResponse, InvitationExpire, NotLoggedIn, AcceptFailure:
		return true
	}
	return false
}

// ErrorCode is the code of an "error" message: a request that was rejected and changed nothing.
type ErrorCode string

// The error codes.
const (
	CodeNotLoggedIn     ErrorCode = "NOT_LOGGEDIN"     // the request needs a login
	CodeInvalidToken    ErrorCode = "INVALID_TOKEN"    // login token malformed or not signed by the app secret
	CodeTokenExpired    ErrorCode = "TOKEN_EXPIRED"    // login token past its expiry
	CodeInvalidArgument ErrorCode = "INVALID_ARGUMENT" // a field is missing, too long, of the wrong type or not UTF-8
	CodeInvalidMessage  ErrorCode = "INVALID_MESSAGE"  // not a JSON object, no id, binary frame
	CodeUnknownType     ErrorCode = "UNKNOWN_TYPE"     // the type is not a request this protocol knows
	CodeUnknownCall     ErrorCode = "UNKNOWN_CALL"     // no call with this callId in the session
	CodeInvalidState    ErrorCode = "INVALID_STATE"    // the call or connection is not in a state that allows it
	CodeRateLimited     ErrorCode = "RATE_LIMITED"     // too many messages; the request was dropped
	CodeLimitExceeded   ErrorCode = "LIMIT_EXCEEDED"   // too many calls in the session
	CodeInternal        ErrorCode = "INTERNAL"         // the gateway failed; details are in its log
)

// Error is a protocol error. A Backend may return one to choose the code and message the
// client sees; any other error reaches the client as INTERNAL with a generic message.
type Error struct {
	Code    ErrorCode
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code ErrorCode, msg string) *Error { return &Error{Code: code, Message: msg} }

// Errors returned to the call side.
var (
	// ErrIllegalTransition: the reported SIP outcome does not fit the invitation's state, which
	// usually means the invitation already ended (the client canceled, a timer fired): release
	// the SIP side.
	ErrIllegalTransition = errors.New("signaling: illegal invitation transition")
	// ErrCallEnded: the call is no longer part of a session (hung up, session closed).
	ErrCallEnded = errors.New("signaling: call ended")
	// ErrUnknownCall: no call with that id in the session.
	ErrUnknownCall = errors.New("signaling: unknown call")
	// ErrNotLoggedIn: the user has no session.
	ErrNotLoggedIn = errors.New("signaling: user not logged in")
	// ErrBusy: the callee already has the maximum number of calls or pending invitations.
	ErrBusy = errors.New("signaling: callee busy")
	// ErrServerClosed is returned by Serve after Close, and by calls into a closed Server.
	ErrServerClosed = errors.New("signaling: server closed")
	// ErrInvalidToken and ErrTokenExpired are returned by VerifyToken.
	ErrInvalidToken = errors.New("signaling: invalid token")
	ErrTokenExpired = errors.New("signaling: token expired")
)

// SessionDescription is an SDP offer or answer, shaped like the browser's
// RTCSessionDescriptionInit (and pion's webrtc.SessionDescription).
type SessionDescription struct {
	Type string `json:"type"` // offer, answer, pranswer or rollback
	SDP  string `json:"sdp"`
}

// ICECandidate is one trickled candidate, shaped like RTCIceCandidateInit (and pion's
// webrtc.ICECandidateInit). An empty Candidate marks end-of-candidates.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// End reports whether c marks end-of-candidates.
func (c ICECandidate) End() bool { return c.Candidate == "" }

// DTMF is one telephone-event digit (0-9, *, #, A-D) and how long it is held.
type DTMF struct {
	Digit    string
	Duration time.Duration
}

// DefaultDTMFDuration is used when a client's dtmf request gives no duration.
const DefaultDTMFDuration = 100 * time.Millisecond

// Bounds of a DTMF duration, RFC 4733 practice: shorter is not detected, longer is a stuck key.
const (
	MinDTMFDuration = 40 * time.Millisecond
	MaxDTMFDuration = 8 * time.Second
)

// Event is something the call side pushes to a client about one of its calls, through
// Session.Send or Server.Deliver: SDPEvent, CandidateEvent, DTMFEvent or HangupEvent.
type Event interface{ eventCallID() string }

// SDPEvent carries the gateway's offer or answer for the call.
type SDPEvent struct {
	CallID      string
	Description SessionDescription
}

// CandidateEvent carries one of the gateway's ICE candidates (empty: end-of-candidates).
type CandidateEvent struct {
	CallID    string
	Candidate ICECandidate
}

// DTMFEvent carries a digit received from the SIP side.
type DTMFEvent struct {
	CallID string
	DTMF   DTMF
}

// HangupEvent ends an established call from the SIP side (BYE); SIPCode is optional.
type HangupEvent struct {
	CallID  string
	Reason  string
	SIPCode int
}

func (e SDPEvent) eventCallID() string       { return e.CallID }
func (e CandidateEvent) eventCallID() string { return e.CallID }
func (e DTMFEvent) eventCallID() string      { return e.CallID }
func (e HangupEvent) eventCallID() string    { return e.CallID }

// Message types on the wire (the "type" field), exported for clients written in Go. Requests
// go client -> gateway and carry an id; events go gateway -> client; sdp, candidate, dtmf and
// hangup go both ways.
const (
	TypeLogin            = "login"
	TypeLogout           = "logout"
	TypeInvite           = "invite"
	TypeCancel           = "cancel"
	TypeReceived         = "received"
	TypeAccept           = "accept"
	TypeRefuse           = "refuse"
	TypeSDP              = "sdp"
	TypeCandidate        = "candidate"
	TypeDTMF             = "dtmf"
	TypeHangup           = "hangup"
	TypeOK               = "ok"
	TypeError            = "error"
	TypeLocalInvitation  = "localInvitation"
	TypeRemoteInvitation = "remoteInvitation"
	TypeKicked           = "kicked"
)

// Outgoing wire messages.
type (
	okMsg struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		User      string `json:"user,omitempty"`
		SessionID string `json:"sessionId,omitempty"`
		CallID    string `json:"callId,omitempty"`
	}
	errorMsg struct {
		Type    string    `json:"type"`
		ID      string    `json:"id,omitempty"`
		Code    ErrorCode `json:"code"`
		Message string    `json:"message"`
		CallID  string    `json:"callId,omitempty"`
	}
	localInvitationMsg struct {
		Type     string      `json:"type"`
		CallID   string      `json:"callId"`
		Callee   string      `json:"callee"`
		State    LocalState  `json:"state"`
		Code     FailureCode `json:"code,omitempty"`
		SIPCode  int         `json:"sipCode,omitempty"`
		Reason   string      `json:"reason,omitempty"`
		Response string      `json:"response,omitempty"`
	}
	remoteInvitationMsg struct {
		Type        string              `json:"type"`
		CallID      string              `json:"callId"`
		Caller      string              `json:"caller"`
		State       RemoteState         `json:"state"`
		Content     string              `json:"content,omitempty"`
		ChannelID   string              `json:"channelId,omitempty"`
		Description *SessionDescription `json:"description,omitempty"`
		Code        FailureCode         `json:"code,omitempty"`
		SIPCode     int                 `json:"sipCode,omitempty"`
		Reason      string              `json:"reason,omitempty"`
	}
	sdpMsg struct {
		Type        string             `json:"type"`
		CallID      string             `json:"callId"`
		Description SessionDescription `json:"description"`
	}
	candidateMsg struct {
		Type      string        `json:"type"`
		CallID    string        `json:"callId"`
		Candidate *ICECandidate `json:"candidate"` // null: end-of-candidates
	}
	dtmfMsg struct {
		Type     string `json:"type"`
		CallID   string `json:"callId"`
		Digit    string `json:"digit"`
		Duration int64  `json:"duration"` // milliseconds
	}
	hangupMsg struct {
		Type    string `json:"type"`
		CallID  string `json:"callId"`
		Reason  string `json:"reason,omitempty"`
		SIPCode int    `json:"sipCode,omitempty"`
	}
	kickedMsg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
)
