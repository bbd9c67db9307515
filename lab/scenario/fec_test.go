package scenario

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/siprtc/siprtc/gateway/fec"
	"github.com/siprtc/siprtc/lab/netem"
)

var testGilbert = netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.3, LossBad: 1}

func TestFECTheory(t *testing.T) {
	want := [][]int{{2, 4, 5}, {3, 6}, {0, 4, 5}, {1, 6}, {0, 2, 5}}
	if got := flexRepairSets(5, 2); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("repair sets of 5+2: %v, want %v", got, want)
	}
	if got := geLossAfter(testGilbert, 1); math.Abs(got-0.7) > 1e-12 {
		t.Errorf("q(1) of Gilbert's model: %v, want 1-R", got)
	}
	// Without memory (P+R = 1) Gilbert-Elliott is Bernoulli loss P: RED's bound is then
	// exact, FlexFEC's (a union bound) is above the exact value, and close at low loss.
	memoryless := netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.02, R: 0.98, LossBad: 1}
	if got, want := redTheory(memoryless, 2), fec.REDResidualLoss(0.02, 2); math.Abs(got-want) > 1e-15 {
		t.Errorf("RED, memoryless: %v, want %v", got, want)
	}
	got, exact := flexTheory(memoryless, 5, 2), fec.FlexFECResidualLoss(0.02, 5, 2)
	if got < exact || got > 1.05*exact {
		t.Errorf("FlexFEC, memoryless: bound %v, exact %v", got, exact)
	}
	// Bursty: the bound is below the channel's loss, and not below what a stream alone on the
	// link (the fewest packets between two of one repair set) loses in simulation (RED's is
	// exact then: the simulation may exceed it by its noise, a few percent).
	pi, _ := lossModelStats(testGilbert)
	sim := simulateGE(testGilbert, 5, 2, 2, 200_000)
	for _, c := range []struct {
		name       string
		bound, sim float64
	}{{"flexfec 5+2", flexTheory(testGilbert, 5, 2), sim.flex}, {"red 2", redTheory(testGilbert, 2), sim.red}} {
		t.Logf("%s: bound %.4f, simulated %.4f, loss %.4f", c.name, c.bound, c.sim, pi)
		if c.bound >= pi || c.sim > 1.1*c.bound {
			t.Errorf("%s: bound %v, simulated %v, stationary loss %v", c.name, c.bound, c.sim, pi)
		}
	}
}

// simulateGE runs Gilbert-Elliott loss over a stream alone on its link: FlexFEC batches of n
// media and k FEC packets, and RED packets each repeating the d before it.
func simulateGE(l netem.LossModel, n, k, d, batches int) (out struct{ flex, red float64 }) {
	r := rand.New(rand.NewPCG(1, 2))
	bad := false
	lost := func() bool {
		if bad {
			bad = r.Float64() >= l.R
		} else {
			bad = r.Float64() < l.P
		}
		if bad {
			return r.Float64() < l.LossBad
		}
		return r.Float64() < l.LossGood
	}
	missing, total := 0, 0
	for range batches {
		pkts := make([]bool, n+k)
		for i := range pkts {
			pkts[i] = lost()
		}
		for i := range n {
			if !pkts[i] {
				continue
			}
			j := i % k
			other := pkts[n+j]
			for o := j; o < n; o += k {
				other = other || (o != i && pkts[o])
			}
			if other {
				missing++
			}
		}
		total += n
	}
	out.flex = float64(missing) / float64(total)
	seq := make([]bool, batches*n)
	for i := range seq {
		seq[i] = lost()
	}
	missing = 0
	for s := 0; s+d < len(seq); s++ {
		all := true
		for i := 0; i <= d; i++ {
			all = all && seq[s+i]
		}
		if all {
			missing++
		}
	}
	out.red = float64(missing) / float64(len(seq)-d)
	return out
}

