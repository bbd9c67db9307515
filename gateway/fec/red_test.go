package fec

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
)

const (
	opusPT = 111
	redPT  = 63
)

// opusFrame is a deterministic payload of n bytes for frame i.
func opusFrame(i, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*31 + k*7)
	}
	return b
}

// opusStream is n packets of 20 ms Opus frames starting at sequence number seq0.
func opusStream(n int, seq0 uint16, ts0 uint32, size func(i int) int) []*rtp.Packet {
	out := make([]*rtp.Packet, n)
	for i := range out {
		out[i] = &rtp.Packet{
			Header: rtp.Header{
				Version: 2, PayloadType: opusPT, SequenceNumber: seq0 + uint16(i), Timestamp: ts0 + uint32(i*960),
				SSRC: 0xdecafbad, Marker: i == 0,
			},
			Payload: opusFrame(i, size(i)),
		}
	}
	return out
}

// TestREDWireFormat checks the bytes of RFC 2198 section 3 as libwebrtc writes them: the
// redundant blocks' 4-byte headers oldest first (F=1, block PT, 14-bit timestamp offset,
// 10-bit length), the primary's 1-byte header, then the data in the same order.
func TestREDWireFormat(t *testing.T) {
	enc := NewREDEncoder(redPT, 2)
	pkts := opusStream(3, 100, 48000, func(i int) int { return 3 + i })
	var got *rtp.Packet
	for _, p := range pkts {
		got = enc.Encode(p)
	}
	want := []byte{
		0x80 | opusPT, 1920 >> 6, (1920 << 2 & 0xff) | 0, 3, // frame 0: offset 1920, length 3
		0x80 | opusPT, 960 >> 6, (960 << 2 & 0xff) | 0, 4, // frame 1: offset 960, length 4
		opusPT, // primary
	}
	want = append(want, pkts[0].Payload...)
	want = append(want, pkts[1].Payload...)
	want = append(want, pkts[2].Payload...)
	if !bytes.Equal(got.Payload, want) {
		t.Fatalf("RED payload\n got % x\nwant % x", got.Payload, want)
	}
	if got.PayloadType != redPT || got.SequenceNumber != 102 || got.Timestamp != 48000+1920 || got.SSRC != 0xdecafbad {
		t.Fatalf("RED header %+v", got.Header)
	}
	// The encoder's input is not changed.
	if pkts[2].PayloadType != opusPT || !bytes.Equal(pkts[2].Payload, opusFrame(2, 5)) {
		t.Fatal("Encode changed its input")
	}

	// The first packet of a stream has nothing to repeat; distance 0 never repeats.
	first := NewREDEncoder(redPT, 1).Encode(pkts[0])
	if !bytes.Equal(first.Payload, append([]byte{opusPT}, pkts[0].Payload...)) {
		t.Fatalf("first packet % x", first.Payload)
	}
	zero := NewREDEncoder(redPT, 0)
	for _, p := range pkts {
		if got := zero.Encode(p); !bytes.Equal(got.Payload, append([]byte{opusPT}, p.Payload...)) {
			t.Fatalf("distance 0: % x", got.Payload)
		}
	}
}

