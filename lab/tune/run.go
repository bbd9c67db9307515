package tune

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/scenario"
)

// SeriesStep is the resolution of the time series a run keeps for the report's charts.
const SeriesStep = 500 * time.Millisecond

// Job is a whole sweep: every configuration on every scenario, Repeat times.
type Job struct {
	Scenarios []Scenario `json:"scenarios"`
	Params    []Param    `json:"params"`
	Configs   []Config   `json:"configs"`
	// Repeat is how many times each configuration runs on each scenario (at least 1);
	// repetition r uses seed Seed+r.
	Repeat int `json:"repeat"`
	// Seed seeds the emulated network of repetition 0 (0: each scenario's own seed, then 1).
	Seed int64 `json:"seed"`
	// Duration shortens (or lengthens) every run; 0 keeps each scenario's.
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// RunSpec is one run of a job: configuration Config on scenario Scenario (indexes into the
// job's), repetition Rep. ID is its index in Job.Runs.
type RunSpec struct {
	ID       int `json:"id"`
	Config   int `json:"config"`
	Scenario int `json:"scenario"`
	Rep      int `json:"rep"`
}

// Runs lists the job's runs: configurations in grid order, then scenarios, then repetitions.
func (j Job) Runs() []RunSpec {
	var out []RunSpec
	for c := range j.Configs {
		for s := range j.Scenarios {
			for r := range max(j.Repeat, 1) {
				out = append(out, RunSpec{ID: len(out), Config: c, Scenario: s, Rep: r})
			}
		}
	}
	return out
}

// Name names a run as a subtest and in messages: "c3/rfc8867-5.1/r0".
func (r RunSpec) Name(j Job) string {
	return fmt.Sprintf("c%d/%s/r%d", r.Config, j.Scenarios[r.Scenario].Name, r.Rep)
}

// Prepare loads the run's scenario, applies its configuration and seeds its network.
func (j Job) Prepare(r RunSpec) (scenario.BWECase, scenario.Config, int64, error) {
	base, err := j.Scenarios[r.Scenario].Case()
	if err != nil {
		return base, scenario.Config{}, 0, err
	}
	if j.Duration > 0 {
		base.Duration = j.Duration
	}
	c, wc, err := Apply(base, j.Configs[r.Config])
	if err != nil {
		return c, wc, 0, err
	}
	seed := j.Seed
	if seed == 0 && c.Scenario != nil {
		seed = c.Scenario.Seed
	}
	if seed == 0 {
		seed = 1
	}
	seed += int64(r.Rep)
	wc.Seed = seed
	return c, wc, seed, nil
}

// Metrics are what a run measured, as the objectives read them.
type Metrics struct {
	// Utilization is the run's RFC 8868 utilization: the time mean of delivered/capacity at
	// the bottleneck over the whole run (BWEResult.Total.Utilization).
	Utilization float64 `json:"utilization"`
	// QueueP95 is the 95th percentile of the bottleneck's queue delay over the run's 100 ms
	// samples (BWEResult.Total.QueueDelay.P95, what suites/bwe bounds); PacketQueueP95 is
	// netem's per-packet one (call set-up included).
	QueueP95       time.Duration `json:"queue_delay_p95_ns"`
	PacketQueueP95 time.Duration `json:"packet_queue_delay_p95_ns"`
	// Loss is the share of the datagrams offered to the bottleneck that its queue dropped.
	Loss float64 `json:"loss"`
	// Convergence is the mean over the run's epochs with a capacity of the time the offered
	// rate took to converge to it (BWEEpoch.Convergence); an epoch that never converged counts
	// its whole length. Unconverged counts those.
	Convergence time.Duration `json:"convergence_ns"`
	Unconverged int           `json:"unconverged"`
	// MeanTarget and MeanDelivered are the run's means (bit/s).
	MeanTarget    float64 `json:"mean_target_bps"`
	MeanDelivered float64 `json:"mean_delivered_bps"`
	// NACKsSent are the NACKs the gateway sent the client (asking for the client's lost
	// video: the NACK settings' effect); Retransmissions what the gateway itself resent to the
	// client (the phone's media it was asked for).
	NACKsSent       uint64 `json:"gateway_nacks_sent"`
	Retransmissions uint64 `json:"gateway_retransmissions"`
}

// MetricsOf extracts a run's Metrics.
func MetricsOf(res scenario.BWEResult) Metrics {
	m := Metrics{
		Utilization: res.Total.Utilization, QueueP95: res.Total.QueueDelay.P95, PacketQueueP95: res.QueueDelay.P95,
		Loss: res.Loss.Rate, MeanTarget: res.Total.MeanTarget, MeanDelivered: res.Total.MeanDelivered,
		NACKsSent: res.Gateway.NACKsSent, Retransmissions: res.Gateway.Retransmissions,
	}
	var sum time.Duration
	n := 0
	for _, e := range res.Epochs {
		if e.Capacity <= 0 {
			continue
		}
		n++
		if e.Converged {
			sum += e.Convergence
		} else {
			sum += e.To - e.From
			m.Unconverged++
		}
	}
	if n > 0 {
		m.Convergence = sum / time.Duration(n)
	}
	return m
}

// RunResult is one run's outcome: its metrics and the bottleneck's time series (target,
// sending, delivered, capacity, queue delay every SeriesStep), or the error that stopped it.
type RunResult struct {
	Spec    RunSpec        `json:"run"`
	Seed    int64          `json:"seed"`
	Metrics Metrics        `json:"metrics"`
	Series  metrics.Series `json:"series"`
	Err     string         `json:"error,omitempty"`
	// Wall is the run's wall time (virtual time elapses much faster).
	Wall time.Duration `json:"wall_ns"`
}

var buildWorld sync.Mutex

// RunOne runs one run of j in a synctest bubble of t (t must not be in a bubble already).
// Errors come back in RunResult.Err.
func RunOne(t *testing.T, j Job, r RunSpec) RunResult {
	start := time.Now()
	out := RunResult{Spec: r}
	c, wc, seed, err := j.Prepare(r)
	out.Seed = seed
	if err != nil {
		out.Err = err.Error()
		return out
	}
	res, err := lab.Virtual(t, func() (scenario.BWEResult, error) {
		// Worlds are built one at a time: pion's vnet numbers the MAC addresses of every
		// router and interface from a global counter it does not synchronize
		// (vnet.newMACAddress), which the race detector reports when parallel runs build their
		// networks at once. The measurement itself runs in parallel.
		buildWorld.Lock()
		w, err := scenario.New(wc)
		buildWorld.Unlock()
		if err != nil {
			return scenario.BWEResult{}, err
		}
		res, err := scenario.MeasureBWE(w, c)
		return res, errors.Join(err, w.Close())
	})
	out.Wall = time.Since(start)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Metrics = MetricsOf(res)
	out.Series = metrics.Resample(res.Aggregate, SeriesStep)
	return out
}

// RunAll runs every run of j as a parallel subtest of t (testing's -test.parallel bounds how
// many at once) and hands each result to emit as it completes; emit is called from several
// goroutines, one at a time. It returns when the subtests are started: they run when t's
// function returns (testing releases parallel subtests then), so call it last, or from a
// t.Run of its own to wait for them.
func RunAll(t *testing.T, j Job, emit func(RunResult)) {
	var mu sync.Mutex
	for _, r := range j.Runs() {
		t.Run(r.Name(j), func(t *testing.T) {
			t.Parallel()
			res := RunOne(t, j, r)
			mu.Lock()
			defer mu.Unlock()
			emit(res)
		})
	}
}