func TestFECSample(t *testing.T) {
	c := FECCase{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.1}}.withDefaults()
	if n := fecSample(c, "video", 3000, 0.02); n != 980 { // 3000·0.98/3
		t.Errorf("video: %d", n)
	}
	if n := fecSample(c, "audio", 1100, 0.01); n < 899 || n > 900 { // 1100·0.9/1.1
		t.Errorf("audio: %d", n)
	}
	c.Loss = testGilbert
	if n := fecSample(c, "audio", 1700, 0); n < 299 || n > 300 { // 1700·0.3/1.7
		t.Errorf("audio, Gilbert: %d", n)
	}
}

// TestFECNoNACK: pion's NACK generator with fecNoNACK reports nothing, through sequence
// number wraparound, while without it the same losses are NACKed.
func TestFECNoNACK(t *testing.T) {
	for _, skip := range []uint16{0, fecNoNACK} {
		synctest.Test(t, func(t *testing.T) {
			var opts []nack.GeneratorOption
			if skip != 0 {
				opts = append(opts, nack.GeneratorSkipLastN(skip))
			}
			f, err := nack.NewGeneratorInterceptor(opts...)
			if err != nil {
				t.Fatal(err)
			}
			gen, err := f.NewInterceptor("")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			nacks := 0
			gen.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
				mu.Lock()
				nacks += len(pkts)
				mu.Unlock()
				return 0, nil
			}))
			seq := uint16(65000)
			reader := gen.BindRemoteStream(&interceptor.StreamInfo{SSRC: 1, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
				interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
					seq++
					if seq%10 == 0 {
						seq++ // lost
					}
					n, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: seq}}).MarshalTo(b)
					return n, a, err
				}))
			buf := make([]byte, 1500)
			for range 3000 {
				if _, _, err := reader.Read(buf, nil); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := gen.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if (skip != 0) != (nacks == 0) {
				t.Errorf("skipLastN %d: %d NACK packets", skip, nacks)
			}
		})
	}
}

// wireFlexFEC builds the wire of a FlexFEC stream as a receiver sees it: batches of n media
// and k FEC packets in sending order, less the lost ones.
func wireFlexFEC(t0 time.Time, pts fecPTs, n, k int, mediaSeq, fecSeq uint16, batches int, lost map[int]bool) []wirePacket {
	var out []wirePacket
	i := 0
	for b := range batches {
		for m := range n {
			if !lost[i] {
				out = append(out, wirePacket{at: t0.Add(time.Duration(i) * time.Millisecond), ssrc: 7, seq: mediaSeq + uint16(b*n+m), pt: pts.vp8})
			}
			i++
		}
		for j := range k {
			if !lost[i] {
				out = append(out, wirePacket{at: t0.Add(time.Duration(i) * time.Millisecond), ssrc: 8, seq: fecSeq + uint16(b*k+j), pt: pts.flexfec})
			}
			i++
		}
	}
	return out
}

func TestFECExactVideo(t *testing.T) {
	pts := fecPTs{red: 63, flexfec: 49, vp8: 96}
	c := FECCase{FECMediaPackets: 5, FECPackets: 2}
	t0 := time.Unix(1000, 0)
	// Positions in sending order (7 a batch: media 0-4, FEC 0-1). Batch 1: media 1 lost
	// (fixable). Batch 2: media 0 and 2 lost (group 0 fails). Batch 3: media 3 and FEC 1
	// lost (not fixable). Batch 4: FEC 0 lost only. Batch 5: media 4 lost (fixable), and
	// the application got nothing of it.
	lost := map[int]bool{7 + 1: true, 14 + 0: true, 14 + 2: true, 21 + 3: true, 21 + 6: true, 28 + 5: true, 35 + 4: true}
	mediaSeq, fecSeq := uint16(65530), uint16(100) // across the wraparound
	wire := wireFlexFEC(t0, pts, 5, 2, mediaSeq, fecSeq, 8, lost)
	got := map[uint16]bool{mediaSeq + 5 + 1: true, mediaSeq + 10 + 2: true} // batch 2's is unexplained
	e, err := fecExactVideo(c, wire, pts, t0.Add(7*time.Millisecond), t0.Add(48*time.Millisecond), func(s uint16) bool { return got[s] })
	if err != nil {
		t.Fatal(err)
	}
	// Batches 1-6 lie within the window (media of batch 1 to 6 arrived in it).
	want := FECExact{Packets: 30, Lost: 5, Fixable: 2, Recovered: 2, Missed: 1, Unexplained: 1}
	if e != want {
		t.Errorf("exact: %+v, want %+v", e, want)
	}
}

