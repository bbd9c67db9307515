package media

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// Why a handler dropped a packet (the reader counts every drop on the leg it came from).
var (
	errUnknownPayloadType = errors.New("media: payload type not negotiated on both legs")
	errDuplicate          = errors.New("media: duplicate packet")
	errNotLatched         = errors.New("media: packet from an address other than the latched one")
	errPaddingOnly        = errors.New("media: padding-only packet")
)

// codecEntry is what the bridge knows about one incoming payload type.
type codecEntry struct {
	known bool
	out   uint8  // the payload type on the other leg
	clock uint32 // RTP clock rate
	event bool   // RFC 4733 telephone-event
	// consume: a telephone-event the other leg did not negotiate (out is meaningless). The
	// bridge does not forward it; the call layer sends its digits as SIP INFO.
	consume bool
}

// codecTables maps the payload types of each leg to the other's, for one stream. It is
// replaced whole on renegotiation (Stream.SetCodecs) and read per packet without a lock.
type codecTables struct {
	pairs []rtc.Pair
	from  [2][128]codecEntry // indexed by the leg the packet comes from
}

// classify looks up the packet's payload type once; the handlers after it use p.codec.
// It never drops: the receive counters see every packet, known format or not.
func classify(tables func() *codecTables, from Leg) Handler {
	return Filter(func(p *Packet) error {
		p.codec = tables().from[from][p.Header.PayloadType&0x7f]
		return nil
	})
}

// countIn keeps the RFC 3550 receive statistics of the leg the packets come from (loss, late
// and duplicate packets, jitter, RTX repairs) and drops duplicates.
func countIn(st *receiveStats) Handler {
	return Filter(func(p *Packet) error {
		clock := p.codec.clock
		if p.codec.event {
			clock = 0 // an event's packets repeat one timestamp: no jitter sample
		}
		if !st.update(p, clock) {
			return errDuplicate
		}
		return nil
	})
}

// detectDTMF reports the RFC 4733 events of the leg to the call layer (start and end of each).
// The packets go on: they are passed through when the other leg negotiated telephone-event.
// An event the other leg lacks (consumed further on) is reported once, at its end, flagged
// SIPInfo.
func detectDTMF(d *dtmfDetector, report func(DTMF)) Handler {
	reportInfo := func(ev DTMF) {
		if ev.End {
			ev.SIPInfo = true
			report(ev)
		}
	}
	return Filter(func(p *Packet) error {
		switch {
		case p.codec.consume:
			d.observe(p, p.codec.clock, reportInfo)
			d.forwarded = false
		case p.codec.event:
			d.observe(p, p.codec.clock, report)
			d.forwarded, d.last = true, p.Arrival
		}
		return nil
	})
}

// consumeEvents ends the way of the telephone-events the destination leg did not negotiate
// (detectDTMF has reported them for SIP INFO). The rewriter closes the sequence numbers they
// leave out, so the destination sees no loss.
func consumeEvents(r *rewriter) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		return WriterFunc(func(p *Packet) error {
			if p.codec.consume && !p.Generated {
				r.skip(&p.Header)
				return nil
			}
			return next.Write(p)
		})
	})
}

// dropWhileHeld ends the way of the source's packets while the destination holds the call
// (Stream.HoldToWebRTC); the rewriter closes the sequence numbers they leave out.
func dropWhileHeld(held *atomic.Bool, r *rewriter) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		return WriterFunc(func(p *Packet) error {
			if held.Load() && !p.Generated {
				r.skip(&p.Header)
				return nil
			}
			return next.Write(p)
		})
	})
}

// mapPayloadType gives the packet the other leg's payload type for its format, and drops the
// formats the other leg did not negotiate (CN, RED, a codec the call did not select, ...).
func mapPayloadType() Handler {
	return Filter(func(p *Packet) error {
		if !p.codec.known {
			return errUnknownPayloadType
		}
		p.Header.PayloadType = p.codec.out
		return nil
	})
}

// stripExtensions removes the RTP header extensions: their ids were negotiated with the leg
// the packet came from (mid, audio level, transport-cc with the client), not with the other.
func stripExtensions() Handler {
	return Filter(func(p *Packet) error {
		if p.Header.Extension {
			p.Header.Extension = false
			p.Header.Extensions = p.Header.Extensions[:0]
			p.Header.ExtensionProfile = 0
		}
		return nil
	})
}

// injectHere marks where packets the bridge generates join the chain: *at becomes the rest of
// the chain from this point.
func injectHere(at *Writer) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		*at = next
		return next
	})
}

// rewrite maps the packet into the output stream (SSRC, sequence number, timestamp); packets
// the bridge generates take the next sequence number instead.
func rewrite(r *rewriter) Handler {
	return Filter(func(p *Packet) error {
		if p.Generated {
			r.inject(&p.Header, p.Arrival, p.codec.clock)
			return nil
		}
		clock := p.codec.clock
		if p.codec.event {
			clock = 0 // keep the media clock's reference
		}
		return r.rewrite(p, clock)
	})
}

// countOut keeps what the destination leg's sender report states: the packets its sink took.
func countOut(st *sendStats) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		return WriterFunc(func(p *Packet) error {
			if err := next.Write(p); err != nil {
				return err
			}
			clock := p.codec.clock
			if p.codec.event || p.Generated {
				clock = 0
			}
			st.update(p, clock)
			return nil
		})
	})
}

// latch implements symmetric RTP (RFC 4961 practice): the first source after (re)negotiation
// becomes the destination of what the bridge sends, whatever the SDP said (NAT). Packets from
// another address are dropped, unless the latched source has been silent for relatchAfter.
func latch(l *sipLeg) Handler {
	return Filter(func(p *Packet) error {
		if p.Source == l.latched {
			l.latchedSeen = p.Arrival
			return nil
		}
		if l.latched.IsValid() && p.Arrival.Sub(l.latchedSeen) < relatchAfter {
			return errNotLatched
		}
		l.latchTo(p.Source, p.Arrival)
		return nil
	})
}

// relatchAfter is how long the latched source must be silent before another one may take over.
const relatchAfter = time.Second

// addrPort unmaps IPv4-in-IPv6 so that addresses compare equal.
func addrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
