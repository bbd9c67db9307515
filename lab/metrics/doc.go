// Package metrics computes the lab's measurements from logs: call set-up times, received
// stream quality, ARQ/FEC theory bounds, congestion-control (BWE) behaviour and voice quality.
// It is pure computation: no networking, no clocks, no randomness; every function is
// deterministic, and every result type encodes to JSON with fixed snake_case keys (durations
// as integer nanoseconds under keys ending in _ns, rates in bit/s under keys ending in _bps,
// loss and utilization as fractions in [0, 1] unless the name says percent). No result
// field is NaN or infinite: a ratio with a zero denominator is 0.
//
// The inputs are plain structs a caller fills from the lab peers' per-packet logs
// (lab/peers/webclient and lab/peers/sipphone PacketRecord, filtered to one SSRC) and from
// BWE samples. For example, with webclient records of one SSRC:
//
//	recv := make([]metrics.RecvPacket, 0, len(received))
//	for _, r := range received {
//		recv = append(recv, metrics.RecvPacket{Arrival: r.At, Seq: r.Seq,
//			Timestamp: r.Timestamp, Size: r.Size, Repaired: r.Repaired})
//	}
//	st, err := metrics.AnalyzeStream(recv, sent, metrics.StreamOptions{
//		ClockRate: 8000, Deadline: 60 * time.Millisecond})
//	// Mouth-to-ear delay: the reference packet's network delay (about Delay.Min), the
//	// playout deadline and one packet's duration.
//	q := metrics.EModel(metrics.VoiceInput{
//		DelayMs:     float64(st.Delay.Min+st.Deadline+20*time.Millisecond) / 1e6,
//		LossPercent: 100 * st.EffectiveLossRate, BurstR: st.Gilbert.BurstR,
//		Codec:       metrics.CodecG711PLC})
//
// # Call set-up (setup.go)
//
//   - [Setup]: instants of INVITE, 200 OK, ICE+DTLS connected, first media at the WebRTC end
//     and at the SIP end. InviteTo200 = OK200 − Invite, InviteToConnected = Connected − Invite,
//     InviteToFirstMediaWebRTC, InviteToFirstMediaSIP likewise; undefined when an instant is
//     missing (zero).
//   - [Bound]: Limit = RoundTrips·RTT + Slack; Ratio(d) = d / Limit.
//   - [SummarizeSetups]: per interval min, mean, median, p95, p99, max over the set-ups that
//     have it.
//
// # Stream quality (stream.go)
//
// [AnalyzeStream] computes, for one received stream:
//
//   - Extended sequence numbers: the 16-bit number extended to the value nearest the highest
//     seen (RFC 3550 Appendix A.1).
//   - Expected: distinct media sequence numbers in the send log, else highest − lowest + 1
//     received (RFC 3550 A.3). Received: distinct expected ones received. Duplicates: extra
//     log entries.
//   - Lost (post-repair) = Expected − Received; loss rate = Lost / Expected (RFC 8868 §2
//     item 6, "post-repair loss"). Pre-repair loss rate = (Lost + repaired) / Expected.
//   - Repaired per mechanism: NACK (RFC 4585), RTX (RFC 4588), FEC (RFC 5109, RFC 8627),
//     RED (RFC 2198), from the receive log's Repaired field.
//   - Late: with a fixed-delay playout buffer of D (StreamOptions.Deadline) referenced to the
//     earliest-arriving packet ref, packet i is late iff
//     arrival(i) > arrival(ref) + (ts(i) − ts(ref))/clock + D (RFC 8868 §2 item 5,
//     "packets discarded from the playout or de-jitter buffer").
//   - Effective loss = (Lost + Late) / Expected: what the listener misses.
//   - Gilbert model of the effective loss pattern (see E-model below).
//   - One-way delay (send log needed): arrival − send time per packet, with min, mean, p50,
//     p95, p99, max (RFC 8868 §2 item 4, "packet delay").
//   - Interarrival jitter: RFC 3550 §6.4.1, J ← J + (|D(i−1,i)| − J)/16, over packets not
//     repaired.
//   - Overhead (send log needed): RTX bytes, FEC bytes and RED bytes (redundant blocks and
//     redundancy-only packets), each as a fraction of media bytes.
//
// # ARQ/FEC theory (bounds.go)
//
//   - [ARQResidualLoss](p, k) = p^(k+1): loss left after k retransmission rounds under
//     independent losses of probability p.
//   - [ARQRounds](deadline, rtt, nackDelay) = floor(deadline / (rtt + nackDelay)): rounds
//     that complete within the playout budget.
//   - [UpperBound], [LowerBound]: the Wilson score interval (Wilson 1927) of a proportion,
//     (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), with [Z95], [Z99], [Z999].
//
// # Congestion control (bwe.go)
//
// Each [Sample] holds until the next one (sample and hold). Over a [Window], [AnalyzeBWE] gives:
//
//   - time-weighted mean target, sending, delivered and capacity rates (RFC 8868 §2 item 1);
//   - utilization = time mean of delivered/capacity, and of sending/capacity (RFC 8868 §2
//     item 10, bandwidth utilization);
//   - overshoot: fraction of time sending > capacity, and mean excess (bit/s) over that time;
//   - loss rate = 1 − ∫delivered / ∫sending (RFC 8868 §2 item 5);
//   - queue delay min, mean, p50, p95, p99, max over the samples (RFC 8868 §2 item 4).
//
// [ConvergenceTime] is RFC 8868 §2 item 8: time from a change until the rate (delivered,
// target or sending) enters ±Tolerance (default 15%) of a reference (the new capacity or a
// fair share) and stays for Hold (default 1 s). [Jain] is Jain's fairness index (Jain, Chiu &
// Hawe 1984; RFC 5166), (Σx)²/(n·Σx²), for RFC 8868 §2 item 7 (self-fairness). [Resample]
// makes a fixed-step [Series] of time-weighted means for charts (RFC 8868 §2 asks for 200 ms
// and 1 s intervals).
//
// # Voice quality (emodel.go)
//
// The ITU-T G.107 E-model, simplified: R = 93.2 − Id − Ie,eff + A, where 93.2 is R with all
// G.107 defaults; Id = Idd(Ta) = 25[(1+X⁶)^(1/6) − 3(1+(X/3)⁶)^(1/6) + 2] with X =
// log2(Ta/100 ms) for Ta > 100 ms, else 0; Ie,eff = Ie + (95 − Ie)·Ppl/(Ppl/BurstR + Bpl)
// with Ie and Bpl from G.113 Appendix I (G.711: Ie 0, Bpl 4.3, or 25.1 with PLC; Opus is an
// assumption, see [CodecOpus]); BurstR = 1/(p + r) of a Gilbert model fitted to the loss
// pattern ([FitGilbert]); MOS from R by G.107 Annex B, 1 + 0.035R + R(R−60)(100−R)·7·10⁻⁶,
// clamped to [1, 4.5].
//
// # Summaries (summary.go)
//
// [Summarize] and [SummarizeDurations] give N, min, mean, p50, p95, p99, max. Percentiles are
// nearest-rank: the value at 1-based rank ceil(p/100·n) of the sorted sample ([Percentile]).
package metrics
