package fec

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/flexfec"
	"github.com/pion/rtp"
)

const (
	mediaSSRC = 0x11223344
	fecSSRC   = 0x55667788
	vp8PT     = 96
	fecPT     = 49
)

// videoPacket is media packet i of a test stream: sizes, markers, CSRCs, header extensions
// and padding vary, so that every recovered header field is exercised.
func videoPacket(rng *rand.Rand, seq uint16, i int) *rtp.Packet {
	p := &rtp.Packet{Header: rtp.Header{
		Version: 2, PayloadType: vp8PT, SequenceNumber: seq, Timestamp: 90000 + uint32(i/3)*3000,
		SSRC: mediaSSRC, Marker: i%3 == 2,
	}}
	if rng.IntN(4) == 0 {
		p.CSRC = []uint32{rng.Uint32(), rng.Uint32()}[:1+rng.IntN(2)]
	}
	if rng.IntN(2) == 0 {
		if err := p.SetExtension(uint8(1+rng.IntN(3)), []byte{byte(i), byte(i >> 8), 7}[:1+rng.IntN(3)]); err != nil {
			panic(err)
		}
	}
	if rng.IntN(8) == 0 {
		p.Padding, p.Header.PaddingSize = true, byte(1+rng.IntN(20))
	}
	p.Payload = make([]byte, 1+rng.IntN(1100))
	for k := range p.Payload {
		p.Payload[k] = byte(rng.Uint32())
	}
	return p
}

func marshal(t testing.TB, p *rtp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wire marshals and parses p again, as a receiver gets it.
func wire(t testing.TB, p *rtp.Packet) *rtp.Packet {
	t.Helper()
	var out rtp.Packet
	if err := out.Unmarshal(marshal(t, p)); err != nil {
		t.Fatal(err)
	}
	return &out
}

// pionBatches encodes batches of numMedia packets with pion's FlexFEC-03 encoder, driven as
// its interceptor drives it, and returns each batch's media and FEC packets.
func pionBatches(t testing.TB, rng *rand.Rand, batches, numMedia, numFEC int, seq0 uint16) (media, fecs [][]*rtp.Packet) {
	enc := flexfec.NewFlexEncoder03(fecPT, fecSSRC)
	seq := seq0
	for b := range batches {
		var batch []rtp.Packet
		var ms []*rtp.Packet
		for i := range numMedia {
			p := videoPacket(rng, seq, b*numMedia+i)
			seq++
			ms = append(ms, p)
			batch = append(batch, *p)
		}
		var fs []*rtp.Packet
		for _, f := range enc.EncodeFec(batch, uint32(numFEC)) {
			fs = append(fs, f.Clone())
		}
		if len(fs) != min(numFEC, numMedia) {
			t.Fatalf("pion made %d FEC packets, want %d", len(fs), min(numFEC, numMedia))
		}
		media, fecs = append(media, ms), append(fecs, fs)
	}
	return media, fecs
}

// interleavedRecoverable is what a perfect decoder of pion's code rebuilds in one batch: a
// lost media packet whose group (i mod numFEC) lost nothing else and kept its FEC packet.
func interleavedRecoverable(lostMedia []bool, lostFEC []bool) []int {
	k := len(lostFEC)
	var out []int
	for i, lost := range lostMedia {
		if !lost || lostFEC[i%k] {
			continue
		}
		alone := true
		for j := i % k; j < len(lostMedia); j += k {
			if j != i && lostMedia[j] {
				alone = false
			}
		}
		if alone {
			out = append(out, i)
		}
	}
	return out
}

// runFlexFEC pushes the batches through dec with each packet lost with probability p
// (media first, then the batch's FEC packets) and checks that exactly the recoverable
// packets come back, byte for byte. It returns the media lost and recovered.
func runFlexFEC(t testing.TB, dec *FlexFECDecoder, rng *rand.Rand, media, fecs [][]*rtp.Packet, p float64) (lost, recovered int) {
	for b := range media {
		lostMedia := make([]bool, len(media[b]))
		lostFEC := make([]bool, len(fecs[b]))
		var got []*rtp.Packet
		for i, m := range media[b] {
			if lostMedia[i] = rng.Float64() < p; lostMedia[i] {
				lost++
				continue
			}
			got = append(got, dec.Push(wire(t, m))...)
		}
		for j, f := range fecs[b] {
			if lostFEC[j] = rng.Float64() < p; lostFEC[j] {
				continue
			}
			got = append(got, dec.Push(wire(t, f))...)
		}
		want := interleavedRecoverable(lostMedia, lostFEC)
		var gotIdx []int
		for _, g := range got {
			i := int(g.SequenceNumber - media[b][0].SequenceNumber)
			if i < 0 || i >= len(media[b]) || !lostMedia[i] {
				t.Fatalf("batch %d: recovered seq %d that was not lost", b, g.SequenceNumber)
			}
			if !bytes.Equal(marshal(t, g), marshal(t, media[b][i])) {
				t.Fatalf("batch %d: recovered seq %d differs from the original\n got %v\nwant %v", b, g.SequenceNumber, g, media[b][i])
			}
			gotIdx = append(gotIdx, i)
		}
		slices.Sort(gotIdx)
		if !slices.Equal(gotIdx, want) {
			t.Fatalf("batch %d: recovered %v, want %v (lost media %v, lost FEC %v)", b, gotIdx, want, lostMedia, lostFEC)
		}
		recovered += len(got)
	}
	return lost, recovered
}

// TestFlexFECPionEncoder: pion's FlexFEC-03 encoder's output under random loss, with every
// mask length (15, 46 and 109 packets), and across sequence number wraparound.
func TestFlexFECPionEncoder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, k       int
		p          float64
		seq0       uint16
		batches    int
		wantLonger bool
	}{
		{"pion default 5+2", 5, 2, 0.1, 100, 400, false},
		{"10+3 20%", 10, 3, 0.2, 1000, 300, false},
		{"mask 2: 40+2", 40, 2, 0.03, 30000, 60, true},
		{"mask 3: 100+4", 100, 4, 0.02, 65000, 30, true},
		{"repetition 3+3", 3, 3, 0.3, 65530, 300, false},
		{"wraparound 5+2", 5, 2, 0.15, 65535 - 37, 50, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.n)))
			media, fecs := pionBatches(t, rng, tc.batches, tc.n, tc.k, tc.seq0)
			if tc.wantLonger && len(fecs[0][0].Payload) > 0 && fecs[0][0].Payload[18]&0x80 != 0 {
				t.Fatal("expected a mask longer than 15 packets")
			}
			dec := NewFlexFECDecoder(mediaSSRC, fecSSRC, WithFlexFECPayloadType(fecPT))
			lost, recovered := runFlexFEC(t, dec, rng, media, fecs, tc.p)
			st := dec.Stats()
			if st.Recovered != uint64(recovered) || st.Malformed != 0 || st.Duplicates != 0 {
				t.Errorf("stats %+v, recovered %d", st, recovered)
			}
			if recovered == 0 {
				t.Error("nothing recovered")
			}
			t.Logf("lost %d, recovered %d, %+v", lost, recovered, st)
		})
	}
}

