package metrics

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample of numbers: its size, extremes, mean and nearest-rank percentiles
// (see [Percentile]). NaN values are left out of every field, N included. An empty sample
// gives the zero Summary.
type Summary struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Summarize returns the Summary of xs. xs is not modified.
func Summarize(xs []float64) Summary {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return Summary{}
	}
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		Mean: sum / float64(len(s)),
		P50:  s[rank(len(s), 50)],
		P95:  s[rank(len(s), 95)],
		P99:  s[rank(len(s), 99)],
		Max:  s[len(s)-1],
	}
}

// Percentile returns the nearest-rank p-th percentile of xs (NaN values left out): with the n
// values sorted ascending as x(1) <= ... <= x(n), it is x(ceil(p/100 * n)), the smallest value
// such that at least p% of the values are less than or equal to it (the "nearest rank" method,
// e.g. NIST/Hyndman-Fan definition 1 without interpolation). It is always one of the values.
// p <= 0 gives the minimum, p >= 100 the maximum, an empty sample 0.
func Percentile(xs []float64, p float64) float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[rank(len(s), p)]
}

// rank is the 0-based index of the nearest-rank p-th percentile in a sorted sample of n > 0.
func rank(n int, p float64) int {
	if p <= 0 {
		return 0
	}
	if p >= 100 {
		return n - 1
	}
	// ceil(p/100*n) computed as ceil(p*n/100) so that e.g. 95*20/100 is exactly 19.
	k := int(math.Ceil(p * float64(n) / 100))
	if k < 1 {
		k = 1
	}
	if k > n {
		k = n
	}
	return k - 1
}

// DurationSummary is a [Summary] of durations (JSON: integer nanoseconds, hence the _ns
// suffixes). Mean is truncated to the nanosecond.
type DurationSummary struct {
	N    int           `json:"n"`
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P95  time.Duration `json:"p95_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
}

// SummarizeDurations returns the DurationSummary of ds (nearest-rank percentiles, as
// [Percentile]). ds is not modified.
func SummarizeDurations(ds []time.Duration) DurationSummary {
	if len(ds) == 0 {
		return DurationSummary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return summarizeSortedDurations(s)
}

// summarizeSortedDurations summarizes s, which is sorted ascending and not empty.
func summarizeSortedDurations(s []time.Duration) DurationSummary {
	// The mean is accumulated as quotient and remainder so that long logs cannot overflow.
	n := int64(len(s))
	var q, r int64
	for _, d := range s {
		q += int64(d) / n
		r += int64(d) % n
	}
	return DurationSummary{
		N:    len(s),
		Min:  s[0],
		Mean: time.Duration(q + r/n),
		P50:  s[rank(len(s), 50)],
		P95:  s[rank(len(s), 95)],
		P99:  s[rank(len(s), 99)],
		Max:  s[len(s)-1],
	}
}

// ratio returns num/den, or 0 when den is 0, so that no metric is NaN or infinite (JSON cannot
// carry either).
func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}
