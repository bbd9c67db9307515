package metrics

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	// 1..20 in a scrambled order, plus a NaN that must be ignored.
	xs := []float64{7, 20, 1, 14, 3, 18, 5, 12, 9, 16, 2, 19, 4, 11, math.NaN(), 6, 13, 8, 15, 10, 17}
	s := Summarize(xs)
	eq(t, "N", s.N, 20)
	eq(t, "Min", s.Min, 1.0)
	eq(t, "Max", s.Max, 20.0)
	near(t, "Mean", s.Mean, 10.5, 1e-12) // 210/20
	eq(t, "P50", s.P50, 10.0)            // rank ceil(0.50*20) = 10
	eq(t, "P95", s.P95, 19.0)            // rank ceil(0.95*20) = 19
	eq(t, "P99", s.P99, 20.0)            // rank ceil(0.99*20) = 20
	if !math.IsNaN(xs[14]) || xs[0] != 7 {
		t.Error("Summarize modified its input")
	}

	eq(t, "empty", Summarize(nil), Summary{})
	one := Summarize([]float64{4})
	eq(t, "one", one, Summary{N: 1, Min: 4, Mean: 4, P50: 4, P95: 4, P99: 4, Max: 4})
}

func TestPercentile(t *testing.T) {
	xs := []float64{15, 20, 35, 40, 50} // the classic nearest-rank example
	for _, c := range []struct{ p, want float64 }{
		{0, 15}, {5, 15}, {30, 20}, {40, 20}, {50, 35}, {100, 50}, {120, 50},
	} {
		eq(t, "Percentile", Percentile(xs, c.p), c.want)
	}
	eq(t, "empty", Percentile(nil, 50), 0.0)
}

func TestSummarizeDurations(t *testing.T) {
	ds := []time.Duration{ms(30), ms(10), ms(20), ms(40)}
	s := SummarizeDurations(ds)
	eq(t, "summary", s, DurationSummary{N: 4, Min: ms(10), Mean: ms(25), P50: ms(20), P95: ms(40), P99: ms(40), Max: ms(40)})
	eq(t, "input untouched", ds[0], ms(30))
	// The mean truncates: (1+2+2) ns / 3 = 1.67 ns -> 1 ns.
	eq(t, "mean", SummarizeDurations([]time.Duration{1, 2, 2}).Mean, time.Duration(1))
	// No overflow on huge values: two of MaxInt64-1 average to themselves.
	big := time.Duration(math.MaxInt64 - 1)
	eq(t, "big mean", SummarizeDurations([]time.Duration{big, big}).Mean, big)
	eq(t, "empty", SummarizeDurations(nil), DurationSummary{})
}
