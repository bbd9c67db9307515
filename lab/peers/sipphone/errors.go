package sipphone

import (
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

var (
	// ErrInvalidConfig reports a Config that New cannot work with.
	ErrInvalidConfig = errors.New("sipphone: invalid config")
	// ErrNotStarted is returned by operations that need Start first.
	ErrNotStarted = errors.New("sipphone: phone not started")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("sipphone: phone already started")
	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("sipphone: phone closed")
	// ErrNoRegistrar is returned when a PBX address is needed but Config.Registrar is unset.
	ErrNoRegistrar = errors.New("sipphone: no registrar configured")
	// ErrBadTarget is returned by Call for a target that is neither a user nor a SIP URI.
	ErrBadTarget = errors.New("sipphone: bad call target")
	// ErrNoCommonCodec is returned when offer and answer share no codec.
	ErrNoCommonCodec = errors.New("sipphone: no common codec")
	// ErrBadSDP is returned for a session description without a usable audio stream.
	ErrBadSDP = errors.New("sipphone: unusable session description")
	// ErrTransaction wraps transaction-layer failures: timeouts and transport errors.
	ErrTransaction = errors.New("sipphone: transaction failed")
	// ErrAuth is returned when a challenge cannot be answered.
	ErrAuth = errors.New("sipphone: authentication failed")
	// ErrCanceled is returned when the caller cancelled an incoming call before it was answered.
	ErrCanceled = errors.New("sipphone: call cancelled by the caller")
	// ErrFinalized is returned when an incoming call was already answered or rejected.
	ErrFinalized = errors.New("sipphone: incoming call already answered or rejected")
	// ErrPRACKTimeout is returned when a reliable provisional response got no PRACK in 64*T1.
	ErrPRACKTimeout = errors.New("sipphone: no PRACK for a reliable provisional response")
	// ErrBadStatus is returned by Reject for a status that is not a final error response.
	ErrBadStatus = errors.New("sipphone: Reject needs a status from 300 to 699")
	// ErrNoRTPPort is returned when no port of the RTP range could be bound.
	ErrNoRTPPort = errors.New("sipphone: no free RTP port")
)

// StatusError is the error for a non-2xx final response. Tests assert its Code (486, 487, 403...).
type StatusError struct {
	Method   sip.RequestMethod
	Code     int
	Reason   string
	Response *sip.Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sipphone: %s answered %d %s", e.Method, e.Code, e.Reason)
}

func statusError(method sip.RequestMethod, res *sip.Response) *StatusError {
	return &StatusError{Method: method, Code: res.StatusCode, Reason: res.Reason, Response: res}
}
