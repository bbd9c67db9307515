package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func pkt(ssrc uint32, seq uint16, ts uint32, at time.Time) *Packet {
	return &Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}, Payload: make([]byte, 160), Arrival: at}
}

// TestRewriterTrackChange: a new source (a new client track after renegotiation) continues the
// output; reordering inside a source keeps its meaning; the old source's stragglers are dropped.
func TestRewriterTrackChange(t *testing.T) {
	r := rewriter{ssrc: 42}
	t0 := time.Unix(1000, 0)
	var out []rtp.Header
	feed := func(p *Packet) error {
		err := r.rewrite(p, 8000)
		if err == nil {
			out = append(out, p.Header)
		}
		return err
	}
	for i := range 5 {
		must(t, feed(pkt(1, uint16(100+i), uint32(8000+160*i), t0.Add(time.Duration(i)*20*time.Millisecond))))
	}
	// Reordered pair: 106 before 105.
	must(t, feed(pkt(1, 106, 8000+160*6, t0.Add(120*time.Millisecond))))
	must(t, feed(pkt(1, 105, 8000+160*5, t0.Add(121*time.Millisecond))))
	// New track 100 ms later with its own numbering.
	at := t0.Add(220 * time.Millisecond)
	must(t, feed(pkt(2, 9, 777, at)))
	must(t, feed(pkt(2, 10, 777+160, at.Add(20*time.Millisecond))))
	if err := feed(pkt(1, 107, 8000+160*7, at.Add(30*time.Millisecond))); err != errStaleSource {
		t.Errorf("straggler of the old track: %v, want errStaleSource", err)
	}
	wantSeq := []uint16{100, 101, 102, 103, 104, 106, 105, 107, 108}
	for i, h := range out {
		if h.SSRC != 42 || h.SequenceNumber != wantSeq[i] {
			t.Errorf("packet %d: ssrc %d seq %d, want 42 %d", i, h.SSRC, h.SequenceNumber, wantSeq[i])
		}
	}
	// The new track's first packet: 100 ms of wall time after packet 106 (ts 8960).
	if got, want := out[7].Timestamp, uint32(8000+160*6+800); got != want {
		t.Errorf("new track starts at ts %d, want %d", got, want)
	}
	if out[8].Timestamp-out[7].Timestamp != 160 {
		t.Errorf("new track's timestamps do not keep their spacing")
	}
	// An injected packet takes the next number; the source's next packet follows it.
	var h rtp.Header
	r.inject(&h, at.Add(35*time.Millisecond), 8000)
	must(t, feed(pkt(2, 11, 777+320, at.Add(40*time.Millisecond))))
	if h.SequenceNumber != 109 || out[9].SequenceNumber != 110 {
		t.Errorf("injected %d then source %d, want 109 then 110", h.SequenceNumber, out[9].SequenceNumber)
	}
}

// TestRewriterEventFirst: a DTMF event generated before the first media packet starts the
// output; the first source then continues after it, in sequence and in time, so later events
// are newer than it (found with Asterisk, which dropped every event of the client after such a
// digit: the output's timestamps fell from the event's random one back to the client's).
func TestRewriterEventFirst(t *testing.T) {
	r := rewriter{ssrc: 42}
	t0 := time.Unix(1000, 0)
	ev := rtp.Header{Version: 2, SequenceNumber: 60000, Timestamp: 3_000_000_000}
	r.inject(&ev, t0, 8000)
	// The event's further packets (same timestamp) take the next numbers.
	for i := range 3 {
		h := rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: ev.Timestamp}
		r.inject(&h, t0.Add(time.Duration(i+1)*50*time.Millisecond), 8000)
		if h.SequenceNumber != 60001+uint16(i) || h.SSRC != 42 {
			t.Fatalf("event packet %d: seq %d ssrc %d, want %d 42", i+1, h.SequenceNumber, h.SSRC, 60001+i)
		}
	}
	// The client's first audio packet, 200 ms after the event started, with its own numbering.
	p := pkt(7, 10, 160, t0.Add(200*time.Millisecond))
	must(t, r.rewrite(p, 8000))
	if p.Header.SequenceNumber != 60004 {
		t.Errorf("first media packet: seq %d, want 60004 (after the event's)", p.Header.SequenceNumber)
	}
	if got, want := p.Header.Timestamp, ev.Timestamp+1600; got != want {
		t.Errorf("first media packet: ts %d, want %d (the event's + 200 ms)", got, want)
	}
	// A later in-band event of the client, 300 ms of audio on: newer than the generated one.
	q := pkt(7, 25, 160+2400, t0.Add(500*time.Millisecond))
	must(t, r.rewrite(q, 0))
	if d := int32(q.Header.Timestamp - ev.Timestamp); d <= 0 {
		t.Errorf("the client's later event is at ts %d, %d before the generated one's", q.Header.Timestamp, -d)
	}
}

// TestReceiveStats: loss, late, duplicates and sequence wrap-around per RFC 3550.
func TestReceiveStats(t *testing.T) {
	var s receiveStats
	t0 := time.Unix(0, 0)
	seqs := []uint16{65530, 65531, 65533, 65534, 65535, 0, 1, 65532, 1, 4, 5}
	for i, q := range seqs {
		s.update(pkt(7, q, uint32(q)*160, t0.Add(time.Duration(i)*20*time.Millisecond)), 8000)
	}
	// Expected 65530..5 = 12; got 10 unique (65532 late, 1 twice); 2 and 3 lost.
	if s.lost() != 2 || s.late != 1 || s.duplicates != 1 || s.expected() != 12 {
		t.Errorf("lost %d late %d dup %d expected %d, want 2 1 1 12", s.lost(), s.late, s.duplicates, s.expected())
	}
	rb, ok := s.reportBlock(t0)
	if !ok || rb.TotalLost != 2 || rb.LastSequenceNumber != 1<<16+5 || rb.FractionLost != 2*256/12 {
		t.Errorf("report block %+v", rb)
	}
	// A new SSRC keeps the totals.
	s.update(pkt(8, 10, 0, t0), 8000)
	s.update(pkt(8, 12, 0, t0), 8000)
	if s.lost() != 3 || s.sources != 2 {
		t.Errorf("after a new source: lost %d sources %d, want 3 and 2", s.lost(), s.sources)
	}
}

// TestDTMFPlanAndDetector: a generated event read back by the detector gives one start and one
// end report, whatever the repeats.
func TestDTMFPlanAndDetector(t *testing.T) {
	plan, err := newDTMFPlan('*', 120*time.Millisecond, 50*time.Millisecond, 8000)
	must(t, err)
	var d dtmfDetector
	var reports []DTMF
	var buf [4]byte
	n := 0
	for seq := uint16(0); ; seq++ {
		payload, marker, done := plan.next(buf[:])
		if done {
			break
		}
		if marker != (n == 0) {
			t.Errorf("packet %d marker %v", n, marker)
		}
		n++
		d.observe(&Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: 1234}, Payload: payload}, 8000, func(e DTMF) { reports = append(reports, e) })
	}
	if n != 2+3 { // 400 and 800 ticks, then 960 three times
		t.Errorf("%d packets, want 5", n)
	}
	if len(reports) != 2 || reports[0].Digit != '*' || reports[0].End || !reports[1].End || reports[1].Duration != 120*time.Millisecond {
		t.Errorf("reports %+v", reports)
	}
	if _, err := newDTMFPlan('x', time.Second, time.Second, 8000); err == nil {
		t.Error("digit x accepted")
	}
}
