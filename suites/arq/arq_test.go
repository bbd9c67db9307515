package arq_test

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
func measurement(res scenario.ARQResult, b pbx.Backend, wall time.Duration) lab.Measurement {
	c := res.Case
	m := lab.Measurement{
		Suite: "arq", Case: c.Name(), Backend: string(b),
		Params: lab.BackendParams(b, map[string]string{
			"path": c.Path.String(), "loss": scenario.LossName(c.Loss), "rtt": c.RTT.String(),
			"duration": c.Duration.String(), "deadline": c.Deadline.String(),
			"video_bitrate": fmt.Sprint(c.VideoBitrate), "fps": fmt.Sprint(c.FPS),
			"time": timeOf(b),
		}),
		Values: map[string]float64{
			"channel_loss": res.ChannelLoss, "model_loss": res.ModelLoss, "wall_s": wall.Seconds(),
		},
		Bounds: map[string]float64{},
		Detail: res,
	}
	// The receiver's NACKs over the window: the gateway's toward the client, or the client's.
	if c.Path == scenario.ClientToGateway {
		m.Values["receiver_nacks"] = res.Gateway[`siprtc_webrtc_repairs_total{type="nacks_sent"}`]
	} else {
		m.Values["receiver_nacks"] = float64(res.Client.NACKsSent)
	}
	for _, st := range []scenario.ARQStream{res.Audio, res.Video} {
		k := st.Kind + "_"
		r := st.Receiver
		m.Values[k+"expected"] = float64(r.Expected)
		m.Values[k+"lost"] = float64(r.Lost)
		m.Values[k+"late"] = float64(r.Late)
		m.Values[k+"repaired"] = float64(r.Repaired.Total)
		m.Values[k+"pre_repair_loss"] = r.PreRepairLossRate
		m.Values[k+"rounds"] = float64(st.Rounds)
		m.Values[k+"theory"] = st.Theory
		if st.Voice != nil {
			m.Values[k+"r"] = st.Voice.R
			m.Values[k+"mos_min"], m.Bounds[k+"mos_min"] = st.Voice.MOS, st.MOSMin
		}
		m.Values[k+"effective_loss"], m.Bounds[k+"effective_loss"] = r.EffectiveLossRate, st.Bound
		m.Values[k+"originals"] = float64(st.Originals)
		m.Values[k+"retransmissions"] = float64(st.Retransmissions)
		m.Values[k+"overhead"] = st.Overhead
		m.Values[k+"expected_overhead"] = st.ExpectedOverhead
		if st.OverheadBytes > 0 {
			m.Values[k+"overhead_bytes"] = st.OverheadBytes
		}
		m.Values[k+"retx_share"], m.Bounds[k+"retx_share"] = st.RetxShare, st.RetxHigh
		m.Values[k+"retx_share_min"], m.Bounds[k+"retx_share_min"] = st.RetxShare, st.RetxLow
	}
	return m
}

// containerWindow is the measured window against a container PBX: real time.
const containerWindow = 10 * time.Second

// timeOf says which clock a backend's cases run on.
func timeOf(b pbx.Backend) string {
	if pbx.IsContainer(b) {
		return "real"
	}
	return "virtual"
}

// arqCell is one spec: a case against a backend.
type arqCell struct {
	c       scenario.ARQCase
	backend pbx.Backend
}

// entries is the matrix, for each backend LAB_PBX selects. The embedded PBX: both paths x
// Bernoulli {1, 5, 10%} and Gilbert-Elliott x RTT {50, 200 ms}, 30 s windows in virtual time. A
// container PBX (in real time, in the split world: the client's link emulated, the PBX and the
// phone on loopback, see scenario.Config.Backend): Bernoulli 5% at 50 ms on both paths, 10 s
// windows. The phone then receives what the gateway repaired through the PBX, and the
// gateway receives the phone's media through it.
func entries() []TableEntry {
	bernoulli := func(p float64) netem.LossModel { return netem.LossModel{Kind: netem.LossBernoulli, Rate: p} }
	gilbert := netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.3, LossGood: 0, LossBad: 1}
	var out []TableEntry
	for _, b := range lab.Backends() {
		if pbx.IsContainer(b) {
			for _, path := range []scenario.MediaPath{scenario.ClientToGateway, scenario.GatewayToClient} {
				c := scenario.ARQCase{Path: path, Loss: bernoulli(0.05), RTT: 50 * time.Millisecond, Duration: containerWindow}
				out = append(out, Entry(fmt.Sprintf("%s against %s (real time, %v window)", c.Name(), b, containerWindow), arqCell{c, b}))
			}
			continue
		}
		for _, path := range []scenario.MediaPath{scenario.ClientToGateway, scenario.GatewayToClient} {
			for _, loss := range []netem.LossModel{bernoulli(0.01), bernoulli(0.05), bernoulli(0.10), gilbert} {
				for _, rtt := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
					c := scenario.ARQCase{Path: path, Loss: loss, RTT: rtt}
					out = append(out, Entry(c.Name(), arqCell{c, b}))
				}
			}
		}
	}
	return out
}

var _ = Describe("NACK/RTX repair across the gateway", Label("arq"), func() {
	DescribeTable("leaves no more loss than the rounds that fit the playout deadline, for one retransmission per loss",
		func(cell arqCell) {
			c := cell.c
			lab.UseBackend(cell.backend)
			cfg := c.WorldConfig()
			cfg.Backend = cell.backend
			if pbx.IsContainer(cell.backend) {
				cfg.PBXLogs = lab.KeepPBXLogs()
			}
			start := time.Now()
			res, err := scenario.In(suiteT, cfg, func(w *scenario.World) (scenario.ARQResult, error) {
				return scenario.MeasureARQ(w, c)
			})
			wall := time.Since(start)
			Expect(err).NotTo(HaveOccurred(), "case %s", c.Name())
			m := measurement(res, cell.backend, wall)
			lab.Record(m)
			// At least 80% of the window's 20 ms audio packets (video has more), at most 1000.
			minPackets := min(1000, int(res.Case.Duration/(20*time.Millisecond))*8/10)
			for _, st := range []scenario.ARQStream{res.Audio, res.Video} {
				Expect(st.Receiver.Expected).To(BeNumerically(">=", minPackets), "%s: too few %s packets in the window\n%s", c.Name(), st.Kind, m)
				Expect(st.Receiver.Repaired.Total).To(BeNumerically(">", 0), "%s: no %s packet was repaired: the repair path is off\n%s", c.Name(), st.Kind, m)
			}
			lab.ExpectWithinBounds(m)
		},
		entries(),
	)
})
