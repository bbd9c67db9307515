package webclient

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// DTMFSource says how a digit reached the client.
type DTMFSource string

// The DTMF sources.
const (
	// DTMFFromRTP: an RFC 4733 telephone-event in the call's audio stream.
	DTMFFromRTP DTMFSource = "rtp"
	// DTMFFromMessage: a "dtmf" signalling message from the gateway (SIP INFO on its SIP side).
	DTMFFromMessage DTMFSource = "message"
)

// DTMFEvent is one received digit.
type DTMFEvent struct {
	At       time.Time // arrival of its first packet or of the message
	Digit    string    // 0-9, *, #, A-D
	Duration time.Duration
	Source   DTMFSource
	// Ended: for RTP, the end packet (E bit) arrived; messages are always whole.
	Ended bool
}

// The RFC 4733 event codes of the DTMF digits, in code order.
const dtmfDigits = "0123456789*#ABCD"

// dtmfCode returns the RFC 4733 event code of a digit (lower-case a-d accepted).
func dtmfCode(digit string) (byte, error) {
	if len(digit) == 1 {
		if i := strings.IndexByte(dtmfDigits, strings.ToUpper(digit)[0]); i >= 0 {
			return byte(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q is not a DTMF digit (0-9, *, #, A-D)", ErrInvalidArgument, digit)
}

// telephoneEvent is the payload of one RFC 4733 packet.
type telephoneEvent struct {
	code     byte
	end      bool
	volume   byte // 0..63, -dBm0
	duration uint16
}

func (e telephoneEvent) marshal() []byte {
	b := make([]byte, 4)
	b[0] = e.code
	b[1] = e.volume & 0x3F
	if e.end {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], e.duration)
	return b
}

func parseTelephoneEvent(b []byte) (telephoneEvent, bool) {
	if len(b) < 4 {
		return telephoneEvent{}, false
	}
	return telephoneEvent{code: b[0], end: b[1]&0x80 != 0, volume: b[1] & 0x3F, duration: binary.BigEndian.Uint16(b[2:])}, true
}

// digitOf is the digit of an event code, or "" for an event that is not a DTMF digit.
func digitOf(code byte) string {
	if int(code) < len(dtmfDigits) {
		return dtmfDigits[code : code+1]
	}
	return ""
}