// TestFlexFECInterceptor drives pion's FEC interceptor (what the gateway sends with) with a
// mock writer and repairs its output.
func TestFlexFECInterceptor(t *testing.T) {
	factory, err := flexfec.NewFecInterceptor(flexfec.NumMediaPackets(6), flexfec.NumFECPackets(2))
	if err != nil {
		t.Fatal(err)
	}
	icpt, err := factory.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	var sent []*rtp.Packet
	w := icpt.BindLocalStream(&interceptor.StreamInfo{
		SSRC: mediaSSRC, SSRCForwardErrorCorrection: fecSSRC, PayloadTypeForwardErrorCorrection: fecPT,
	}, interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
		p := (&rtp.Packet{Header: *h, Payload: payload}).Clone()
		sent = append(sent, p)
		return p.MarshalSize(), nil
	}))
	rng := rand.New(rand.NewPCG(3, 4))
	orig := map[uint16]*rtp.Packet{}
	for i := range 600 {
		p := videoPacket(rng, uint16(65000+i), i)
		orig[p.SequenceNumber] = p
		if _, err := w.Write(&p.Header, p.Payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
	var lost, fecCount int
	delivered := map[uint16]bool{}
	for _, p := range sent {
		if p.SSRC == fecSSRC {
			fecCount++
		}
		if rng.IntN(12) == 0 {
			if p.SSRC == mediaSSRC {
				lost++
			}
			continue
		}
		if p.SSRC == mediaSSRC {
			delivered[p.SequenceNumber] = true
		}
		for _, r := range dec.Push(wire(t, p)) {
			if delivered[r.SequenceNumber] {
				t.Fatalf("seq %d recovered but was received", r.SequenceNumber)
			}
			if !bytes.Equal(marshal(t, r), marshal(t, orig[r.SequenceNumber])) {
				t.Fatalf("seq %d differs from the original", r.SequenceNumber)
			}
			delivered[r.SequenceNumber] = true
		}
	}
	if fecCount != 200 {
		t.Errorf("%d FEC packets, want 200", fecCount)
	}
	st := dec.Stats()
	if st.Recovered == 0 || st.FECPackets == 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("lost %d media, delivered %d of 600, %+v", lost, len(delivered), st)
}

// encode03 builds a FlexFEC-03 payload protecting media[i] for i in idx (offsets from base,
// up to 108) the way the draft describes, with the shortest mask: the layout libwebrtc sends.
func encode03(t testing.TB, base uint16, media map[uint16]*rtp.Packet, idx []int) []byte {
	var rec [8]byte
	var body []byte
	for _, i := range idx {
		b := marshal(t, media[base+uint16(i)])
		rec[0] ^= b[0] & 0x3f
		rec[1] ^= b[1]
		l := len(b) - 12
		rec[2] ^= byte(l >> 8)
		rec[3] ^= byte(l)
		for k := 4; k < 8; k++ {
			rec[k] ^= b[k]
		}
		if len(body) < l {
			body = append(body, make([]byte, l-len(body))...)
		}
		for k := range l {
			body[k] ^= b[12+k]
		}
	}
	last := slices.Max(idx)
	var mask []byte
	switch {
	case last < 15:
		mask = make([]byte, 2)
		mask[0] = 0x80
	case last < 46:
		mask = make([]byte, 6)
		mask[2] = 0x80
	default:
		mask = make([]byte, 14)
		mask[6] = 0x80
	}
	for _, i := range idx {
		// Bit positions skip the K bits: 1..15 in the first 16, 17..47 in the next 32, 49..
		pos := i + 1
		if i >= 15 {
			pos = i + 2
		}
		if i >= 46 {
			pos = i + 3
		}
		mask[pos/8] |= 0x80 >> (pos % 8)
	}
	out := append(rec[:], 1, 0, 0, 0)
	out = binary.BigEndian.AppendUint32(out, mediaSSRC)
	out = binary.BigEndian.AppendUint16(out, base)
	out = append(out, mask...)
	return append(out, body...)
}

func fecPacket(seq uint16, payload []byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: fecPT, SequenceNumber: seq, Timestamp: 1, SSRC: fecSSRC}, Payload: payload}
}

