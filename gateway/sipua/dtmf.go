package sipua

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DTMF is one DTMF event carried by SIP INFO.
type DTMF struct {
	Digit    rune          // 0-9, *, #, A-D
	Duration time.Duration // 0 when the sender gave none
}

const dtmfDigits = "0123456789*#ABCD" // in RFC 4733 event order

// body renders the event as contentType (DTMFRelay or DTMFPlain).
func (ev DTMF) body(contentType string) ([]byte, error) {
	digit := ev.Digit
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	if !strings.ContainsRune(dtmfDigits, digit) {
		return nil, fmt.Errorf("%w: %q", ErrBadDTMF, ev.Digit)
	}
	if contentType == DTMFPlain {
		return []byte(string(digit)), nil
	}
	ms := ev.Duration.Milliseconds()
	if ms <= 0 {
		ms = 160
	}
	return fmt.Appendf(nil, "Signal=%c\r\nDuration=%d\r\n", digit, ms), nil
}

// parseDTMF reads an INFO body: application/dtmf-relay ("Signal=5\r\nDuration=160") or
// application/dtmf ("5"). Signals 10-15 (some senders' codes for *, #, A-D) are accepted too.
func parseDTMF(contentType string, body []byte) (DTMF, error) {
	var ev DTMF
	signal := strings.TrimSpace(string(body))
	if contentType == DTMFRelay {
		signal = ""
		for _, line := range strings.Split(string(body), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				signal = v
			case "duration":
				if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
					ev.Duration = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	if n, err := strconv.Atoi(signal); err == nil && n >= 10 && n < len(dtmfDigits) {
		signal = dtmfDigits[n : n+1]
	}
	signal = strings.ToUpper(signal)
	if len(signal) != 1 || !strings.Contains(dtmfDigits, signal) {
		return DTMF{}, fmt.Errorf("%w: %q", ErrBadDTMF, body)
	}
	ev.Digit = rune(signal[0])
	return ev, nil
}
