package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// How a received packet was repaired ([RecvPacket.Repaired]); the same strings as the lab
// peers' PacketRecord.Repaired.
const (
	RepairNone = ""     // arrived as sent
	RepairNACK = "nack" // retransmitted after a NACK on the media SSRC (RFC 4585 generic NACK)
	RepairRTX  = "rtx"  // retransmitted on an RTX stream (RFC 4588)
	RepairFEC  = "fec"  // rebuilt from FEC packets (ULPFEC RFC 5109, FlexFEC RFC 8627)
	RepairRED  = "red"  // taken from a redundant block of a later RED packet (RFC 2198)
)

// What a sent packet was ([SentPacket.Kind]).
const (
	SentMedia = ""    // a first transmission of a media packet
	SentRTX   = "rtx" // a retransmission, on the media SSRC or an RTX stream alike
	SentFEC   = "fec" // an FEC packet (its own SSRC or payload type)
	SentRED   = "red" // a packet that is redundancy only (e.g. a RED packet whose primary block is empty)
)

// RecvPacket is one entry of a receive log: one RTP packet of one stream (one SSRC; filter
// the log first) as the application got it, after the repair machinery. The lab peers'
// PacketRecord maps to it field by field (webclient: At; sipphone: Arrival).
type RecvPacket struct {
	Arrival   time.Time `json:"arrival"`   // when the packet (or its repair) was handed over
	Seq       uint16    `json:"seq"`       // RTP sequence number of the media stream (for a repair: the repaired packet's)
	Timestamp uint32    `json:"timestamp"` // RTP timestamp
	Size      int       `json:"size"`      // bytes (the peers log the whole RTP packet)
	Repaired  string    `json:"repaired"`  // RepairNone, RepairNACK, RepairRTX, RepairFEC or RepairRED
}

// SentPacket is one entry of a send log of the same stream.
type SentPacket struct {
	At time.Time `json:"at"` // when the packet left the sender
	// Seq is the media sequence number: for SentRTX the original sequence number of the
	// packet resent (RFC 4588 OSN). Ignored for SentFEC and SentRED.
	Seq  uint16 `json:"seq"`
	Size int    `json:"size"` // bytes on the wire (header included), as for RecvPacket.Size
	Kind string `json:"kind"` // SentMedia, SentRTX, SentFEC or SentRED
	// RedundantBytes is, for a SentMedia packet that carries RFC 2198 redundant blocks, how
	// many of its Size bytes are redundancy (those blocks and their headers).
	RedundantBytes int `json:"redundant_bytes"`
}

// StreamOptions configure [AnalyzeStream].
type StreamOptions struct {
	// ClockRate of the RTP timestamps, Hz (8000 for PCMU/PCMA, 48000 for Opus, 90000 for
	// video). Required.
	ClockRate int `json:"clock_rate"`
	// Deadline is the delay of a fixed playout buffer, measured from the first packet
	// received: packet i is late when it arrives after
	//
	//	playout(i) = Arrival(ref) + (Timestamp(i) - Timestamp(ref))/ClockRate + Deadline
	//
	// where ref is the earliest-arriving packet. Zero or negative: no lateness analysis.
	Deadline time.Duration `json:"deadline_ns"`
}

// RepairCounts are received packets by how they were repaired.
type RepairCounts struct {
	NACK  int `json:"nack"`
	RTX   int `json:"rtx"`
	FEC   int `json:"fec"`
	RED   int `json:"red"`
	Total int `json:"total"`
}

// Overhead is the repair traffic of a send log, in bytes and as fractions of MediaBytes
// (0 when MediaBytes is 0).
type Overhead struct {
	// MediaBytes: SentMedia sizes, less their RedundantBytes.
	MediaBytes int64 `json:"media_bytes"`
	// RTXBytes: SentRTX sizes.
	RTXBytes int64 `json:"rtx_bytes"`
	// FECBytes: SentFEC sizes.
	FECBytes int64 `json:"fec_bytes"`
	// REDBytes: SentRED sizes plus the RedundantBytes of SentMedia packets.
	REDBytes int64 `json:"red_bytes"`
	// RTX = RTXBytes / MediaBytes.
	RTX float64 `json:"rtx_fraction"`
	// FEC = FECBytes / MediaBytes.
	FEC float64 `json:"fec_fraction"`
	// RED = REDBytes / MediaBytes.
	RED float64 `json:"red_fraction"`
	// Total = (RTXBytes + FECBytes + REDBytes) / MediaBytes.
	Total float64 `json:"total_fraction"`
}

