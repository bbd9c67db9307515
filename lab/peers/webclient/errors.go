package webclient

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig: New cannot work with the Config.
	ErrInvalidConfig = errors.New("webclient: invalid config")
	// ErrInvalidArgument: a method argument is out of range (a DTMF digit, a duration).
	ErrInvalidArgument = errors.New("webclient: invalid argument")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("webclient: closed")
	// ErrNotConnected: there is no signalling connection (Connect first, or it dropped).
	ErrNotConnected = errors.New("webclient: not connected")
	// ErrCallEnded: the call is over.
	ErrCallEnded = errors.New("webclient: call ended")
	// ErrNoTelephoneEvent: the call negotiated no telephone-event at the audio codec's clock
	// rate, so DTMF cannot go in the audio stream (use SendDTMFMessage).
	ErrNoTelephoneEvent = errors.New("webclient: no telephone-event negotiated")
	// ErrAlreadyAnswered: the invitation was already accepted or refused.
	ErrAlreadyAnswered = errors.New("webclient: invitation already answered")
)

// Error is an "error" reply of the gateway: the request was rejected and changed nothing.
type Error struct {
	Code    string // e.g. INVALID_TOKEN, INVALID_STATE (signaling.ErrorCode values)
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("webclient: gateway refused: %s: %s", e.Code, e.Message)
}

// IsCode reports whether err is a gateway error reply with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
