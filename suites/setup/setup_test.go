package setup_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/scenario"
)

const (
	// losslessCalls per case without loss: the set-up is deterministic in virtual time, a few
	// calls show it repeats.
	losslessCalls = 3
	// lossyCalls per case with loss: enough for the 95th percentile and the share of unhurt
	// calls to mean something (see the suite's doc).
	lossyCalls = 40
	// realTimeSlack is the real processing time a set-up in real time (on loopback, or with a
	// container PBX) may take on top of its bound: key generation, the DTLS handshake's ECDSA,
	// the signalling and the PBX, under the race detector on a shared 2-core machine.
	realTimeSlack = 500 * time.Millisecond
	// containerCalls per case against a container PBX: real time, so a few calls only.
	containerCalls = 3
)

// setupCase is one cell of the matrix.
type setupCase struct {
	dir      scenario.Direction
	rtt      time.Duration
	loss     float64 // Bernoulli, each way on the client's link
	loopback bool    // real time on 127.0.0.1: no emulated link at all
	backend  pbx.Backend
}

// container: the case runs against a container PBX, in real time.
func (c setupCase) container() bool { return pbx.IsContainer(c.backend) }

// realTime: the case runs in real time (loopback, or a container PBX's world).
func (c setupCase) realTime() bool { return c.loopback || c.container() }

// name is the case as its measurement names it (Measurement.Backend says the PBX).
func (c setupCase) name() string {
	if c.loopback {
		return fmt.Sprintf("%s on loopback (real time)", c.dir)
	}
	return fmt.Sprintf("%s rtt=%v loss=%g%%", c.dir, c.rtt, 100*c.loss)
}

// title is the spec's text: the name, and the PBX when it is a container.
func (c setupCase) title() string {
	if c.container() {
		return fmt.Sprintf("%s against %s (real time)", c.name(), c.backend)
	}
	return c.name()
}

// config is the case's world: the client link carries the round trip (half each way) and the
// loss; the other links are perfect.
func (c setupCase) config() scenario.Config {
	if c.loopback {
		return scenario.Config{Backend: c.backend}
	}
	l := netem.LinkConfig{Delay: netem.DelayModel{Base: c.rtt / 2}}
	if c.loss > 0 {
		l.Loss = netem.LossModel{Kind: netem.LossBernoulli, Rate: c.loss}
	}
	return scenario.Config{Emulated: true, Seed: 1, Backend: c.backend,
		Links: map[string]scenario.Link{scenario.HostClient: {Up: l, Down: l}}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure runs the case and turns it into the measurement the spec records and asserts.
func measure(c setupCase) lab.Measurement {
	lab.UseBackend(c.backend)
	calls := losslessCalls
	switch {
	case c.container():
		calls = containerCalls
	case c.loss > 0:
		calls = lossyCalls
	}
	cfg := c.config()
	if c.container() {
		cfg.PBXLogs = lab.KeepPBXLogs()
	}
	start := time.Now()
	res, err := scenario.In(suiteT, cfg, func(w *scenario.World) (scenario.SetupResult, error) {
		return scenario.MeasureSetup(w, c.dir, scenario.SetupOptions{Calls: calls})
	})
	wall := time.Since(start)
	Expect(err).NotTo(HaveOccurred(), "case %s", c.name())
	network := "emulated"
	switch {
	case c.loopback:
		network = "loopback"
	case c.container():
		network = "emulated (real time: the client and the gateway's WebRTC leg; the PBX, the phone and the gateway's SIP leg on loopback)"
	}
	Expect(res.Calls).To(HaveLen(calls))

	m := lab.Measurement{
		Suite: "setup", Case: c.name(), Backend: string(c.backend),
		Params: lab.BackendParams(c.backend, map[string]string{
			"direction": c.dir.String(), "rtt": c.rtt.String(), "loss": fmt.Sprint(c.loss),
			"loss_model": "bernoulli", "calls": fmt.Sprint(calls), "network": network,
		}),
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
		if c.realTime() {
			b.Slack += realTimeSlack
		}
		m.Values[iv.Name+"_p50_ms"] = ms(sum.P50)
		if c.realTime() {
			// What real time added to the slowest call: processing (and the container PBX)
			// beyond the protocol's crossings, which virtual time makes zero.
			crossings := iv.Bound(c.rtt)
			m.Values[iv.Name+"_excess_ms"] = ms(sum.Max) - ms(time.Duration(crossings.RoundTrips)*crossings.RTT)
		}
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

// entries is the matrix, for each backend LAB_PBX selects. The embedded PBX: RTT {0, 50, 200,
// 400 ms} x loss {0, 2%} x both directions in virtual time, and one loopback call in real time.
// A container PBX (Asterisk; FreeSWITCH when its image exists) runs in real time, so its matrix
// is small: RTT {50, 200 ms} without loss, both directions, containerCalls calls each, in the
// split world (scenario.Config.Backend), with the bounds plus realTimeSlack.
func entries() []TableEntry {
	var out []TableEntry
	add := func(c setupCase) { out = append(out, Entry(c.title(), c)) }
	for _, b := range lab.Backends() {
		if pbx.IsContainer(b) {
			for _, rtt := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
				for _, dir := range []scenario.Direction{scenario.WebRTCToSIP, scenario.SIPToWebRTC} {
					add(setupCase{dir: dir, rtt: rtt, backend: b})
				}
			}
			continue
		}
		for _, loss := range []float64{0, 0.02} {
			for _, rtt := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
				for _, dir := range []scenario.Direction{scenario.WebRTCToSIP, scenario.SIPToWebRTC} {
					add(setupCase{dir: dir, rtt: rtt, loss: loss, backend: b})
				}
			}
		}
		// A sanity check of the same measurement in real time: the bound is the zero-RTT one
		// plus realTimeSlack of real processing.
		add(setupCase{dir: scenario.WebRTCToSIP, loopback: true, backend: b})
	}
	return out
}

var _ = Describe("Call set-up time", Label("setup"), func() {
	DescribeTable("is what the protocols' round trips need on the client's link",
		func(c setupCase) {
			m := measure(c)
			lab.Record(m)
			lab.ExpectWithinBounds(m)
		},
		entries(),
	)
})