// TestFlexFECChromeLayout: masks as libwebrtc builds them (not interleaved, overlapping,
// each of the three lengths), and repeated recovery: a rebuilt packet completes another FEC
// packet's set.
func TestFlexFECChromeLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var base uint16 = 65500 // the masks cross the wraparound
	media := map[uint16]*rtp.Packet{}
	for i := range 109 {
		media[base+uint16(i)] = videoPacket(rng, base+uint16(i), i)
	}
	t.Run("cascade", func(t *testing.T) {
		dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
		// A protects 0..3, B protects 3..5 and 60, C protects 20 and 100. Lose 2, 3, 20.
		lostSet := map[int]bool{2: true, 3: true, 20: true}
		for i := range 109 {
			if !lostSet[i] {
				if got := dec.Push(wire(t, media[base+uint16(i)])); got != nil {
					t.Fatalf("recovered without FEC: %v", got)
				}
			}
		}
		a := encode03(t, base, media, []int{0, 1, 2, 3})
		b := encode03(t, base, media, []int{3, 4, 5, 60})
		c := encode03(t, base, media, []int{20, 100})
		if got := dec.Push(fecPacket(1, a)); got != nil {
			t.Fatalf("A alone recovered %v", got)
		}
		got := dec.Push(fecPacket(2, b)) // rebuilds 3, which completes A: 2
		if len(got) != 2 || got[0].SequenceNumber != base+3 || got[1].SequenceNumber != base+2 {
			t.Fatalf("B gave %v", got)
		}
		got = append(got, dec.Push(fecPacket(3, c))...)
		if len(got) != 3 || got[2].SequenceNumber != base+20 {
			t.Fatalf("C gave %v", got)
		}
		for _, g := range got {
			if !bytes.Equal(marshal(t, g), marshal(t, media[g.SequenceNumber])) {
				t.Fatalf("seq %d differs", g.SequenceNumber)
			}
		}
		// Duplicates change nothing.
		if got := dec.Push(fecPacket(3, c)); got != nil {
			t.Fatal("duplicate FEC recovered again")
		}
		if got := dec.Push(wire(t, media[base+20])); got != nil {
			t.Fatal("duplicate media")
		}
		st := dec.Stats()
		if st.Recovered != 3 || st.Duplicates != 2 || st.FECPackets != 3 || st.Unrecoverable != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("FEC before media", func(t *testing.T) {
		dec := NewFlexFECDecoder(mediaSSRC, 0)
		if got := dec.Push(fecPacket(9, encode03(t, base, media, []int{50, 51, 52}))); got != nil {
			t.Fatal(got)
		}
		dec.Push(wire(t, media[base+50]))
		got := dec.Push(wire(t, media[base+52]))
		if len(got) != 1 || !bytes.Equal(marshal(t, got[0]), marshal(t, media[base+51])) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("beyond reach", func(t *testing.T) {
		dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
		for i := range 10 {
			if i != 4 && i != 7 {
				dec.Push(wire(t, media[base+uint16(i)]))
			}
		}
		if got := dec.Push(fecPacket(5, encode03(t, base, media, []int{0, 4, 7}))); got != nil {
			t.Fatalf("recovered %v from a set missing two", got)
		}
		// The window moves on: the FEC packet is given up as unrecoverable.
		for i := range 300 {
			dec.Push(wire(t, videoPacket(rng, base+200+uint16(i), i)))
		}
		if st := dec.Stats(); st.Unrecoverable != 1 || st.Recovered != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestFlexFECMalformed: what the decoder rejects, and that it never panics on it.
func TestFlexFECMalformed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	media := map[uint16]*rtp.Packet{}
	for i := range 50 {
		media[uint16(i)] = videoPacket(rng, uint16(i), i)
	}
	good := encode03(t, 0, media, []int{1, 2, 40})
	mutate := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"short", good[:19]},
		{"R bit", mutate(func(b []byte) []byte { b[0] |= 0x80; return b })},
		{"F bit", mutate(func(b []byte) []byte { b[0] |= 0x40; return b })},
		{"two SSRCs", mutate(func(b []byte) []byte { b[8] = 2; return b })},
		{"no SSRC", mutate(func(b []byte) []byte { b[8] = 0; return b })},
		{"other SSRC", mutate(func(b []byte) []byte { b[15] ^= 1; return b })},
		{"second mask cut", good[:22]},
		{"third mask without K", mutate(func(b []byte) []byte { b[20] &^= 0x80; return append(b[:24], make([]byte, 8)...) })},
		{"empty mask", mutate(func(b []byte) []byte { clear(b[18:24]); b[18] = 0x80; return b })},
		{"length beyond payload", mutate(func(b []byte) []byte { b[2] ^= 0x40; return b })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
			for i := range 50 {
				if i != 2 {
					dec.Push(wire(t, media[uint16(i)]))
				}
			}
			got := dec.Push(fecPacket(1, tc.payload))
			if got != nil {
				t.Fatalf("recovered %v", got)
			}
			if st := dec.Stats(); st.Malformed != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	// The unmodified packet recovers.
	dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
	for i := range 50 {
		if i != 2 {
			dec.Push(wire(t, media[uint16(i)]))
		}
	}
	if got := dec.Push(fecPacket(1, good)); len(got) != 1 {
		t.Fatalf("good packet: %v", got)
	}
	// Other streams and payload types are ignored.
	dec = NewFlexFECDecoder(mediaSSRC, fecSSRC, WithFlexFECPayloadType(fecPT))
	other := fecPacket(1, good)
	other.PayloadType = 50
	if dec.Push(other) != nil || dec.Stats() != (FlexFECStats{}) {
		t.Error("FEC of another payload type taken")
	}
	other.PayloadType, other.SSRC = fecPT, 99
	if dec.Push(other) != nil || dec.Stats() != (FlexFECStats{}) {
		t.Error("packet of another SSRC taken")
	}
}

// TestFlexFECBoundedMemory: a long lossy stream with FEC packets that can never complete
// keeps the decoder's memory bounded.
func TestFlexFECBoundedMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	dec := NewFlexFECDecoder(mediaSSRC, fecSSRC, WithFlexFECWindow(128, 16))
	media := map[uint16]*rtp.Packet{}
	for i := range 20000 {
		seq := uint16(i)
		p := videoPacket(rng, seq, i)
		media[seq] = p
		if i%10 >= 3 { // lose 3 of every 10
			dec.Push(p)
		}
		if i%10 == 9 && i >= 20 {
			// Protects two lost packets: never recoverable.
			dec.Push(fecPacket(uint16(i), encode03(t, seq-19, media, []int{0, 1, 10})))
		}
		delete(media, seq-30)
		if len(dec.pending) > 16 || len(dec.free) > 17 {
			t.Fatalf("%d FEC packets waiting, %d free", len(dec.pending), len(dec.free))
		}
	}
	if st := dec.Stats(); st.Unrecoverable < 1900 || st.Recovered != 0 {
		t.Errorf("stats %+v", st)
	}
	if len(dec.slots) != 128 {
		t.Errorf("%d slots", len(dec.slots))
	}
}

// TestFlexFECResidualLossMonteCarlo checks FlexFECResidualLoss against pion's encoder and this
// decoder under Bernoulli loss of media and FEC packets.
func TestFlexFECResidualLossMonteCarlo(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		p    float64
	}{
		{5, 2, 0.05}, {5, 2, 0.2}, {10, 3, 0.1}, {4, 4, 0.3}, {12, 1, 0.05},
	} {
		rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.p*1000)))
		batches := 30000 / tc.n
		media, fecs := pionBatches(t, rng, batches, tc.n, tc.k, 0)
		dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
		lost, recovered := runFlexFEC(t, dec, rng, media, fecs, tc.p)
		total := float64(batches * tc.n)
		residual := float64(lost-recovered) / total
		want := FlexFECResidualLoss(tc.p, tc.n, tc.k)
		sigma := math.Sqrt(want * (1 - want) * float64(tc.n) / total) // batch-correlated bound
		if math.Abs(residual-want) > 4*sigma+2e-4 {
			t.Errorf("N=%d K=%d p=%.2f: simulated %.5f, formula %.5f", tc.n, tc.k, tc.p, residual, want)
		}
		t.Logf("N=%d K=%d p=%.2f: simulated %.5f, formula %.5f", tc.n, tc.k, tc.p, residual, want)
	}
}

