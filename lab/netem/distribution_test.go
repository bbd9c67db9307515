package netem

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramPercentiles: the histogram's percentiles are within 0.4% of the exact sample
// quantiles, and a constant reads exactly.
func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var samples []time.Duration
	for range 100000 {
		v := time.Duration(rng.ExpFloat64() * float64(30*time.Millisecond))
		h.add(v)
		samples = append(samples, v)
	}
	slices.Sort(samples)
	d := h.distribution()
	var sum time.Duration
	for _, v := range samples {
		sum += v
	}
	if d.Count != 100000 || d.Min != samples[0] || d.Max != samples[len(samples)-1] || d.Mean != sum/100000 {
		t.Errorf("count/min/max/mean %d %v %v %v, want exact", d.Count, d.Min, d.Max, d.Mean)
	}
	for q, got := range map[float64]time.Duration{0.5: d.P50, 0.9: d.P90, 0.95: d.P95, 0.99: d.P99} {
		want := samples[int(math.Ceil(q*float64(len(samples))))-1]
		if diff := math.Abs(float64(got-want)) / float64(want); diff > 0.004 {
			t.Errorf("p%v %v, exact %v (%.2f%% off)", q*100, got, want, diff*100)
		}
	}
	var c histogram
	for range 10 {
		c.add(40 * time.Millisecond)
	}
	if d := c.distribution(); d.P50 != 40*time.Millisecond || d.P99 != 40*time.Millisecond {
		t.Errorf("constant 40ms reads %v", d)
	}
}