func TestFECExactAudio(t *testing.T) {
	pts := fecPTs{red: 63}
	t0 := time.Unix(1000, 0)
	var wire []wirePacket
	lost := map[int]bool{3: true, 7: true, 8: true, 12: true, 13: true, 14: true}
	for i := range 20 {
		if !lost[i] {
			wire = append(wire, wirePacket{at: t0.Add(time.Duration(i) * 20 * time.Millisecond), ssrc: 5, seq: uint16(65530 + i), pt: pts.red})
		}
	}
	got := map[uint16]bool{65533: true, 65537 - 65536: true, 65538 - 65536: true}
	c := FECCase{REDDistance: 2}
	e := fecExactAudio(c, wire, pts, t0, t0.Add(time.Second), func(s uint16) bool { return got[s] })
	// Packets 0..17 (the last two lack a carrier in the window). Lost 3 (fixable by 4),
	// 7 and 8 (by 9), 12, 13 (by 15) and 14 (by 15): 12 is not fixable (13 and 14 lost).
	want := FECExact{Packets: 18, Lost: 6, Fixable: 5, Recovered: 3, Missed: 2, Unexplained: 0}
	if e != want {
		t.Errorf("exact: %+v, want %+v", e, want)
	}
}

func TestFECForwarded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var wire []wirePacket
	var phone []arqRecv
	for i := range 100 {
		at := t0.Add(time.Duration(i/2) * 33 * time.Millisecond) // two packets a frame
		if i%17 != 5 {
			wire = append(wire, wirePacket{at: at, seq: uint16(65500 + i), ts: uint32(3000 * (i / 2)), pt: 96})
		}
		if i%17 != 6 {
			phone = append(phone, arqRecv{at: at, seq: uint16(1000 + i), ts: uint32(3000*(i/2) + 77)})
		}
	}
	got := fecForwarded(wire, 96, phone)
	for i := range 100 {
		if want := i%17 != 6; got(uint16(65500+i)) != want {
			t.Errorf("packet %d: forwarded %v, want %v", i, !want, want)
		}
	}
}

// TestMeasureFEC runs a short case each way: RED and FlexFEC recover exactly what their codes
// can, NACK stays silent, the overheads are the codes'.
func TestMeasureFEC(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: leaves out the emulated calls (a few seconds each)")
	}
	for _, path := range []MediaPath{ClientToGateway, GatewayToClient} {
		c := FECCase{Path: path, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}, RTT: 50 * time.Millisecond, Duration: 5 * time.Second}
		res, err := In(t, c.WorldConfig(), func(w *World) (FECResult, error) { return MeasureFEC(w, c) })
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		if res.ChannelDropped == 0 || res.NACKs != 0 || res.Retransmissions != 0 {
			t.Errorf("%s: %d dropped, %d NACKs, %d retransmissions", c.Name(), res.ChannelDropped, res.NACKs, res.Retransmissions)
		}
		for _, st := range []FECStream{res.Audio, res.Video} {
			e := st.Exact
			t.Logf("%s %s: %+v, overhead %.4f in [%.4f, %.4f]", c.Name(), st.Kind, e, st.Overhead, st.OverheadLow, st.OverheadHigh)
			if st.Receiver.Expected < 200 || e.Packets < 200 || st.Recovered == 0 || e.Fixable == 0 {
				t.Errorf("%s %s: %d expected, %+v, %d recovered", c.Name(), st.Kind, st.Receiver.Expected, e, st.Recovered)
			}
			if e.Missed != 0 || e.Unexplained != 0 {
				t.Errorf("%s %s: %+v", c.Name(), st.Kind, e)
			}
			if st.Overhead < st.OverheadLow || st.Overhead > st.OverheadHigh {
				t.Errorf("%s %s: overhead %v outside [%v, %v]", c.Name(), st.Kind, st.Overhead, st.OverheadLow, st.OverheadHigh)
			}
		}
	}
}