func TestResidualLossEdges(t *testing.T) {
	if FlexFECResidualLoss(0.1, 5, 0) != 0.1 || FlexFECResidualLoss(0.1, 0, 2) != 0 {
		t.Error("edges")
	}
	// One FEC per media packet: lost only with its copy, p^2.
	if got := FlexFECResidualLoss(0.1, 4, 4); math.Abs(got-0.01) > 1e-12 {
		t.Errorf("repetition: %v", got)
	}
	// Extra FEC packets beyond the media count protect nothing more.
	if FlexFECResidualLoss(0.1, 3, 5) != FlexFECResidualLoss(0.1, 3, 3) {
		t.Error("K > N")
	}
	if REDResidualLoss(0.1, 2) != math.Pow(0.1, 3) || REDResidualLoss(0.3, 0) != 0.3 {
		t.Error("RED")
	}
}

func FuzzFlexFECDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	media := map[uint16]*rtp.Packet{}
	for i := range 60 {
		media[uint16(i)] = videoPacket(rng, uint16(i), i)
	}
	f.Add(encode03(f, 0, media, []int{1, 2, 3}), uint8(2))
	f.Add(encode03(f, 0, media, []int{0, 20, 50}), uint8(20))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1}, uint8(15))
	f.Fuzz(func(t *testing.T, payload []byte, drop uint8) {
		dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
		for i := range 60 {
			if i != int(drop) {
				dec.Push(media[uint16(i)])
			}
		}
		for _, r := range dec.Push(fecPacket(1, payload)) {
			if r.SSRC != mediaSSRC || r.Version != 2 {
				t.Fatalf("recovered %v", r.Header)
			}
			if i := int(r.SequenceNumber); i < 60 && i != int(drop) {
				t.Fatalf("recovered seq %d, which was received", i)
			}
		}
		// A second copy is a duplicate.
		if dec.Push(fecPacket(1, payload)) != nil {
			t.Fatal("duplicate FEC packet recovered")
		}
	})
}

