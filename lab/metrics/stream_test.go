package metrics

import (
	"strings"
	"testing"
	"time"
)

// A ten-packet PCMU stream (8 kHz, 20 ms = 160 ticks per packet) whose sequence numbers wrap
// (65530..65535, 0..3) and whose RTP timestamps wrap too (4294967000 + 160i passes 2^32 at
// i = 2). Packet i is sent at 20i ms and normally arrives 50 ms later. Index i below is the
// position in the stream, not the sequence number.
//
//	i=2  repaired by RED, on time (90 ms)
//	i=3  lost for good
//	i=4  repaired by RTX, on time (130 ms)
//	i=5  arrives at 150 ms, then a spurious NACK copy at 170 ms (a duplicate)
//	i=7  repaired by NACK at 290 ms: its playout instant is 50+140+60 = 250 ms, late
//	i=8  repaired by FEC at 240 ms: playout 50+160+60 = 270 ms, on time
//	i=9  arrives at 290 ms = exactly its playout instant 50+180+60: on time
const (
	seq0 = 65530
	ts0  = 4294967000
)

func exampleRecv() []RecvPacket {
	p := func(i int, arrival float64, repaired string) RecvPacket {
		return RecvPacket{
			Arrival: at(ms(arrival)), Seq: uint16(seq0 + i), Timestamp: uint32(ts0 + 160*i),
			Size: 172, Repaired: repaired,
		}
	}
	return []RecvPacket{ // arrival order
		p(0, 50, ""), p(1, 70, ""), p(2, 90, "red"), p(4, 130, "rtx"), p(5, 150, ""),
		p(6, 170, ""), p(5, 170, "nack"), p(8, 240, "fec"), p(7, 290, "nack"), p(9, 290, ""),
	}
}

func exampleSent() []SentPacket {
	var s []SentPacket
	for i := range 10 {
		p := SentPacket{At: at(ms(20 * float64(i))), Seq: uint16(seq0 + i), Size: 172}
		if i == 0 {
			p.RedundantBytes = 20
		}
		s = append(s, p)
		switch i {
		case 4: // retransmissions of 3 (lost again) and, later, 7
			s = append(s, SentPacket{At: at(ms(85)), Seq: uint16(seq0 + 3), Size: 174, Kind: "rtx"})
		case 9:
			s = append(s, SentPacket{At: at(ms(255)), Seq: uint16(seq0 + i - 2), Size: 174, Kind: "rtx"}) // 7
		}
	}
	s = append(s,
		SentPacket{At: at(ms(100)), Size: 85, Kind: "fec"},
		SentPacket{At: at(ms(200)), Size: 85, Kind: "fec"},
		SentPacket{At: at(ms(200)), Size: 14, Kind: "red"},
	)
	return s
}

func checkCommon(t *testing.T, st StreamStats) {
	t.Helper()
	eq(t, "FirstSeq", st.FirstSeq, int64(65530))
	eq(t, "LastSeq", st.LastSeq, int64(65539)) // 3 after the wrap
	eq(t, "Expected", st.Expected, 10)
	eq(t, "Received", st.Received, 9)
	eq(t, "Duplicates", st.Duplicates, 1)
	eq(t, "Unexpected", st.Unexpected, 0)
	eq(t, "ReceivedBytes", st.ReceivedBytes, int64(10*172))
	eq(t, "Lost", st.Lost, 1)
	near(t, "LossRate", st.LossRate, 0.1, 1e-15)
	// The earliest copy of 5 is the plain one, so the NACK copy does not count as a repair.
	eq(t, "Repaired", st.Repaired, RepairCounts{NACK: 1, RTX: 1, FEC: 1, RED: 1, Total: 4})
	near(t, "PreRepairLossRate", st.PreRepairLossRate, 0.5, 1e-15) // (1 + 4)/10
	eq(t, "Late", st.Late, 1)
	near(t, "LateRate", st.LateRate, 0.1, 1e-15)
	eq(t, "EffectiveLost", st.EffectiveLost, 2)
	near(t, "EffectiveLossRate", st.EffectiveLossRate, 0.2, 1e-15)
	// Pattern (L = lost or late): F F F L F F F L F F. Transitions: F→F 5, F→L 2, L→F 2.
	eq(t, "Gilbert.Packets", st.Gilbert.Packets, 10)
	eq(t, "Gilbert.Lost", st.Gilbert.Lost, 2)
	near(t, "Gilbert.P", st.Gilbert.P, 2.0/7, 1e-15)
	near(t, "Gilbert.R", st.Gilbert.R, 1, 0)
	near(t, "Gilbert.BurstR", st.Gilbert.BurstR, 7.0/9, 1e-15)
	// Jitter over the unrepaired packets 0, 1, 5, 6, 9 in arrival order: transit is 50 ms for
	// 0..6 (D = 0), then 6→9 has D = (290-170) - (180-120) = 60 ms = 480 ticks, so
	// J = 480/16 = 30 ticks = 3.75 ms.
	eq(t, "Jitter", st.Jitter, 3750*time.Microsecond)
}

