package sipua

import (
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

var (
	// ErrInvalidConfig reports a Config that New cannot work with.
	ErrInvalidConfig = errors.New("sipua: invalid config")
	// ErrNotStarted is returned by operations that need Start first.
	ErrNotStarted = errors.New("sipua: user agent not started")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("sipua: user agent already started")
	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("sipua: user agent closed")
	// ErrNoServer is returned when the PBX is needed but Config.Server is unset.
	ErrNoServer = errors.New("sipua: no server (registrar) configured")
	// ErrUnknownAccount is returned for an account user that is not in Config.Accounts.
	ErrUnknownAccount = errors.New("sipua: unknown account")
	// ErrBadTarget is returned by Invite for a target that is neither a user nor a SIP URI.
	ErrBadTarget = errors.New("sipua: bad call target")
	// ErrTransaction wraps transaction-layer failures: timeouts and transport errors.
	ErrTransaction = errors.New("sipua: transaction failed")
	// ErrAuth is returned when a challenge cannot be answered.
	ErrAuth = errors.New("sipua: authentication failed")
	// ErrCanceled is returned when the caller cancelled an incoming call before it was answered.
	ErrCanceled = errors.New("sipua: call cancelled by the caller")
	// ErrFinalized is returned when an incoming call was already answered or rejected.
	ErrFinalized = errors.New("sipua: incoming call already answered or rejected")
	// ErrPRACKTimeout is returned when a reliable provisional response got no PRACK in 64*T1.
	ErrPRACKTimeout = errors.New("sipua: no PRACK for a reliable provisional response")
	// ErrBadStatus is returned by Reject for a status that is not a final error response.
	ErrBadStatus = errors.New("sipua: Reject needs a status from 300 to 699")
	// ErrEnded is returned by requests on a dialog that has ended.
	ErrEnded = errors.New("sipua: dialog ended")
	// ErrOfferPending is returned by Reinvite and Update while another offer of the dialog waits
	// for its answer (RFC 3261 14.1).
	ErrOfferPending = errors.New("sipua: an offer is already pending in the dialog")
	// ErrBadDTMF is returned for a DTMF event that is not one of 0-9, *, #, A-D.
	ErrBadDTMF = errors.New("sipua: bad DTMF event")
	// ErrNoOffer is returned by Invite without a session description: the UA always offers.
	ErrNoOffer = errors.New("sipua: INVITE needs an SDP offer")
)

// StatusError is the error for a non-2xx final response; Code is what callers map to outcomes
// (486 busy, 487 cancelled, 480 unavailable, 603 declined...).
type StatusError struct {
	Method   sip.RequestMethod
	Code     int
	Reason   string
	Response *sip.Response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sipua: %s answered %d %s", e.Method, e.Code, e.Reason)
}

func statusError(method sip.RequestMethod, res *sip.Response) *StatusError {
	return &StatusError{Method: method, Code: res.StatusCode, Reason: res.Reason, Response: res}
}

// StatusCode is the SIP status of err: the Code of a *StatusError in its chain, else 0.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
