package media

import (
	"time"

	"github.com/pion/rtcp"
)

// seenWindow is how many sequence numbers behind the highest one the receiver remembers, to
// tell a late packet (it fills a gap) from a duplicate.
const seenWindow = 1024

// receiveStats is RFC 3550's receiver state for what one leg delivers (A.1, A.3, A.8), summed
// over the successive sources (a re-INVITE or a new track brings a new SSRC).
type receiveStats struct {
	// Totals over every source.
	packets, bytes, late, duplicates, repaired, dropped, sources uint64
	recovered                                                    uint64 // rebuilt by RED or FlexFEC
	lostBefore                                                   int64  // lost by the previous sources

	// The current source: sequence numbers extended past wrap-around.
	started   bool
	ssrc      uint32
	baseSeq   int64
	extMax    int64
	received  uint64 // unique packets of this source
	seen      [seenWindow / 64]uint64
	transit   int64
	onTransit bool    // transit holds a previous packet's
	jitter    float64 // RFC 3550 A.8, in clock ticks
	clockRate uint32
	epoch     time.Time // arrival times count from here, in clock ticks

	// For the next report block (fraction lost over the interval).
	expectedPrior, receivedPrior uint64
	// The last SR of this source: middle 32 bits of its NTP time, and when it arrived.
	lastSR   uint32
	lastSRAt time.Time
}

// newSource restarts the sequence state for ssrc, keeping the totals.
func (s *receiveStats) newSource(ssrc uint32, seq uint16) {
	if s.started {
		s.lostBefore += s.lostCurrent()
	}
	*s = receiveStats{
		packets: s.packets, bytes: s.bytes, late: s.late, duplicates: s.duplicates,
		repaired: s.repaired, recovered: s.recovered, dropped: s.dropped, sources: s.sources + 1, lostBefore: s.lostBefore,
		started: true, ssrc: ssrc, baseSeq: int64(seq), extMax: int64(seq) - 1, clockRate: s.clockRate,
	}
}

// restartGap is a sequence jump that means the sender restarted its numbering.
const restartGap = 3000

func (s *receiveStats) extendedMax() uint32 { return uint32(s.extMax) }

func (s *receiveStats) expected() uint64 { return uint64(s.extMax - s.baseSeq + 1) }

func (s *receiveStats) lostCurrent() int64 {
	if !s.started {
		return 0
	}
	return max(int64(s.expected())-int64(s.received), 0)
}

// lost is the cumulative number of packets lost, over every source.
func (s *receiveStats) lost() int64 { return s.lostBefore + s.lostCurrent() }

func (s *receiveStats) seenBit(seq uint16) (word int, bit uint64) {
	i := int(seq) % seenWindow
	return i / 64, 1 << (i % 64)
}

// update records one packet; it returns false for a duplicate.
func (s *receiveStats) update(p *Packet, clockRate uint32) bool {
	h := &p.Header
	if !s.started || h.SSRC != s.ssrc {
		s.newSource(h.SSRC, h.SequenceNumber)
	}
	delta := int(int16(h.SequenceNumber - uint16(s.extMax)))
	if delta > restartGap || delta < -restartGap {
		s.newSource(h.SSRC, h.SequenceNumber)
		delta = 1
	}
	if delta > 0 {
		// The window slots the new maximum moves onto held sequence numbers seenWindow older.
		for i := 1; i <= min(delta, seenWindow); i++ {
			w, b := s.seenBit(uint16(s.extMax) + uint16(i))
			s.seen[w] &^= b
		}
		s.extMax += int64(delta)
	}
	w, b := s.seenBit(h.SequenceNumber)
	switch {
	case delta > 0:
	case -delta >= seenWindow: // too old to tell a duplicate: count it late
		s.late++
	case s.seen[w]&b != 0:
		s.duplicates++
		return false
	default:
		s.late++
	}
	if -delta < seenWindow {
		s.seen[w] |= b
	}
	s.received++
	s.packets++
	s.bytes += uint64(len(p.Payload))
	if p.Repaired {
		s.repaired++
	}
	if p.Recovered {
		s.recovered++
	}
	// A rebuilt packet's arrival is its repair's: no jitter sample.
	if clockRate != 0 && !p.Generated && !p.Recovered {
		if clockRate != s.clockRate || s.epoch.IsZero() {
			s.clockRate, s.onTransit, s.jitter, s.epoch = clockRate, false, 0, p.Arrival
		}
		arrival := int64(p.Arrival.Sub(s.epoch).Seconds() * float64(clockRate))
		transit := arrival - int64(h.Timestamp)
		if s.onTransit && delta > 0 {
			d := transit - s.transit
			if d < 0 {
				d = -d
			}
			s.jitter += (float64(d) - s.jitter) / 16
		}
		s.transit, s.onTransit = transit, true
	}
	return true
}

// jitterDuration is the interarrival jitter as a duration.
func (s *receiveStats) jitterDuration() time.Duration {
	if s.clockRate == 0 {
		return 0
	}
	return time.Duration(s.jitter * float64(time.Second) / float64(s.clockRate))
}

// reportBlock is the RFC 3550 report block about the current source, and moves the interval.
func (s *receiveStats) reportBlock(now time.Time) (rtcp.ReceptionReport, bool) {
	if !s.started || s.received == 0 {
		return rtcp.ReceptionReport{}, false
	}
	expected := s.expected()
	expectedInterval := expected - s.expectedPrior
	receivedInterval := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	var fraction uint8
	if lostInterval := int64(expectedInterval) - int64(receivedInterval); expectedInterval > 0 && lostInterval > 0 {
		fraction = uint8(lostInterval << 8 / int64(expectedInterval))
	}
	lost := s.lostCurrent()
	rr := rtcp.ReceptionReport{
		SSRC:               s.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(min(lost, 1<<23-1)),
		LastSequenceNumber: s.extendedMax(),
		Jitter:             uint32(s.jitter),
		LastSenderReport:   s.lastSR,
	}
	if !s.lastSRAt.IsZero() {
		rr.Delay = uint32(now.Sub(s.lastSRAt) * 65536 / time.Second)
	}
	return rr, true
}

// sendStats is what the bridge sent on one leg: the counts of its SR and the RTP clock the SR
// maps to wall time.
type sendStats struct {
	packets, bytes, dtmfEvents uint64
	lastTimestamp              uint32
	lastAt                     time.Time
	clockRate                  uint32
}

func (s *sendStats) update(p *Packet, clockRate uint32) {
	s.packets++
	s.bytes += uint64(len(p.Payload))
	if !p.Generated && clockRate != 0 {
		s.lastTimestamp, s.lastAt, s.clockRate = p.Header.Timestamp, p.Arrival, clockRate
	}
}

// rtpTimeAt is the RTP timestamp of the sent stream at now, extrapolated from the last packet.
func (s *sendStats) rtpTimeAt(now time.Time) uint32 {
	if s.lastAt.IsZero() || s.clockRate == 0 {
		return s.lastTimestamp
	}
	return s.lastTimestamp + uint32(now.Sub(s.lastAt)*time.Duration(s.clockRate)/time.Second)
}

// ntpTime is the 64-bit NTP timestamp of t.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	sec := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return sec<<32 | frac
}