// BenchmarkFlexFECRecover: one batch of pion's default code (5 media + 2 FEC) with one
// media packet lost and rebuilt per operation.
func BenchmarkFlexFECRecover(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	media, _ := pionBatches(b, rng, 1, 5, 2, 0)
	for _, m := range media[0] { // 1000-byte payloads, no padding
		m.Padding, m.Header.PaddingSize = false, 0
	}
	enc := flexfec.NewFlexEncoder03(fecPT, fecSSRC)
	var batch []rtp.Packet
	for _, m := range media[0] {
		m.Payload = make([]byte, 1000)
		for k := range m.Payload {
			m.Payload[k] = byte(rng.Uint32())
		}
		batch = append(batch, *m)
	}
	fecPkts := enc.EncodeFec(batch, 2)
	dec := NewFlexFECDecoder(mediaSSRC, fecSSRC)
	scratch := make([][]byte, len(fecPkts))
	b.ReportAllocs()
	b.ResetTimer()
	for it := range b.N {
		base := uint16(it * 5)
		for i := range batch {
			if i == 2 {
				continue
			}
			p := batch[i]
			p.SequenceNumber = base + uint16(i)
			dec.Push(&p)
		}
		var got int
		for j, f := range fecPkts {
			scratch[j] = append(scratch[j][:0], f.Payload...)
			binary.BigEndian.PutUint16(scratch[j][16:18], base)
			p := f
			p.SequenceNumber = uint16(it*2 + j)
			p.Payload = scratch[j]
			got += len(dec.Push(&p))
		}
		if got != 1 {
			b.Fatalf("iteration %d: %d recovered", it, got)
		}
	}
}

