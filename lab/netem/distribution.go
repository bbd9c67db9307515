package netem

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Distribution summarizes durations. Count, Min, Max and Mean are exact; the percentiles come
// from a log-linear histogram whose buckets are at most 1/128 of their value wide (exact below
// 256 ns), so a percentile is within 0.4% of the true sample value, and is clamped to Min..Max
// (a constant delay reads exactly).
type Distribution struct {
	Count              int64
	Min, Max, Mean     time.Duration
	P50, P90, P95, P99 time.Duration
}

// String is a one-line summary for logs.
func (d Distribution) String() string {
	if d.Count == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d min=%v mean=%v p50=%v p90=%v p95=%v p99=%v max=%v",
		d.Count, d.Min, d.Mean, d.P50, d.P90, d.P95, d.P99, d.Max)
}

// histogramSubBits sets the histogram's precision: 2^7 buckets per power of two.
const histogramSubBits = 7

// histogram counts durations in log-linear buckets: values below 2^(k+1) ns have a bucket each;
// above, each power of two is split into 2^k buckets.
type histogram struct {
	counts   []int64
	n        int64
	sum      int64
	min, max time.Duration
}

func bucketOf(v uint64) int {
	shift := max(bits.Len64(v)-(histogramSubBits+1), 0)
	return shift<<histogramSubBits + int(v>>shift)
}

// bucketMid is the middle of bucket i's range.
func bucketMid(i int) time.Duration {
	shift := max(i>>histogramSubBits-1, 0)
	lo := uint64(i-shift<<histogramSubBits) << shift
	return time.Duration(lo + (uint64(1)<<shift)/2)
}

func (h *histogram) add(v time.Duration) {
	if v < 0 {
		v = 0
	}
	i := bucketOf(uint64(v))
	if i >= len(h.counts) {
		n := max(i+1, 2*len(h.counts), 512)
		grown := make([]int64, n)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += int64(v)
}

func (h *histogram) distribution() Distribution {
	if h.n == 0 {
		return Distribution{}
	}
	d := Distribution{Count: h.n, Min: h.min, Max: h.max, Mean: time.Duration(h.sum / h.n)}
	qs := []float64{0.50, 0.90, 0.95, 0.99}
	out := []*time.Duration{&d.P50, &d.P90, &d.P95, &d.P99}
	var cum int64
	q := 0
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		for q < len(qs) && cum >= int64(math.Ceil(qs[q]*float64(h.n))) {
			*out[q] = min(max(bucketMid(i), h.min), h.max)
			q++
		}
		if q == len(qs) {
			break
		}
	}
	return d
}