// TestREDEncoderSkips: a block whose length or offset does not fit, or a packet the encoder
// was not given, ends the redundancy (the blocks before it would be misnumbered).
func TestREDEncoderSkips(t *testing.T) {
	dec := func(p *rtp.Packet) int {
		var blocks [MaxREDDistance]redBlock
		n, _, _, err := parseRED(p.Payload, &blocks)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Frame 1 is 1024 bytes: packet 2 repeats nothing (frame 1 does not fit, frame 0 would
	// be numbered wrongly), packet 3 repeats frame 2 only.
	enc := NewREDEncoder(redPT, 2)
	pkts := opusStream(4, 10, 0, func(i int) int {
		if i == 1 {
			return 1024
		}
		return 50
	})
	var n []int
	for _, p := range pkts {
		n = append(n, dec(enc.Encode(p)))
	}
	if want := []int{0, 1, 0, 1}; !equalInts(n, want) {
		t.Errorf("blocks per packet %v, want %v", n, want)
	}
	// A gap in what the encoder is given.
	enc = NewREDEncoder(redPT, 2)
	pkts = opusStream(5, 10, 0, func(int) int { return 20 })
	n = n[:0]
	for i, p := range pkts {
		if i == 2 {
			continue
		}
		n = append(n, dec(enc.Encode(p)))
	}
	if want := []int{0, 1, 0, 1}; !equalInts(n, want) {
		t.Errorf("blocks per packet with a gap %v, want %v", n, want)
	}
	// A retransmission (an older sequence number) is framed too, without displacing the
	// newer payloads the next packets repeat.
	enc = NewREDEncoder(redPT, 2)
	pkts = opusStream(6, 10, 0, func(int) int { return 20 })
	for _, p := range pkts[:5] {
		enc.Encode(p)
	}
	if k := dec(enc.Encode(pkts[4])); k != 1 { // the newest again: 13 is there (14 took 12's place)
		t.Errorf("retransmission of 14: %d blocks", k)
	}
	if k := dec(enc.Encode(pkts[1])); k != 0 { // 10 is gone from the history
		t.Errorf("retransmission of 11: %d blocks", k)
	}
	if k := dec(enc.Encode(pkts[5])); k != 2 {
		t.Errorf("after a retransmission: %d blocks, want 2", k)
	}
	// Offsets of 2^14 or more (a long silence) do not fit.
	enc = NewREDEncoder(redPT, 1)
	a := &rtp.Packet{Header: rtp.Header{PayloadType: opusPT, SequenceNumber: 1, Timestamp: 0}, Payload: []byte{1}}
	b := &rtp.Packet{Header: rtp.Header{PayloadType: opusPT, SequenceNumber: 2, Timestamp: 1 << 14}, Payload: []byte{2}}
	enc.Encode(a)
	if k := dec(enc.Encode(b)); k != 0 {
		t.Errorf("offset 2^14: %d blocks", k)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameMedia reports whether got is the original packet want: header fields that a
// recovered RED block carries, and the payload byte for byte.
func sameMedia(got, want *rtp.Packet) bool {
	return got.PayloadType == want.PayloadType && got.SequenceNumber == want.SequenceNumber &&
		got.Timestamp == want.Timestamp && got.SSRC == want.SSRC && bytes.Equal(got.Payload, want.Payload)
}

// redRoundTrip sends n packets through encoder, a Bernoulli loss of p, and decoder; it
// checks every packet out against the original and returns how many distinct originals
// came out.
func redRoundTrip(t testing.TB, n, distance int, p float64, seed uint64, seq0 uint16) (delivered int, dec *REDDecoder) {
	rng := rand.New(rand.NewPCG(seed, 1))
	orig := opusStream(n, seq0, 12345, func(i int) int { return 20 + rng.IntN(200) })
	bySeq := map[uint16]*rtp.Packet{}
	for _, o := range orig {
		bySeq[o.SequenceNumber] = o
	}
	enc, dec := NewREDEncoder(redPT, distance), NewREDDecoder(redPT)
	got := map[uint16]bool{}
	for _, o := range orig {
		red := enc.Encode(o)
		if rng.Float64() < p {
			continue
		}
		// Through the wire: marshal and parse again.
		raw, err := red.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var in rtp.Packet
		if err := in.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		out, err := dec.Decode(&in)
		if err != nil {
			t.Fatal(err)
		}
		last := -1
		for k, q := range out {
			want := bySeq[q.SequenceNumber]
			if want == nil || !sameMedia(q, want) {
				t.Fatalf("seq %d: decoded packet differs from the original", q.SequenceNumber)
			}
			if k > 0 && int16(q.SequenceNumber-uint16(last)) <= 0 {
				t.Fatalf("packets out of order: %d after %d", q.SequenceNumber, last)
			}
			if k < len(out)-1 && got[q.SequenceNumber] {
				t.Fatalf("seq %d recovered twice", q.SequenceNumber)
			}
			last = int(q.SequenceNumber)
			got[q.SequenceNumber] = true
		}
		if prim := out[len(out)-1]; prim.SequenceNumber != o.SequenceNumber || prim.Marker != o.Marker {
			t.Fatalf("primary is not last or lost its header: %+v", prim.Header)
		}
	}
	return len(got), dec
}

// TestREDRoundTrip: under random loss, what comes out is exactly the originals, and a packet
// is missing only when it and the distance packets after it were all lost.
func TestREDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		distance int
		p        float64
		seq0     uint16
	}{
		{"d1 10%", 1, 0.10, 1000},
		{"d2 20%", 2, 0.20, 1000},
		{"d3 30% wrap", 3, 0.30, 65500},
		{"d0 10%", 0, 0.10, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 5000
			delivered, dec := redRoundTrip(t, n, tc.distance, tc.p, 42, tc.seq0)
			st := dec.Stats()
			if st.Malformed != 0 || st.Unused != 0 {
				t.Errorf("stats %+v", st)
			}
			if got := int(st.Primaries + st.Recovered); got != delivered {
				t.Errorf("primaries %d + recovered %d != %d delivered", st.Primaries, st.Recovered, delivered)
			}
			residual := 1 - float64(delivered)/n
			want := REDResidualLoss(tc.p, tc.distance)
			sigma := math.Sqrt(want * (1 - want) / n)
			if math.Abs(residual-want) > 4*sigma+1e-3 {
				t.Errorf("residual loss %.4f, want %.4f", residual, want)
			}
			t.Logf("loss %.2f distance %d: residual %.4f (theory %.4f), %+v", tc.p, tc.distance, residual, want, st)
		})
	}
}

// TestREDDecoderDuplicatesAndOrder: a redundant block of a packet already seen is not
// returned again, whether the packet came plain, as a primary or recovered; a late primary
// is still returned.
func TestREDDecoderDuplicatesAndOrder(t *testing.T) {
	enc, dec := NewREDEncoder(redPT, 2), NewREDDecoder(redPT)
	orig := opusStream(6, 500, 0, func(int) int { return 10 })
	var red []*rtp.Packet
	for _, o := range orig {
		red = append(red, enc.Encode(o))
	}
	seqs := func(out []*rtp.Packet) []int {
		var s []int
		for _, p := range out {
			s = append(s, int(p.SequenceNumber))
		}
		return s
	}
	decode := func(p *rtp.Packet) []int {
		out, err := dec.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		return seqs(out)
	}
	if got := decode(red[0]); !equalInts(got, []int{500}) {
		t.Errorf("packet 0: %v", got)
	}
	// 1 and 2 lost: 3 brings both back, before itself.
	if got := decode(red[3]); !equalInts(got, []int{501, 502, 503}) {
		t.Errorf("packet 3: %v", got)
	}
	// 2 arrives late: its primary comes out (the bridge drops duplicates), nothing else.
	if got := decode(red[2]); !equalInts(got, []int{502}) {
		t.Errorf("late packet 2: %v", got)
	}
	if got := decode(red[4]); !equalInts(got, []int{504}) {
		t.Errorf("packet 4: %v", got)
	}
	// A plain Opus packet passes through unchanged and counts as seen.
	plain := orig[5]
	out, err := dec.Decode(plain)
	if err != nil || len(out) != 1 || out[0] != plain {
		t.Fatalf("plain packet: %v %v", out, err)
	}
	st := dec.Stats()
	want := REDStats{Primaries: 4, Passthrough: 1, Redundant: 0 + 2 + 2 + 2, Recovered: 2, Duplicate: 4}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

// TestREDDecoderInconsistent: a block whose timestamp contradicts its numbering (a sender
// that skipped a block) is not returned.
func TestREDDecoderInconsistent(t *testing.T) {
	dec := NewREDDecoder(redPT)
	// Packets 10 (ts 0) and 12 (ts 1920) seen; packet 13 claims block k=1 (seq 12) and k=2
	// (seq 11) with ts 0: seq 11 would have packet 10's timestamp.
	for _, p := range []*rtp.Packet{
		{Header: rtp.Header{PayloadType: opusPT, SequenceNumber: 10, Timestamp: 0}, Payload: []byte{1}},
		{Header: rtp.Header{PayloadType: opusPT, SequenceNumber: 12, Timestamp: 1920}, Payload: []byte{3}},
	} {
		if _, err := dec.Decode(p); err != nil {
			t.Fatal(err)
		}
	}
	payload := []byte{
		0x80 | opusPT, 2880 >> 6, 2880 << 2 & 0xff, 1,
		0x80 | opusPT, 960 >> 6, 960 << 2 & 0xff, 1,
		opusPT, 0xaa, 0xbb, 0xcc,
	}
	out, err := dec.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: redPT, SequenceNumber: 13, Timestamp: 2880}, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].SequenceNumber != 13 || !bytes.Equal(out[0].Payload, []byte{0xcc}) {
		t.Fatalf("got %d packets, first %+v", len(out), out[0])
	}
	if st := dec.Stats(); st.Unused != 1 || st.Duplicate != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestREDDecoderMalformed: truncated or inconsistent payloads are errors, never panics.
func TestREDDecoderMalformed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"only redundant headers", []byte{0x80 | opusPT, 0, 4, 1}},
		{"short header", []byte{0x80 | opusPT, 0, 4}},
		{"block longer than payload", []byte{0x80 | opusPT, 0, 4 | 3, 0xff, opusPT, 1, 2, 3}},
		{"too many blocks", bytes.Repeat([]byte{0x80 | opusPT, 0, 4, 0}, MaxREDDistance+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := NewREDDecoder(redPT)
			out, err := dec.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: redPT}, Payload: tc.payload})
			if err == nil || out != nil {
				t.Fatalf("got %v, %v", out, err)
			}
			if !errors.Is(err, ErrREDTruncated) && !errors.Is(err, ErrREDTooManyBlock) {
				t.Errorf("error %v", err)
			}
			if dec.Stats().Malformed != 1 {
				t.Errorf("stats %+v", dec.Stats())
			}
		})
	}
	// An empty primary is valid.
	out, err := NewREDDecoder(redPT).Decode(&rtp.Packet{Header: rtp.Header{PayloadType: redPT}, Payload: []byte{opusPT}})
	if err != nil || len(out) != 1 || len(out[0].Payload) != 0 {
		t.Fatalf("empty primary: %v %v", out, err)
	}
}