// FuzzFlexFECStream plays an arbitrary order of media packets and consistent FEC packets
// (random masks over a 300-packet stream): whatever is rebuilt must be the original.
func FuzzFlexFECStream(f *testing.F) {
	rng := rand.New(rand.NewPCG(4, 4))
	media := map[uint16]*rtp.Packet{}
	raw := map[uint16][]byte{}
	for i := range 300 {
		seq := uint16(65400 + i) // across the wraparound
		media[seq] = videoPacket(rng, seq, i)
		raw[seq] = marshal(f, media[seq])
	}
	f.Add([]byte{0, 1, 0, 2, 1, 0, 7, 0, 0, 3})
	f.Add([]byte{1, 10, 255, 255, 0, 10, 0, 12, 1, 11, 3, 0, 0, 13})
	f.Fuzz(func(t *testing.T, ops []byte) {
		dec := NewFlexFECDecoder(mediaSSRC, fecSSRC, WithFlexFECWindow(128, 8))
		fecSeq := uint16(0)
		for len(ops) >= 2 {
			op, arg := ops[0], ops[1]
			ops = ops[2:]
			var out []*rtp.Packet
			switch op % 2 {
			case 0:
				seq := uint16(65400) + uint16(int(arg)+int(op)/2*256%300)%300
				out = dec.Push(wire(t, media[seq]))
			case 1:
				if len(ops) < 2 {
					return
				}
				base := uint16(65400) + uint16(arg)
				maskBits := uint16(ops[0])<<8 | uint16(ops[1])
				ops = ops[2:]
				var idx []int
				for i := range 16 {
					if maskBits&(1<<i) != 0 && int(arg)+i*3 < 300 {
						idx = append(idx, i*3)
					}
				}
				if len(idx) == 0 {
					continue
				}
				fecSeq++
				out = dec.Push(fecPacket(fecSeq, encode03(t, base, media, idx)))
			}
			for _, r := range out {
				want, ok := raw[r.SequenceNumber]
				if !ok || !bytes.Equal(marshal(t, r), want) {
					t.Fatalf("rebuilt seq %d is not the original", r.SequenceNumber)
				}
			}
		}
	})
}

// TestStatsConcurrentReads: Stats may be read while the decoders run (go test -race).
func TestStatsConcurrentReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	media, fecs := pionBatches(t, rng, 50, 5, 2, 0)
	flex := NewFlexFECDecoder(mediaSSRC, fecSSRC)
	red, enc := NewREDDecoder(redPT), NewREDEncoder(redPT, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // the reader
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = flex.Stats(), red.Stats()
			}
		}
	}()
	runFlexFEC(t, flex, rng, media, fecs, 0.1)
	for _, o := range opusStream(200, 0, 0, func(int) int { return 10 }) {
		if _, err := red.Decode(enc.Encode(o)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if flex.Stats().MediaPackets == 0 || red.Stats().Primaries != 200 {
		t.Errorf("stats %+v %+v", flex.Stats(), red.Stats())
	}
}
