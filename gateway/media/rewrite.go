package media

import (
	"errors"
	"time"

	"github.com/pion/rtp"
)

var (
	errStaleSource = errors.New("media: packet of a replaced source")
	errBeforeGaps  = errors.New("media: packet older than the closed sequence gaps kept")
)

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
	// gaps are the newest runs of the current source's sequence numbers that skip closed
	// (consumed packets): a late packet from before a run keeps the offset it had then.
	gaps     [maxGaps]seqGap
	nGaps    int
	gapFloor uint16 // packets up to this one are older than the gaps kept: dropped
	hasFloor bool

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
	if r.hasFloor && int16(h.SequenceNumber-r.gapFloor) <= 0 {
		return errBeforeGaps
	}
	if int16(h.SequenceNumber-r.lastInSeq) > 0 {
		r.lastInSeq = h.SequenceNumber
		r.forgetGaps()
	}
	h.SSRC = r.ssrc
	h.SequenceNumber += r.offsetFor(h.SequenceNumber)
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
	r.nGaps, r.hasFloor = 0, false
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
// the sources' packets after it shift by one. When the packet starts the output (nothing was
// sent yet: a digit sent before the first media packet), its sequence number and timestamp,
// at time at on a clockRate clock, are where the output starts: the first source continues
// from them (sequence +1, timestamp advanced by the wall time since), as from any packet sent.
// Without that, the first source kept its own timestamps, unrelated to the event's, and a
// receiver that orders events by timestamp (Asterisk) took every later event for an old one.
func (r *rewriter) inject(h *rtp.Header, at time.Time, clockRate uint32) {
	if !r.sent {
		r.sent, r.lastSeq = true, h.SequenceNumber // the caller's random start
		r.lastTS, r.lastAt, r.clockRate = h.Timestamp, at, clockRate
	} else {
		r.lastSeq++
		h.SequenceNumber = r.lastSeq
	}
	r.seqOffset++
	for i := range r.gaps[:r.nGaps] {
		r.gaps[i].before++
	}
	h.SSRC = r.ssrc
}

// seqGap is a run of input sequence numbers that skip took out of the output.
type seqGap struct {
	from, to uint16 // the run's first and last input sequence numbers
	ts       uint32 // the timestamp of its first packet (an event's)
	before   uint16 // the offset of the packets before it
}

// maxGaps is how many closed runs the rewriter remembers (a run is one consumed event).
const maxGaps = 8

// skip takes h, a packet of the current source that will not be sent, out of the numbering:
// the packets after it move down by one, so the destination sees no loss. A packet older than
// the newest one mapped leaves its gap: the number after it may already be sent.
func (r *rewriter) skip(h *rtp.Header) {
	seq := h.SequenceNumber
	if d := int16(seq - r.lastInSeq); !r.started || h.SSRC != r.inSSRC || d <= 0 || d > newSourceGap {
		return
	}
	if n := r.nGaps; n > 0 && (r.gaps[n-1].to+1 == seq || r.gaps[n-1].to == r.lastInSeq && r.gaps[n-1].ts == h.Timestamp) {
		// The run goes on; numbers missing inside one event (same timestamp) were packets of
		// that event, lost: closed too.
		r.seqOffset -= seq - r.gaps[n-1].to - 1
		r.gaps[n-1].to = seq
	} else {
		if n == maxGaps {
			r.gapFloor, r.hasFloor = r.gaps[0].to, true
			copy(r.gaps[:], r.gaps[1:])
			r.nGaps--
		}
		r.gaps[r.nGaps] = seqGap{from: seq, to: seq, ts: h.Timestamp, before: r.seqOffset}
		r.nGaps++
	}
	r.seqOffset--
	r.lastInSeq = seq
}

// forgetGaps drops the gaps no packet can be from before any more: one that far behind the
// newest is a new source (newSourceGap). It keeps the wrapping comparisons meaningful.
func (r *rewriter) forgetGaps() {
	if r.hasFloor && int16(r.lastInSeq-r.gapFloor) > newSourceGap {
		r.hasFloor = false
	}
	for r.nGaps > 0 && int16(r.lastInSeq-r.gaps[0].to) > newSourceGap {
		copy(r.gaps[:], r.gaps[1:])
		r.nGaps--
	}
}

// offsetFor is the sequence offset of the current source's packet seq: the current one, or
// for a late packet from before closed gaps, the one it had then.
func (r *rewriter) offsetFor(seq uint16) uint16 {
	off := r.seqOffset
	for i := r.nGaps - 1; i >= 0 && int16(seq-r.gaps[i].from) < 0; i-- {
		off = r.gaps[i].before
	}
	return off
}