// TestREDDecoderResync: a sender that restarts its sequence numbers far behind gets its
// redundancy used again after a short run.
func TestREDDecoderResync(t *testing.T) {
	enc, dec := NewREDEncoder(redPT, 1), NewREDDecoder(redPT)
	for _, o := range opusStream(100, 40000, 0, func(int) int { return 5 }) {
		if _, err := dec.Decode(enc.Encode(o)); err != nil {
			t.Fatal(err)
		}
	}
	enc = NewREDEncoder(redPT, 1)
	restart := opusStream(40, 30000, 0, func(int) int { return 5 }) // 10099 behind
	var recovered int
	for i, o := range restart {
		red := enc.Encode(o)
		if i%4 == 3 && i > 20 { // lose some after the resync
			continue
		}
		out, err := dec.Decode(red)
		if err != nil {
			t.Fatal(err)
		}
		recovered += len(out) - 1
	}
	if recovered == 0 {
		t.Errorf("nothing recovered after the restart: %+v", dec.Stats())
	}
}

// TestREDResidualLossMonteCarlo compares REDResidualLoss with the encoder and decoder under
// Bernoulli loss (the round trip above, more seeds).
func TestREDResidualLossMonteCarlo(t *testing.T) {
	for _, d := range []int{1, 2} {
		for _, p := range []float64{0.05, 0.2, 0.4} {
			const n = 20000
			delivered, _ := redRoundTrip(t, n, d, p, uint64(d*1000)+uint64(p*100), 0)
			residual := 1 - float64(delivered)/n
			want := REDResidualLoss(p, d)
			sigma := math.Sqrt(want * (1 - want) / n)
			if math.Abs(residual-want) > 4*sigma+5e-4 {
				t.Errorf("d=%d p=%.2f: simulated %.5f, formula %.5f", d, p, residual, want)
			}
		}
	}
}

