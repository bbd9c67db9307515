package sipphone

import (
	"errors"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/internal/tone"
)

// The phone's SIP errors are sipua's: the phone's SIP side is sipua.
var (
	// ErrInvalidConfig reports a Config that New cannot work with.
	ErrInvalidConfig = errors.New("sipphone: invalid config")
	// ErrNotStarted is returned by operations that need Start first.
	ErrNotStarted = sipua.ErrNotStarted
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = sipua.ErrAlreadyStarted
	// ErrClosed is returned once Close has been called.
	ErrClosed = sipua.ErrClosed
	// ErrNoRegistrar is returned when a PBX address is needed but Config.Registrar is unset.
	ErrNoRegistrar = sipua.ErrNoServer
	// ErrBadTarget is returned by Call for a target that is neither a user nor a SIP URI.
	ErrBadTarget = sipua.ErrBadTarget
	// ErrNoCommonCodec is returned when offer and answer share no codec.
	ErrNoCommonCodec = errors.New("sipphone: no common codec")
	// ErrBadSDP is returned for a session description without a usable audio stream.
	ErrBadSDP = errors.New("sipphone: unusable session description")
	// ErrTransaction wraps transaction-layer failures: timeouts and transport errors.
	ErrTransaction = sipua.ErrTransaction
	// ErrAuth is returned when a challenge cannot be answered.
	ErrAuth = sipua.ErrAuth
	// ErrCanceled is returned when the caller cancelled an incoming call before it was answered.
	ErrCanceled = sipua.ErrCanceled
	// ErrFinalized is returned when an incoming call was already answered or rejected.
	ErrFinalized = sipua.ErrFinalized
	// ErrPRACKTimeout is returned when a reliable provisional response got no PRACK in 64*T1.
	ErrPRACKTimeout = sipua.ErrPRACKTimeout
	// ErrBadStatus is returned by Reject for a status that is not a final error response.
	ErrBadStatus = sipua.ErrBadStatus
	// ErrNoRTPPort is returned when no port of the RTP range could be bound.
	ErrNoRTPPort = errors.New("sipphone: no free RTP port")
	// ErrNoTone is returned by Media.ToneFrequency when too little decodable audio has arrived
	// to estimate a frequency, or it is silence.
	ErrNoTone = tone.ErrNoTone
	// ErrUndecodable is returned by Media.ToneFrequency when the audio received is in a codec
	// the phone cannot decode (Opus: there is no Go Opus decoder among the module's
	// dependencies).
	ErrUndecodable = errors.New("sipphone: received audio codec cannot be decoded")
)

// StatusError is the error for a non-2xx final response. Tests assert its Code (486, 487, 403...).
type StatusError = sipua.StatusError