// StreamStats is the quality of one received stream; see [AnalyzeStream]. Rates are
// fractions in [0, 1] of Expected (not percentages).
type StreamStats struct {
	ClockRate int           `json:"clock_rate"`
	Deadline  time.Duration `json:"deadline_ns"`
	// SendLog tells whether a send log with media packets was given: Expected, Delay and
	// Overhead depend on it.
	SendLog bool `json:"send_log"`

	// FirstSeq and LastSeq are the extended sequence numbers (16-bit wrap undone, counting on
	// from the first logged packet) of the first and last expected packets.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Expected: with a send log, the distinct media sequence numbers sent (so loss at the
	// ends is seen); without, LastSeq - FirstSeq + 1 over the received packets (RFC 3550
	// A.3; loss before the first or after the last received packet is not seen).
	Expected int `json:"expected"`
	// Received: distinct expected sequence numbers received, repaired ones included.
	Received int `json:"received"`
	// Duplicates: receive-log entries beyond the first for a sequence number.
	Duplicates int `json:"duplicates"`
	// Unexpected: distinct received sequence numbers absent from the send log (0 without
	// one). They are left out of every other count.
	Unexpected int `json:"unexpected"`
	// ReceivedBytes: the Size of every receive-log entry, duplicates included.
	ReceivedBytes int64 `json:"received_bytes"`

	// Lost = Expected - Received: lost after repair (RFC 8868 §2 item 6, post-repair loss).
	Lost     int     `json:"lost"`
	LossRate float64 `json:"loss_rate"`
	// Repaired counts the received packets by repair mechanism (of each sequence number's
	// earliest arrival).
	Repaired RepairCounts `json:"repaired"`
	// PreRepairLossRate = (Lost + Repaired.Total) / Expected: the loss the repair faced.
	PreRepairLossRate float64 `json:"pre_repair_loss_rate"`
	// Late: received packets that missed their playout instant (see StreamOptions.Deadline);
	// RFC 8868 §2 item 5, packets discarded by the playout buffer.
	Late     int     `json:"late"`
	LateRate float64 `json:"late_rate"`
	// EffectiveLost = Lost + Late: what the listener misses.
	EffectiveLost     int     `json:"effective_lost"`
	EffectiveLossRate float64 `json:"effective_loss_rate"`
	// Gilbert is the two-state model fitted to the effective loss pattern, in sequence order
	// (see [FitGilbert]); its BurstR feeds [EModel].
	Gilbert Gilbert `json:"gilbert"`

	// Jitter is the RFC 3550 §6.4.1 interarrival jitter after the last packet, over the
	// received packets that were not repaired, in arrival order.
	Jitter time.Duration `json:"jitter_ns"`
	// Delay summarizes the one-way delay, arrival minus the first send time of the same
	// sequence number, over the received packets found in the send log (repaired ones
	// included: their delay includes the repair). Delay.N is 0 without a send log.
	Delay DurationSummary `json:"delay"`
	// Overhead is the repair traffic of the send log.
	Overhead Overhead `json:"overhead"`
}

// unwrapper extends 16-bit sequence numbers to the value nearest the highest seen so far.
type unwrapper struct {
	max     int64
	started bool
}

func (u *unwrapper) ext(seq uint16) int64 {
	if !u.started {
		u.max, u.started = int64(seq), true
		return u.max
	}
	v := u.max + int64(int16(seq-uint16(u.max)))
	if v > u.max {
		u.max = v
	}
	return v
}

// rx is one receive-log entry, prepared (pointer-free, so that large logs sort fast).
type rx struct {
	ext     int64
	arrival int64 // ns since the origin (the earliest arrival)
	sent    int64 // ns since the origin, the media send time; valid if hasSent
	idx     int   // position in the log, the last tie-break
	ts      uint32
	repair  uint8 // index into repairs
	hasSent bool
	late    bool
}

// repairs are the RecvPacket.Repaired values, indexed by rx.repair.
var repairs = [...]string{RepairNone, RepairNACK, RepairRTX, RepairFEC, RepairRED}

