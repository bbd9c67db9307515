package scenario

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
)

// Benchmarks of the lab's runs in virtual time. testing/synctest.Test needs a *testing.T (Go
// 1.26 has no bubble for a *testing.B, and synctest.Run, the experiment's entry point, is
// gone), so each bubble runs in a test of its own that testing.RunTests starts from the
// benchmark, as lab/netem's benchmarks do. RunTests obeys the command line's -test.count and
// -test.cpu: inBubble pins the count to 1 and restores GOMAXPROCS, so that one b.Loop
// iteration is one run.

// inBubble runs measure in a synctest bubble (lab.Virtual) from a benchmark and returns what
// it returned and the virtual time it spanned.
func inBubble[T any](b *testing.B, name string, measure func() (T, error)) (res T, emulated time.Duration, err error) {
	b.Helper()
	if f := flag.Lookup("test.count"); f != nil {
		old := f.Value.String()
		_ = f.Value.Set("1")
		defer func() { _ = f.Value.Set(old) }()
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	ran := false
	ok := testing.RunTests(func(_, _ string) (bool, error) { return true, nil }, []testing.InternalTest{{
		Name: name,
		F: func(t *testing.T) {
			ran = true
			res, err = lab.Virtual(t, func() (T, error) {
				start := time.Now()
				defer func() { emulated = time.Since(start) }()
				return measure()
			})
		},
	}})
	if !ran {
		return res, 0, errors.New("the bubble's test did not run")
	}
	if !ok && err == nil {
		err = errors.New("the bubble's test failed")
	}
	return res, emulated, err
}

// inWorld is In for a benchmark: a world from cfg, measure in it, closed; it returns the
// virtual time the whole took (world set-up and tear-down included).
func inWorld[T any](b *testing.B, name string, cfg Config, measure func(*World) (T, error)) (T, time.Duration, error) {
	cfg.Emulated = true
	return inBubble(b, name, func() (T, error) {
		var zero T
		w, err := New(cfg)
		if err != nil {
			return zero, err
		}
		res, err := measure(w)
		return res, errors.Join(err, w.Close())
	})
}

// BenchmarkRFC8867Case51 runs RFC 8867 section 5.1 (100 s of one client's gcc-controlled
// video through the gateway, the client's uplink following 1, 2.5, 0.6 and 1 Mbps) in virtual
// time, one bubble per iteration, and reports how many emulated seconds (the world's set-up
// and tear-down included) a wall second buys.
func BenchmarkRFC8867Case51(b *testing.B) {
	c, err := RFC8867("5.1", BWEUplink)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := c.Config()
	if err != nil {
		b.Fatal(err)
	}
	var emulated, wall time.Duration
	for b.Loop() {
		start := time.Now()
		_, virt, err := inWorld(b, "RFC8867Case51", cfg, func(w *World) (BWEResult, error) { return MeasureBWE(w, c) })
		wall += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		emulated += virt
	}
	b.ReportMetric(emulated.Seconds()/wall.Seconds(), "emul-s/s")
}

// defaultRun is one run of the default scenario set.
type defaultRun struct {
	suite, name string
	run         func(b *testing.B) (time.Duration, error)
}

// defaultScenarioSet is what the lab's suites run through lab/scenario: the set-up matrix
// (suites/setup, its emulated cases), the ARQ and FEC matrices (suites/arq, suites/fec) and
// the RFC 8867 cases (suites/bwe). The matrices mirror the suites' entries; keep them in
// step (they would better be exported from here and used by both).
func defaultScenarioSet() ([]defaultRun, error) {
	var runs []defaultRun
	for _, loss := range []float64{0, 0.02} {
		for _, rtt := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			for _, dir := range []Direction{WebRTCToSIP, SIPToWebRTC} {
				l := netem.LinkConfig{Delay: netem.DelayModel{Base: rtt / 2}}
				calls := 3
				if loss > 0 {
					l.Loss = netem.LossModel{Kind: netem.LossBernoulli, Rate: loss}
					calls = 40
				}
				cfg := Config{Seed: 1, Links: map[string]Link{HostClient: {Up: l, Down: l}}}
				name := fmt.Sprintf("%s rtt=%v loss=%g%%", dir, rtt, 100*loss)
				runs = append(runs, defaultRun{"setup", name, func(b *testing.B) (time.Duration, error) {
					_, virt, err := inWorld(b, "setup", cfg, func(w *World) (SetupResult, error) {
						return MeasureSetup(w, dir, SetupOptions{Calls: calls})
					})
					return virt, err
				}})
			}
		}
	}
	bernoulli := func(p float64) netem.LossModel { return netem.LossModel{Kind: netem.LossBernoulli, Rate: p} }
	gilbert := netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.3, LossGood: 0, LossBad: 1}
	for _, path := range []MediaPath{ClientToGateway, GatewayToClient} {
		for _, loss := range []netem.LossModel{bernoulli(0.01), bernoulli(0.05), bernoulli(0.10), gilbert} {
			for _, rtt := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
				c := ARQCase{Path: path, Loss: loss, RTT: rtt}
				runs = append(runs, defaultRun{"arq", c.Name(), func(b *testing.B) (time.Duration, error) {
					_, virt, err := inWorld(b, "arq", c.WorldConfig(), func(w *World) (ARQResult, error) { return MeasureARQ(w, c) })
					return virt, err
				}})
			}
		}
	}
	for _, path := range []MediaPath{ClientToGateway, GatewayToClient} {
		cases := []FECCase{}
		for _, loss := range []netem.LossModel{bernoulli(0.01), bernoulli(0.05), bernoulli(0.10)} {
			for _, rtt := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
				cases = append(cases, FECCase{Path: path, Loss: loss, RTT: rtt})
			}
		}
		cases = append(cases, FECCase{Path: path, Loss: gilbert, RTT: 50 * time.Millisecond, REDDistance: 2})
		for _, c := range cases {
			runs = append(runs, defaultRun{"fec", c.Name(), func(b *testing.B) (time.Duration, error) {
				_, virt, err := inWorld(b, "fec", c.WorldConfig(), func(w *World) (FECResult, error) { return MeasureFEC(w, c) })
				return virt, err
			}})
		}
	}
	bwe := []struct {
		section string
		dir     BWEDirection
	}{{"5.1", BWEUplink}, {"5.2", BWEUplink}, {"5.3", BWEUplink}, {"5.4", BWEUplink}, {"5.8", BWEUplink}, {"5.1", BWEDownlink}}
	for _, x := range bwe {
		c, err := RFC8867(x.section, x.dir)
		if err != nil {
			return nil, err
		}
		cfg, err := c.Config()
		if err != nil {
			return nil, err
		}
		runs = append(runs, defaultRun{"bwe", c.Name + " " + string(x.dir), func(b *testing.B) (time.Duration, error) {
			_, virt, err := inWorld(b, "bwe", cfg, func(w *World) (BWEResult, error) { return MeasureBWE(w, c) })
			return virt, err
		}})
	}
	return runs, nil
}

// BenchmarkDefaultScenarioSet measures the wall time of the lab's whole default scenario set
// (set-up, ARQ, FEC and BWE runs, each in its own bubble): wall-s per iteration, each suite's
// share (<suite>-wall-s) and the emulated seconds per wall second over the set.
func BenchmarkDefaultScenarioSet(b *testing.B) {
	runs, err := defaultScenarioSet()
	if err != nil {
		b.Fatal(err)
	}
	perSuite := map[string]time.Duration{}
	var emulated, wall time.Duration
	iterations := 0
	for b.Loop() {
		iterations++
		for _, r := range runs {
			start := time.Now()
			virt, err := r.run(b)
			d := time.Since(start)
			if err != nil {
				b.Fatalf("%s %s: %v", r.suite, r.name, err)
			}
			perSuite[r.suite] += d
			wall += d
			emulated += virt
		}
	}
	b.ReportMetric(wall.Seconds()/float64(iterations), "wall-s")
	for suite, d := range perSuite {
		b.ReportMetric(d.Seconds()/float64(iterations), suite+"-wall-s")
	}
	b.ReportMetric(emulated.Seconds()/wall.Seconds(), "emul-s/s")
}
