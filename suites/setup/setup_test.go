package setup_test

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/scenario"
)

const (
	// losslessCalls per case without loss: the set-up is deterministic in virtual time, a few
	// calls show it repeats.
	losslessCalls = 3
	// lossyCalls per case with loss: enough for the 95th percentile and the share of unhurt
	// calls to mean something (see the suite's doc).
	lossyCalls = 40
	// loopbackSlack is the real processing time a loopback set-up may take on top of its
	// (zero-RTT) bound: key generation, the DTLS handshake's ECDSA and the signalling, under
	// the race detector on a shared 2-core machine.
	loopbackSlack = 500 * time.Millisecond
)

// setupCase is one cell of the matrix.
type setupCase struct {
	dir      scenario.Direction
	rtt      time.Duration
	loss     float64 // Bernoulli, each way on the client's link
	loopback bool    // real time on 127.0.0.1: no emulated link at all
}

func (c setupCase) name() string {
	if c.loopback {
		return fmt.Sprintf("%s on loopback (real time)", c.dir)
	}
	return fmt.Sprintf("%s rtt=%v loss=%g%%", c.dir, c.rtt, 100*c.loss)
}

// config is the case's world: the client link carries the round trip (half each way) and the
// loss; the other links are perfect.
func (c setupCase) config() scenario.Config {
	if c.loopback {
		return scenario.Config{}
	}
	l := netem.LinkConfig{Delay: netem.DelayModel{Base: c.rtt / 2}}
	if c.loss > 0 {
		l.Loss = netem.LossModel{Kind: netem.LossBernoulli, Rate: c.loss}
	}
	return scenario.Config{Emulated: true, Seed: 1, Links: map[string]scenario.Link{scenario.HostClient: {Up: l, Down: l}}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure runs the case and turns it into the measurement the spec records and asserts.
func measure(c setupCase) lab.Measurement {
	calls := losslessCalls
	if c.loss > 0 {
		calls = lossyCalls
	}
	start := time.Now()
	res, err := scenario.In(suiteT, c.config(), func(w *scenario.World) (scenario.SetupResult, error) {
		return scenario.MeasureSetup(w, c.dir, scenario.SetupOptions{Calls: calls})
	})
	wall := time.Since(start)
	Expect(err).NotTo(HaveOccurred(), "case %s", c.name())
	network := "emulated"
	if c.loopback {
		network = "loopback"
	}
	Expect(res.Calls).To(HaveLen(calls))

	m := lab.Measurement{
		Suite: "setup", Case: c.name(),
		Params: map[string]string{
			"direction": c.dir.String(), "rtt": c.rtt.String(), "loss": fmt.Sprint(c.loss),
			"loss_model": "bernoulli", "calls": fmt.Sprint(calls), "network": network,
		},
		Values: map[string]float64{"wall_s": wall.Seconds()},
		Bounds: map[string]float64{},
		Detail: res,
	}
	for _, iv := range scenario.SetupIntervals(c.dir) {
		var ds []time.Duration
		for _, s := range res.Calls {
			d, ok := iv.Of(s)
			Expect(ok).To(BeTrue(), "%s: a call has no %s: %+v", c.name(), iv.Name, s)
			ds = append(ds, d)
		}
		sum := metrics.SummarizeDurations(ds)
		b := iv.Bound(c.rtt)
		if c.loopback {
			b.Slack += loopbackSlack
		}
		m.Values[iv.Name+"_p50_ms"] = ms(sum.P50)
		if c.loss == 0 {
			m.Values[iv.Name+"_max_ms"], m.Bounds[iv.Name+"_max_ms"] = ms(sum.Max), ms(b.Limit())
			m.Values[iv.Name+"_ratio"], m.Bounds[iv.Name+"_ratio"] = b.Ratio(sum.Max), 1
			continue
		}
		lb := iv.LossBound(c.rtt)
		m.Values[iv.Name+"_p95_ms"], m.Bounds[iv.Name+"_p95_ms"] = ms(sum.P95), ms(lb.Limit())
		m.Values[iv.Name+"_p95_ratio"], m.Bounds[iv.Name+"_p95_ratio"] = lb.Ratio(sum.P95), 1
		m.Values[iv.Name+"_p50_ratio"] = b.Ratio(sum.P50)
		within := 0
		for _, d := range ds {
			if b.Within(d) {
				within++
			}
		}
		key := iv.Name + "_within_lossless_min"
		m.Values[key] = float64(within) / float64(len(ds))
		// 99.9%: the suite makes 24 such checks on correlated samples (three intervals of eight
		// cells); at 99% one of them would fail by chance in a few percent of runs.
		m.Bounds[key] = metrics.LowerBound(iv.LosslessProbability(c.loss), len(ds), metrics.Z999)
	}
	return m
}

// expectWithinBounds asserts every value that has a bound: upper bounds, or lower bounds for
// names ending in _min (lab.Measurement's convention).
func expectWithinBounds(m lab.Measurement) {
	for k, bound := range m.Bounds {
		v := m.Values[k]
		if strings.HasSuffix(k, "_min") {
			Expect(v).To(BeNumerically(">=", bound), "%s below its bound\n%s", k, m)
		} else {
			Expect(v).To(BeNumerically("<=", bound), "%s above its bound\n%s", k, m)
		}
	}
}

func entries() []TableEntry {
	var out []TableEntry
	for _, loss := range []float64{0, 0.02} {
		for _, rtt := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			for _, dir := range []scenario.Direction{scenario.WebRTCToSIP, scenario.SIPToWebRTC} {
				c := setupCase{dir: dir, rtt: rtt, loss: loss}
				out = append(out, Entry(c.name(), c))
			}
		}
	}
	// A sanity check of the same measurement in real time: the bound is the zero-RTT one plus
	// loopbackSlack of real processing.
	out = append(out, Entry(setupCase{dir: scenario.WebRTCToSIP, loopback: true}.name(), setupCase{dir: scenario.WebRTCToSIP, loopback: true}))
	return out
}

var _ = Describe("Call set-up time", Label("setup"), func() {
	DescribeTable("is what the protocols' round trips need on the client's link",
		func(c setupCase) {
			m := measure(c)
			lab.Record(m)
			expectWithinBounds(m)
		},
		entries(),
	)
})