// AnalyzeStream computes the quality of one received stream from its receive log (in arrival
// order, one SSRC) and optionally its send log (nil if unknown; logs must cover the same
// stretch of the stream, less than 32768 sequence numbers apart at their starts).
//
// Definitions (each field of [StreamStats] repeats its own):
//   - sequence numbers are extended past the 16-bit wrap to the value nearest the highest
//     seen so far (RFC 3550 A.1); the receive log continues the send log's numbering;
//   - for each sequence number only the earliest arrival counts (ties: the first in the
//     log); the others are Duplicates;
//   - expected, received, lost after repair and their rates as in StreamStats; RFC 3550 A.3
//     and RFC 8868 §2 items 5 and 6;
//   - lateness against a fixed-delay playout buffer of StreamOptions.Deadline, its
//     reference the earliest-arriving packet: late when arrival > Arrival(ref) +
//     (TS - TS(ref))/ClockRate + Deadline (RTP timestamps unwrapped in sequence order);
//     arriving exactly at the playout instant is on time;
//   - jitter: RFC 3550 §6.4.1, J += (|D(i-1,i)| - J)/16 with D the difference of transit
//     times (arrival in timestamp units minus RTP timestamp) of consecutive packets in
//     arrival order, over packets not repaired (a repair is not sent at its timestamp's
//     time); computed in floating point, reported as J/ClockRate;
//   - delay: arrival minus send time of the SentMedia entry of the same sequence number;
//   - overhead: see [Overhead].
//
// It fails on a ClockRate <= 0 or an unknown Repaired or Kind string.
func AnalyzeStream(recv []RecvPacket, sent []SentPacket, opts StreamOptions) (StreamStats, error) {
	st := StreamStats{ClockRate: opts.ClockRate, Deadline: opts.Deadline}
	if opts.ClockRate <= 0 {
		return st, errors.New("metrics: StreamOptions.ClockRate must be positive")
	}
	// The origin of the ns offsets below: the earliest arrival, else the first send.
	var origin time.Time
	for i, p := range recv {
		if i == 0 || p.Arrival.Before(origin) {
			origin = p.Arrival
		}
	}
	if len(recv) == 0 && len(sent) > 0 {
		origin = sent[0].At
	}

	// The send log: overhead, media send times by extended sequence number.
	type tx struct {
		ext int64
		at  int64 // ns since the origin
		idx int
	}
	media := make([]tx, 0, len(sent))
	var su unwrapper
	for i, p := range sent {
		switch p.Kind {
		case SentMedia:
			st.Overhead.MediaBytes += int64(p.Size - p.RedundantBytes)
			st.Overhead.REDBytes += int64(p.RedundantBytes)
			media = append(media, tx{ext: su.ext(p.Seq), at: int64(p.At.Sub(origin)), idx: i})
		case SentRTX:
			st.Overhead.RTXBytes += int64(p.Size)
			su.ext(p.Seq) // keeps the numbering current
		case SentFEC:
			st.Overhead.FECBytes += int64(p.Size)
		case SentRED:
			st.Overhead.REDBytes += int64(p.Size)
		default:
			return st, fmt.Errorf("metrics: send log entry %d: unknown Kind %q", i, p.Kind)
		}
	}
	o := &st.Overhead
	mb := float64(o.MediaBytes)
	o.RTX = ratio(float64(o.RTXBytes), mb)
	o.FEC = ratio(float64(o.FECBytes), mb)
	o.RED = ratio(float64(o.REDBytes), mb)
	o.Total = ratio(float64(o.RTXBytes+o.FECBytes+o.REDBytes), mb)
	st.SendLog = len(media) > 0
	// Earliest send time per sequence number, sorted by sequence number.
	slices.SortFunc(media, func(a, b tx) int {
		return cmp.Or(cmp.Compare(a.ext, b.ext), cmp.Compare(a.at, b.at), cmp.Compare(a.idx, b.idx))
	})
	media = slices.CompactFunc(media, func(a, b tx) bool { return a.ext == b.ext })

	// The receive log, numbered on from the send log's first media packet.
	var ru unwrapper
	if st.SendLog {
		first := sent[0]
		for _, p := range sent {
			if p.Kind == SentMedia {
				first = p
				break
			}
		}
		ru.ext(first.Seq)
	}
	rs := make([]rx, len(recv))
	for i, p := range recv {
		code := slices.Index(repairs[:], p.Repaired)
		if code < 0 {
			return st, fmt.Errorf("metrics: receive log entry %d: unknown Repaired %q", i, p.Repaired)
		}
		st.ReceivedBytes += int64(p.Size)
		rs[i] = rx{ext: ru.ext(p.Seq), arrival: int64(p.Arrival.Sub(origin)), ts: p.Timestamp, idx: i, repair: uint8(code)}
	}
	slices.SortFunc(rs, func(a, b rx) int {
		return cmp.Or(cmp.Compare(a.ext, b.ext), cmp.Compare(a.arrival, b.arrival), cmp.Compare(a.idx, b.idx))
	})
	rs = slices.CompactFunc(rs, func(a, b rx) bool { return a.ext == b.ext })
	st.Duplicates = len(recv) - len(rs)

	// Expected sequence numbers; keep the received packets among them.
	if st.SendLog {
		st.Expected = len(media)
		st.FirstSeq, st.LastSeq = media[0].ext, media[len(media)-1].ext
		kept := rs[:0]
		j := 0
		for _, r := range rs {
			for j < len(media) && media[j].ext < r.ext {
				j++
			}
			if j < len(media) && media[j].ext == r.ext {
				r.sent, r.hasSent = media[j].at, true
				kept = append(kept, r)
			} else {
				st.Unexpected++
			}
		}
		rs = kept
	} else if len(rs) > 0 {
		st.FirstSeq, st.LastSeq = rs[0].ext, rs[len(rs)-1].ext
		st.Expected = int(st.LastSeq - st.FirstSeq + 1)
	}
	st.Received = len(rs)
	st.Lost = st.Expected - st.Received

	for _, r := range rs {
		switch repairs[r.repair] {
		case RepairNACK:
			st.Repaired.NACK++
		case RepairRTX:
			st.Repaired.RTX++
		case RepairFEC:
			st.Repaired.FEC++
		case RepairRED:
			st.Repaired.RED++
		}
	}
	st.Repaired.Total = st.Repaired.NACK + st.Repaired.RTX + st.Repaired.FEC + st.Repaired.RED

	if len(rs) > 0 {
		// RTP timestamps, unwrapped in sequence order, relative to the first.
		tsx := make([]int64, len(rs))
		for i := 1; i < len(rs); i++ {
			tsx[i] = tsx[i-1] + int64(int32(rs[i].ts-rs[i-1].ts))
		}
		clock := int64(opts.ClockRate)
		ref := 0
		for i, r := range rs {
			if r.arrival < rs[ref].arrival {
				ref = i
			}
		}
		if opts.Deadline > 0 {
			base := rs[ref].arrival + int64(opts.Deadline)
			for i := range rs {
				playout := base + ticksToNanos(tsx[i]-tsx[ref], clock)
				if rs[i].arrival > playout {
					rs[i].late = true
					st.Late++
				}
			}
		}

		// Jitter over the packets that were not repaired, in arrival order.
		order := make([]int, 0, len(rs))
		for i, r := range rs {
			if repairs[r.repair] == RepairNone {
				order = append(order, i)
			}
		}
		slices.SortFunc(order, func(a, b int) int {
			return cmp.Or(cmp.Compare(rs[a].arrival, rs[b].arrival), cmp.Compare(a, b))
		})
		var j float64
		for k := 1; k < len(order); k++ {
			a, b := order[k-1], order[k]
			// D = (Rb - Ra) - (Sb - Sa), in timestamp units.
			d := float64(rs[b].arrival-rs[a].arrival)*float64(clock)/1e9 - float64(tsx[b]-tsx[a])
			j += (math.Abs(d) - j) / 16
		}
		st.Jitter = time.Duration(math.Round(j / float64(clock) * 1e9))

		delays := make([]time.Duration, 0, len(rs))
		for _, r := range rs {
			if r.hasSent {
				delays = append(delays, time.Duration(r.arrival-r.sent))
			}
		}
		if len(delays) > 0 {
			slices.Sort(delays)
			st.Delay = summarizeSortedDurations(delays)
		}
	}

	st.EffectiveLost = st.Lost + st.Late
	exp := float64(st.Expected)
	st.LossRate = ratio(float64(st.Lost), exp)
	st.LateRate = ratio(float64(st.Late), exp)
	st.EffectiveLossRate = ratio(float64(st.EffectiveLost), exp)
	st.PreRepairLossRate = ratio(float64(st.Lost+st.Repaired.Total), exp)

	// The effective loss pattern over the expected sequence numbers, in order.
	pattern := make([]bool, 0, st.Expected)
	k := 0
	missed := func(ext int64) bool { // whether ext is lost or late; ext ascends
		for k < len(rs) && rs[k].ext < ext {
			k++
		}
		return k >= len(rs) || rs[k].ext != ext || rs[k].late
	}
	if st.SendLog {
		for _, m := range media {
			pattern = append(pattern, missed(m.ext))
		}
	} else if st.Expected > 0 {
		for e := st.FirstSeq; e <= st.LastSeq; e++ {
			pattern = append(pattern, missed(e))
		}
	}
	st.Gilbert = FitGilbert(pattern)
	return st, nil
}

// ticksToNanos converts RTP timestamp ticks at clock Hz to nanoseconds, truncating toward
// zero, without overflow for any realistic span.
func ticksToNanos(ticks, clock int64) int64 {
	return ticks/clock*int64(time.Second) + ticks%clock*int64(time.Second)/clock
}