func TestAnalyzeStreamReceiveOnly(t *testing.T) {
	st, err := AnalyzeStream(exampleRecv(), nil, StreamOptions{ClockRate: 8000, Deadline: ms(60)})
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, st)
	eq(t, "SendLog", st.SendLog, false)
	eq(t, "Delay", st.Delay, DurationSummary{})
	eq(t, "Overhead", st.Overhead, Overhead{})
	eq(t, "ClockRate", st.ClockRate, 8000)
	eq(t, "Deadline", st.Deadline, ms(60))
}

func TestAnalyzeStreamWithSendLog(t *testing.T) {
	st, err := AnalyzeStream(exampleRecv(), exampleSent(), StreamOptions{ClockRate: 8000, Deadline: ms(60)})
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, st)
	eq(t, "SendLog", st.SendLog, true)
	// Delays: 0,1,2,4,5,6 50 ms; 7 290-140 = 150 ms; 8 240-160 = 80 ms; 9 290-180 = 110 ms.
	// Mean (6·50 + 150 + 80 + 110)/9 = 71.111111 ms; p50 is rank 5 of 9, p95 rank 9.
	eq(t, "Delay", st.Delay, DurationSummary{
		N: 9, Min: ms(50), Mean: 71111111, P50: ms(50), P95: ms(150), P99: ms(150), Max: ms(150),
	})
	// Media 10·172 - 20 = 1700 B; RTX 2·174 = 348; FEC 2·85 = 170; RED 20 + 14 = 34.
	eq(t, "Overhead", st.Overhead, Overhead{
		MediaBytes: 1700, RTXBytes: 348, FECBytes: 170, REDBytes: 34,
		RTX: 348.0 / 1700, FEC: 0.1, RED: 0.02, Total: 552.0 / 1700,
	})
}

