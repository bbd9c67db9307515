package media

import (
	"errors"
	"time"

	"github.com/pion/rtp"
)

var errStaleSource = errors.New("media: packet of a replaced source")

// rewriter maps every source that feeds one output stream onto that stream's SSRC, sequence
// numbers and timestamps, so the receiver sees one continuous stream across re-INVITEs, new
// tracks and sender restarts. Within a source the mapping is a constant offset, so gaps,
// reordering and late retransmissions keep their meaning; a new source continues where the
// output left off (sequence +1, timestamp advanced by the wall time elapsed).
type rewriter struct {
	ssrc uint32 // the output SSRC

	started   bool   // a source is mapped
	inSSRC    uint32 // the current source
	lastInSeq uint16 // the current source's highest sequence number
	prevSSRC  uint32 // the source before it: its late packets are dropped
	hadPrev   bool
	seqOffset uint16
	tsOffset  uint32

	sent      bool // the output has a packet
	lastSeq   uint16
	lastTS    uint32 // timestamp of the newest media packet sent
	lastAt    time.Time
	clockRate uint32
}

// newSourceGap is a sequence jump within one SSRC that means the sender restarted.
const newSourceGap = 1000

// rewrite maps p's header into the output stream. clockRate is the packet's RTP clock.
func (r *rewriter) rewrite(p *Packet, clockRate uint32) error {
	h := &p.Header
	switch {
	case !r.started || h.SSRC != r.inSSRC:
		if r.hadPrev && h.SSRC == r.prevSSRC {
			return errStaleSource
		}
		r.switchSource(h, p.Arrival, clockRate)
	default:
		if d := int16(h.SequenceNumber - r.lastInSeq); d > newSourceGap || d < -newSourceGap {
			r.switchSource(h, p.Arrival, clockRate)
		}
	}
	if int16(h.SequenceNumber-r.lastInSeq) > 0 {
		r.lastInSeq = h.SequenceNumber
	}
	h.SSRC = r.ssrc
	h.SequenceNumber += r.seqOffset
	h.Timestamp += r.tsOffset
	if !r.sent || int16(h.SequenceNumber-r.lastSeq) > 0 {
		r.sent, r.lastSeq = true, h.SequenceNumber
		if clockRate != 0 {
			r.lastTS, r.lastAt, r.clockRate = h.Timestamp, p.Arrival, clockRate
		}
	}
	return nil
}

// switchSource maps the source of h so that its packet follows the last one sent.
func (r *rewriter) switchSource(h *rtp.Header, at time.Time, clockRate uint32) {
	if r.started && h.SSRC != r.inSSRC {
		r.prevSSRC, r.hadPrev = r.inSSRC, true
	}
	r.started, r.inSSRC, r.lastInSeq = true, h.SSRC, h.SequenceNumber-1
	if !r.sent {
		// The first source keeps its numbering.
		r.seqOffset, r.tsOffset = 0, 0
		return
	}
	r.seqOffset = r.lastSeq + 1 - h.SequenceNumber
	r.tsOffset = r.nowTS(at, clockRate) - h.Timestamp
}

// nowTS is the output timestamp at time at: the last one advanced by the wall time since (at
// least one tick, so a new source never repeats a timestamp).
func (r *rewriter) nowTS(at time.Time, clockRate uint32) uint32 {
	if r.lastAt.IsZero() {
		return r.lastTS
	}
	if clockRate == 0 {
		clockRate = r.clockRate
	}
	ticks := uint32(max(at.Sub(r.lastAt), 0) * time.Duration(clockRate) / time.Second)
	return r.lastTS + max(ticks, 1)
}

// inject takes the next sequence number for a packet the bridge makes itself (a DTMF event);
// the sources' packets after it shift by one.
func (r *rewriter) inject(h *rtp.Header) {
	if !r.sent {
		r.sent, r.lastSeq = true, h.SequenceNumber // the caller's random start
	} else {
		r.lastSeq++
		h.SequenceNumber = r.lastSeq
	}
	r.seqOffset++
	h.SSRC = r.ssrc
}
