package fec_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/scenario"
)

// measurement turns a result into what the spec records and asserts.
func measurement(res scenario.FECResult, b pbx.Backend, wall time.Duration) lab.Measurement {
	c := res.Case
	clock := "virtual"
	if pbx.IsContainer(b) {
		clock = "real"
	}
	m := lab.Measurement{
		Suite: "fec", Case: c.Name(), Backend: string(b),
		Params: lab.BackendParams(b, map[string]string{
			"time": clock,
			"path": c.Path.String(), "loss": scenario.LossName(c.Loss), "rtt": c.RTT.String(),
			"duration": c.Duration.String(), "red_distance": fmt.Sprint(c.REDDistance),
			"fec_media_packets": fmt.Sprint(c.FECMediaPackets), "fec_packets": fmt.Sprint(c.FECPackets),
			"video_bitrate": fmt.Sprint(c.VideoBitrate), "fps": fmt.Sprint(c.FPS),
		}),
		Values: map[string]float64{
			"channel_loss": res.ChannelLoss, "model_loss": res.ModelLoss, "wall_s": wall.Seconds(),
			"srtp_tag": float64(res.SRTPTag),
		},
		Bounds: map[string]float64{},
		Detail: res,
	}
	// NACK is off: nothing asked for, nothing resent on the measured direction.
	m.Values["nacks"], m.Bounds["nacks"] = float64(res.NACKs), 0
	m.Values["retransmissions"], m.Bounds["retransmissions"] = float64(res.Retransmissions), 0
	for _, s := range []struct {
		st        scenario.FECStream
		mechanism string // what repairs the stream: fec (FlexFEC, video) or red (audio)
	}{{res.Audio, "red"}, {res.Video, "fec"}} {
		st, k := s.st, s.st.Kind+"_"
		r := st.Receiver
		m.Values[k+"expected"] = float64(r.Expected)
		m.Values[k+"lost"] = float64(r.Lost)
		m.Values[k+"channel_lost"] = float64(st.ChannelLost)
		m.Values[k+"pre_fec_loss"] = st.PreFECLoss
		m.Values[k+"theory"] = st.Theory
		m.Values[k+"sample"] = float64(st.SampleSize)
		m.Values[k+"fixable"] = st.Fixable
		m.Values["residual_loss_"+st.Kind], m.Bounds["residual_loss_"+st.Kind] = st.Residual, st.Bound
		rec := "recovered_" + s.mechanism
		m.Values[rec] = float64(st.Recovered)
		m.Values[rec+"_min"], m.Bounds[rec+"_min"] = float64(st.Recovered), st.RecoveredMin
		ov := s.mechanism + "_overhead"
		m.Values[ov+"_expected"] = st.ExpectedOverhead
		m.Values[ov], m.Bounds[ov] = st.Overhead, st.OverheadHigh
		m.Values[ov+"_min"], m.Bounds[ov+"_min"] = st.Overhead, st.OverheadLow
		m.Values[k+"repair_packets"] = float64(st.RepairPackets)
		m.Values[k+"media_packets"] = float64(st.MediaPackets)
		// Packet by packet on the receiver's wire: every loss the code could fix was fixed,
		// and nothing else.
		e := st.Exact
		m.Values[k+"exact_packets"] = float64(e.Packets)
		m.Values[k+"exact_lost"] = float64(e.Lost)
		m.Values["fixable_"+s.mechanism] = float64(e.Fixable)
		m.Values["missed_"+s.mechanism], m.Bounds["missed_"+s.mechanism] = float64(e.Missed), 0
		m.Values["unexplained_"+s.mechanism], m.Bounds["unexplained_"+s.mechanism] = float64(e.Unexplained), 0
	}
	return m
}

// containerWindow is the measured window against a container PBX: real time.
const containerWindow = 10 * time.Second

// fecCell is one spec: a case against a backend.
type fecCell struct {
	c       scenario.FECCase
	backend pbx.Backend
}

// entries is the matrix, for each backend LAB_PBX selects. The embedded PBX: the 14 cases of
// the package documentation, 30 s windows in virtual time. A container PBX (in real time, in
// the split world: the client's link emulated, the PBX and the phone on loopback, see
// scenario.Config.Backend): Bernoulli 10% at 50 ms on both paths (the loss where FEC's repair
// and its residual both show in a short window), 10 s windows. Opus and VP8 cross the PBX
// unchanged (same codec on both of its legs), RED and FlexFEC live on the WebRTC leg.
func entries() []TableEntry {
	bernoulli := func(p float64) netem.LossModel { return netem.LossModel{Kind: netem.LossBernoulli, Rate: p} }
	gilbert := netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.3, LossGood: 0, LossBad: 1}
	var out []TableEntry
	for _, b := range lab.Backends() {
		if pbx.IsContainer(b) {
			for _, path := range []scenario.MediaPath{scenario.ClientToGateway, scenario.GatewayToClient} {
				c := scenario.FECCase{Path: path, Loss: bernoulli(0.10), RTT: 50 * time.Millisecond, Duration: containerWindow}
				out = append(out, Entry(fmt.Sprintf("%s against %s (real time, %v window)", c.Name(), b, containerWindow), fecCell{c, b}))
			}
			continue
		}
		for _, path := range []scenario.MediaPath{scenario.ClientToGateway, scenario.GatewayToClient} {
			for _, loss := range []netem.LossModel{bernoulli(0.01), bernoulli(0.05), bernoulli(0.10)} {
				for _, rtt := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
					c := scenario.FECCase{Path: path, Loss: loss, RTT: rtt}
					out = append(out, Entry(c.Name(), fecCell{c, b}))
				}
			}
			// Bursts: RED repeating two frames, what a deeper RED is for.
			c := scenario.FECCase{Path: path, Loss: gilbert, RTT: 50 * time.Millisecond, REDDistance: 2}
			out = append(out, Entry(c.Name(), fecCell{c, b}))
		}
	}
	return out
}

var _ = Describe("RED and FlexFEC across the gateway", Label("fec"), func() {
	DescribeTable("leave no more loss than their codes, recover what they can, and cost what their codes cost",
		func(cell fecCell) {
			c := cell.c
			lab.UseBackend(cell.backend)
			cfg := c.WorldConfig()
			cfg.Backend = cell.backend
			if pbx.IsContainer(cell.backend) {
				cfg.PBXLogs = lab.KeepPBXLogs()
			}
			start := time.Now()
			res, err := scenario.In(suiteT, cfg, func(w *scenario.World) (scenario.FECResult, error) {
				return scenario.MeasureFEC(w, c)
			})
			wall := time.Since(start)
			Expect(err).NotTo(HaveOccurred(), "case %s", c.Name())
			m := measurement(res, cell.backend, wall)
			lab.Record(m)
			// At least 80% of the window's 20 ms audio packets (video has more), at most 1000.
			minPackets := min(1000, int(res.Case.Duration/(20*time.Millisecond))*8/10)
			for _, st := range []scenario.FECStream{res.Audio, res.Video} {
				Expect(st.Receiver.Expected).To(BeNumerically(">=", minPackets), "%s: too few %s packets in the window\n%s", c.Name(), st.Kind, m)
				Expect(st.Exact.Packets).To(BeNumerically(">=", minPackets), "%s: too few %s packets on the receiver's wire\n%s", c.Name(), st.Kind, m)
				Expect(st.Recovered).To(BeNumerically(">", 0), "%s: no %s packet was recovered: the repair path is off\n%s", c.Name(), st.Kind, m)
			}
			lab.ExpectWithinBounds(m)
		},
		entries(),
	)
})