func TestAnalyzeStreamDeadlineOff(t *testing.T) {
	st, err := AnalyzeStream(exampleRecv(), nil, StreamOptions{ClockRate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Late", st.Late, 0)
	near(t, "EffectiveLossRate", st.EffectiveLossRate, 0.1, 1e-15)
	// Only 3 is missing now: F F F L F F F F F F, F→F 7, F→L 1.
	near(t, "Gilbert.P", st.Gilbert.P, 1.0/8, 1e-15)
}

func TestAnalyzeStreamEdgesNeedSendLog(t *testing.T) {
	// Sent 65535, 0..9 (11 packets); 65535 (the first, across the wrap) and 8, 9 (the tail)
	// are lost; 500 arrives though it was never sent.
	var sent []SentPacket
	var recv []RecvPacket
	for i := range 11 {
		seq := uint16(65535 + i)
		sent = append(sent, SentPacket{At: at(ms(20 * float64(i))), Seq: seq, Size: 100})
		if i != 0 && i < 9 {
			recv = append(recv, RecvPacket{Arrival: at(ms(20*float64(i) + 30)), Seq: seq, Timestamp: uint32(160 * i), Size: 100})
		}
	}
	recv = append(recv, RecvPacket{Arrival: at(ms(400)), Seq: 500, Timestamp: 99999, Size: 100})

	alone, err := AnalyzeStream(recv[:len(recv)-1], nil, StreamOptions{ClockRate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "alone: Expected", alone.Expected, 8) // 0..7: loss at both ends is invisible
	eq(t, "alone: Lost", alone.Lost, 0)
	eq(t, "alone: FirstSeq", alone.FirstSeq, int64(0))

	st, err := AnalyzeStream(recv, sent, StreamOptions{ClockRate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "FirstSeq", st.FirstSeq, int64(65535))
	eq(t, "LastSeq", st.LastSeq, int64(65545))
	eq(t, "Expected", st.Expected, 11)
	eq(t, "Received", st.Received, 8)
	eq(t, "Unexpected", st.Unexpected, 1)
	eq(t, "Lost", st.Lost, 3)
	near(t, "LossRate", st.LossRate, 3.0/11, 1e-15)
	eq(t, "Delay", st.Delay, DurationSummary{N: 8, Min: ms(30), Mean: ms(30), P50: ms(30), P95: ms(30), P99: ms(30), Max: ms(30)})
	eq(t, "Jitter", st.Jitter, time.Duration(0))
	// L F F F F F F F F L L: F→L 1 of 8, L→F 1 of 2.
	near(t, "Gilbert.P", st.Gilbert.P, 1.0/8, 1e-15)
	near(t, "Gilbert.R", st.Gilbert.R, 0.5, 1e-15)
}

func TestAnalyzeStreamJitterRFC3550(t *testing.T) {
	// 90 kHz video-like stream, one packet per 10 ms (900 ticks). Transit deviations
	// D = +1, -2, +1 ms = 90, 180, 90 ticks (absolute):
	//   J1 = 90/16 = 5.625; J2 = 5.625 + (180 - 5.625)/16 = 16.5234375;
	//   J3 = 16.5234375 + (90 - 16.5234375)/16 = 21.11572265625 ticks = 234.619140625 µs.
	arr := []float64{0, 11, 19, 30}
	var recv []RecvPacket
	for i, a := range arr {
		recv = append(recv, RecvPacket{Arrival: at(ms(a)), Seq: uint16(i), Timestamp: uint32(900 * i)})
	}
	st, err := AnalyzeStream(recv, nil, StreamOptions{ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Jitter", st.Jitter, time.Duration(234619)) // rounded to the ns
	// With a 0.5 ms deadline the playout instants are 0.5, 10.5, 20.5, 30.5 ms: only the
	// packet arriving at 11 ms is late.
	st, _ = AnalyzeStream(recv, nil, StreamOptions{ClockRate: 90000, Deadline: ms(0.5)})
	eq(t, "Late at 0.5 ms", st.Late, 1)
}

func TestAnalyzeStreamLateReferenceReordered(t *testing.T) {
	// The reference is the earliest arrival, not the lowest sequence number: 1 arrives at 0,
	// 0 arrives at 30 ms. Playout(0) = 0 + (0 - 20 ms) + 25 ms = 5 ms < 30 → late;
	// playout(2) = 0 + 20 + 25 = 45 ≥ 40 → on time.
	recv := []RecvPacket{
		{Arrival: at(0), Seq: 1, Timestamp: 160},
		{Arrival: at(ms(30)), Seq: 0, Timestamp: 0},
		{Arrival: at(ms(40)), Seq: 2, Timestamp: 320},
	}
	st, err := AnalyzeStream(recv, nil, StreamOptions{ClockRate: 8000, Deadline: ms(25)})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Late", st.Late, 1)
	eq(t, "Expected", st.Expected, 3)
	eq(t, "Gilbert.Lost", st.Gilbert.Lost, 1)
}

func TestAnalyzeStreamErrors(t *testing.T) {
	if _, err := AnalyzeStream(nil, nil, StreamOptions{}); err == nil {
		t.Error("no clock rate: no error")
	}
	_, err := AnalyzeStream([]RecvPacket{{Repaired: "arq"}}, nil, StreamOptions{ClockRate: 8000})
	if err == nil || !strings.Contains(err.Error(), `"arq"`) {
		t.Errorf("unknown repair: %v", err)
	}
	_, err = AnalyzeStream(nil, []SentPacket{{Kind: "padding"}}, StreamOptions{ClockRate: 8000})
	if err == nil || !strings.Contains(err.Error(), `"padding"`) {
		t.Errorf("unknown kind: %v", err)
	}
	st, err := AnalyzeStream(nil, nil, StreamOptions{ClockRate: 8000})
	if err != nil || st.Expected != 0 || st.LossRate != 0 {
		t.Errorf("empty: %+v, %v", st, err)
	}
	eq(t, "empty Gilbert", st.Gilbert, Gilbert{R: 1, BurstR: 1})
	sameKeys(t, st, jsonKeys(t, StreamStats{})...) // encodes (no NaN)
	// Everything sent, nothing received.
	st, _ = AnalyzeStream(nil, []SentPacket{{Seq: 1}, {Seq: 2}}, StreamOptions{ClockRate: 8000})
	eq(t, "all lost: Lost", st.Lost, 2)
	near(t, "all lost: LossRate", st.LossRate, 1, 0)
	near(t, "all lost: BurstR", st.Gilbert.BurstR, 1, 0)
}

func TestStreamJSONKeys(t *testing.T) {
	st, _ := AnalyzeStream(exampleRecv(), exampleSent(), StreamOptions{ClockRate: 8000, Deadline: ms(60)})
	sameKeys(t, st, "clock_rate", "deadline_ns", "send_log", "first_seq", "last_seq", "expected",
		"received", "duplicates", "unexpected", "received_bytes", "lost", "loss_rate", "repaired",
		"pre_repair_loss_rate", "late", "late_rate", "effective_lost", "effective_loss_rate",
		"gilbert", "jitter_ns", "delay", "overhead")
	sameKeys(t, st.Repaired, "nack", "rtx", "fec", "red", "total")
	sameKeys(t, st.Overhead, "media_bytes", "rtx_bytes", "fec_bytes", "red_bytes", "rtx_fraction",
		"fec_fraction", "red_fraction", "total_fraction")
	sameKeys(t, st.Gilbert, "packets", "lost", "loss_rate", "p", "r", "burst_r")
	sameKeys(t, RecvPacket{}, "arrival", "seq", "timestamp", "size", "repaired")
	sameKeys(t, SentPacket{}, "at", "seq", "size", "kind", "redundant_bytes")
	sameKeys(t, StreamOptions{}, "clock_rate", "deadline_ns")
}

// benchmarkLogs builds a 1e5-packet stream with 2% loss (1 in 50, half of them repaired by
// NACK 40 ms late), varying delay and sequence/timestamp wraps.
func benchmarkLogs(n int) ([]RecvPacket, []SentPacket) {
	recv := make([]RecvPacket, 0, n)
	sent := make([]SentPacket, 0, n+n/50)
	for i := range n {
		send := at(time.Duration(i) * 20 * time.Millisecond)
		seq, ts := uint16(60000+i), uint32(4294960000+160*i)
		sent = append(sent, SentPacket{At: send, Seq: seq, Size: 172})
		delay := ms(30 + float64(i*7919%13))
		switch {
		case i%100 == 17:
			continue // lost
		case i%100 == 67:
			sent = append(sent, SentPacket{At: send.Add(ms(60)), Seq: seq, Size: 174, Kind: "rtx"})
			recv = append(recv, RecvPacket{Arrival: send.Add(delay + ms(90)), Seq: seq, Timestamp: ts, Size: 172, Repaired: "nack"})
		default:
			recv = append(recv, RecvPacket{Arrival: send.Add(delay), Seq: seq, Timestamp: ts, Size: 172})
		}
	}
	return recv, sent
}

func BenchmarkStreamAnalyze(b *testing.B) {
	const n = 100000
	recv, sent := benchmarkLogs(n)
	opts := StreamOptions{ClockRate: 8000, Deadline: ms(80)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := AnalyzeStream(recv, sent, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/packet")
}

func TestBenchmarkLogs(t *testing.T) {
	// The benchmark's stream, checked so that the benchmark measures a meaningful analysis:
	// 1000 lost (i%100 == 17), 1000 repaired by NACK, arriving 90 ms after a 30-42 ms delay,
	// so 120-132 ms after sending: late against 80 ms of playout (the reference, packet 0,
	// has delay 30 ms: playout = send + 110 ms) — all 1000.
	recv, sent := benchmarkLogs(100000)
	st, err := AnalyzeStream(recv, sent, StreamOptions{ClockRate: 8000, Deadline: ms(80)})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Expected", st.Expected, 100000)
	eq(t, "Lost", st.Lost, 1000)
	eq(t, "Repaired.NACK", st.Repaired.NACK, 1000)
	eq(t, "Late", st.Late, 1000)
	eq(t, "Delay.Max", st.Delay.Max, ms(132))
	eq(t, "Overhead.RTXBytes", st.Overhead.RTXBytes, int64(1000*174))
}
