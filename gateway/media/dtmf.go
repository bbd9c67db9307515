package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/rtp"
)

var (
	errBadDigit     = errors.New("media: not a DTMF digit")
	errNoEventCodec = errors.New("media: telephone-event not negotiated")
	errShortEvent   = errors.New("media: short telephone-event payload")
)

// DTMF is one RFC 4733 telephone-event, as detected on a leg or to be sent.
type DTMF struct {
	// From is the leg the event arrived on (detected events).
	From Leg
	// Digit is 0-9, *, #, A-D, or ! for flash.
	Digit rune
	// Duration is how long the tone lasted so far (the whole tone when End).
	Duration time.Duration
	// End is set on the event's final report; the first report has End unset.
	End bool
	// SIPInfo: the event came from the client and the SIP leg negotiated no telephone-event.
	// The bridge consumed its packets and reports it once, at its end: the call layer must
	// send it as SIP INFO.
	SIPInfo bool
}

const dtmfDigits = "0123456789*#ABCD!"

// eventCode is the RFC 4733 event code of a digit.
func eventCode(d rune) (uint8, error) {
	i := strings.IndexRune(dtmfDigits, d)
	if i < 0 {
		i = strings.IndexRune(strings.ToLower(dtmfDigits), d)
	}
	if i < 0 {
		return 0, fmt.Errorf("%w: %q", errBadDigit, d)
	}
	return uint8(i), nil
}

func eventDigit(code uint8) rune {
	if int(code) < len(dtmfDigits) {
		return rune(dtmfDigits[code])
	}
	return '?'
}

// telephoneEvent is the RFC 4733 payload (section 2.3).
type telephoneEvent struct {
	code     uint8
	end      bool
	volume   uint8 // -dBm0, 0-63
	duration uint16
}

func (e telephoneEvent) marshalTo(b []byte) []byte {
	b = append(b, e.code, e.volume&0x3f, 0, 0)
	if e.end {
		b[len(b)-3] |= 0x80
	}
	binary.BigEndian.PutUint16(b[len(b)-2:], e.duration)
	return b
}

func parseTelephoneEvent(b []byte) (telephoneEvent, error) {
	if len(b) < 4 {
		return telephoneEvent{}, errShortEvent
	}
	return telephoneEvent{code: b[0], end: b[1]&0x80 != 0, volume: b[1] & 0x3f, duration: binary.BigEndian.Uint16(b[2:4])}, nil
}

// dtmfDetector turns a leg's telephone-event packets into one report at the start of each event
// and one at its end, whatever the repeats and retransmitted end packets.
type dtmfDetector struct {
	active   bool
	ts       uint32 // the current event's timestamp
	ended    bool
	code     uint8
	duration uint16
	// forwarded: the current event goes on to the other leg (not consumed for SIP INFO);
	// last is when its latest packet arrived.
	forwarded bool
	last      time.Time
}

// forwarding reports whether an event is being forwarded to the other leg at now: it has not
// ended, or its repeated end packets may still come (within quiet of the last packet).
func (d *dtmfDetector) forwarding(now time.Time, quiet time.Duration) bool {
	return d.forwarded && ((d.active && !d.ended) || now.Sub(d.last) < quiet)
}

// observe returns the reports p causes (at most two: the end of a previous event whose end
// packets were all lost, and the start or end of p's event).
func (d *dtmfDetector) observe(p *Packet, clockRate uint32, report func(DTMF)) {
	ev, err := parseTelephoneEvent(p.Payload)
	if err != nil || clockRate == 0 {
		return
	}
	toDuration := func(ticks uint16) time.Duration {
		return time.Duration(ticks) * time.Second / time.Duration(clockRate)
	}
	if d.active && p.Header.Timestamp != d.ts {
		if !d.ended { // its end packets never came
			report(DTMF{Digit: eventDigit(d.code), Duration: toDuration(d.duration), End: true})
		}
		d.active = false
	}
	if !d.active {
		if int32(p.Header.Timestamp-d.ts) < 0 && d.ts != 0 {
			return // a straggler of an older event
		}
		*d = dtmfDetector{active: true, ts: p.Header.Timestamp, code: ev.code}
		report(DTMF{Digit: eventDigit(ev.code), Duration: toDuration(ev.duration)})
	}
	d.duration = max(d.duration, ev.duration)
	if ev.end && !d.ended {
		d.ended = true
		report(DTMF{Digit: eventDigit(ev.code), Duration: toDuration(ev.duration), End: true})
	}
}

// dtmfPlan is the packet schedule of one generated event (RFC 4733 2.5.1): a first packet with
// the marker bit, updates every interval with the growing duration, then the end packet sent
// three times, all with the event's start timestamp.
type dtmfPlan struct {
	code       uint8
	ticks      uint32 // the tone's total duration in clock ticks
	step       uint32 // ticks per interval
	sent, ends int
}

// maxEventTicks is the longest duration one event packet can state; longer tones would need
// segments (RFC 4733 2.5.1.3), which DTMF never needs.
const maxEventTicks = 0xffff

func newDTMFPlan(digit rune, d, interval time.Duration, clockRate uint32) (*dtmfPlan, error) {
	code, err := eventCode(digit)
	if err != nil {
		return nil, err
	}
	ticks := uint32(min(int64(d)*int64(clockRate)/int64(time.Second), maxEventTicks))
	step := uint32(int64(interval) * int64(clockRate) / int64(time.Second))
	return &dtmfPlan{code: code, ticks: max(ticks, step), step: max(step, 1)}, nil
}

// next is the next packet's payload and marker, or done.
func (p *dtmfPlan) next(buf []byte) (payload []byte, marker, done bool) {
	if p.ends == 3 {
		return nil, false, true
	}
	ev := telephoneEvent{code: p.code, volume: 10}
	if elapsed := uint32(p.sent+1) * p.step; elapsed < p.ticks {
		ev.duration = uint16(elapsed)
		marker = p.sent == 0
		p.sent++
	} else {
		ev.duration, ev.end = uint16(p.ticks), true
		marker = p.sent == 0 && p.ends == 0
		p.ends++
	}
	return ev.marshalTo(buf[:0]), marker, false
}

// generatedEvent is the event SendDTMF is sending on a direction, known to the forwarding path
// so that the two never overlap in one RTP stream (RFC 4733 2.5.1: one event at a time). The
// direction's mu guards it.
type generatedEvent struct {
	active bool
	// cut: a forwarded event started and ended this one early; SendDTMF stops.
	cut      bool
	ts       uint32
	entry    codecEntry
	code     uint8
	duration uint16 // as last sent
}

// endGeneratedEvent lets the client's (or the PBX's) own events through without overlapping
// an event the bridge generates on the same stream: when a forwarded event packet comes while a
// generated event is being sent, the generated one ends there (its end packet, three times, at
// the duration reached), then the forwarded packet goes on.
func endGeneratedEvent(g *generatedEvent) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		return WriterFunc(func(p *Packet) error {
			if g.active && p.codec.event && !p.Generated {
				g.active, g.cut = false, true
				var buf [4]byte
				payload := telephoneEvent{code: g.code, end: true, volume: 10, duration: g.duration}.marshalTo(buf[:0])
				for range 3 {
					end := &Packet{
						Header:  rtp.Header{Version: 2, PayloadType: g.entry.out, Timestamp: g.ts},
						Payload: payload, Arrival: p.Arrival, Generated: true, codec: g.entry,
					}
					if err := next.Write(end); err != nil {
						return err
					}
				}
			}
			return next.Write(p)
		})
	})
}