func FuzzREDDecode(f *testing.F) {
	enc := NewREDEncoder(redPT, 2)
	for _, o := range opusStream(3, 1, 0, func(i int) int { return i * 3 }) {
		f.Add(enc.Encode(o).Payload, uint16(3))
	}
	f.Add([]byte{0x80 | opusPT, 0xff, 0xff, 0xff, opusPT}, uint16(0))
	f.Add([]byte{}, uint16(65535))
	f.Fuzz(func(t *testing.T, payload []byte, seq uint16) {
		dec := NewREDDecoder(redPT)
		for i := range 2 { // a second time: all duplicates
			out, err := dec.Decode(&rtp.Packet{Header: rtp.Header{PayloadType: redPT, SequenceNumber: seq, Timestamp: 1 << 20}, Payload: payload})
			if err != nil {
				if out != nil {
					t.Fatal("packets with an error")
				}
				return
			}
			if len(out) == 0 || out[len(out)-1].SequenceNumber != seq {
				t.Fatal("no primary")
			}
			total := 0
			for _, p := range out {
				total += len(p.Payload)
			}
			if total > len(payload) {
				t.Fatalf("%d payload bytes out of %d", total, len(payload))
			}
			if i == 1 && len(out) != 1 {
				t.Fatalf("duplicates recovered twice: %d packets", len(out))
			}
		}
	})
}

func BenchmarkREDDecode(b *testing.B) {
	enc := NewREDEncoder(redPT, 2)
	orig := opusStream(1024, 0, 0, func(int) int { return 120 })
	red := make([]*rtp.Packet, len(orig))
	for i, o := range orig {
		red[i] = enc.Encode(o)
	}
	dec := NewREDDecoder(redPT)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := *red[i%len(red)]
		// Keep the sequence moving so that the redundancy stays duplicate, as in a call.
		p.SequenceNumber = uint16(i)
		if _, err := dec.Decode(&p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkREDEncode(b *testing.B) {
	enc := NewREDEncoder(redPT, 2)
	orig := opusStream(1024, 0, 0, func(int) int { return 120 })
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := *orig[i%len(orig)]
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*960)
		enc.Encode(&p)
	}
}
