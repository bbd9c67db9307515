package metrics

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Sample is one observation of a congestion-controlled flow and its bottleneck. Rates are in
// bit/s. A sample's values hold from its At until the next sample's At (sample and hold; the
// last sample holds on), so a rate meter's reading over (t-Δ, t] belongs at t-Δ.
type Sample struct {
	At time.Time `json:"at"`
	// Target is the congestion controller's target rate (e.g. GCC's estimate).
	Target float64 `json:"target_bps"`
	// Sending is the rate the flow put on the wire (media, retransmissions and FEC).
	Sending float64 `json:"sending_bps"`
	// Delivered is the rate of the flow's packets leaving the bottleneck toward the receiver.
	Delivered float64 `json:"delivered_bps"`
	// Capacity is the bottleneck rate available to the flow: the link rate, or the flow's
	// fair share when flows compete.
	Capacity float64 `json:"capacity_bps"`
	// QueueDelay is the delay the bottleneck queue adds at that instant.
	QueueDelay time.Duration `json:"queue_delay_ns"`
}

// Window is a time range [From, To]. A zero From means the first sample, a zero To the last.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// BWEStats are the RFC 8868 §2 measures of one flow over a window. Means and utilizations
// are time-weighted over the window under the sample-and-hold reading of [Sample]; time
// before the first sample is not counted.
type BWEStats struct {
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Duration time.Duration `json:"duration_ns"` // time covered by samples
	Samples  int           `json:"samples"`     // samples with At in [From, To]

	MeanTarget    float64 `json:"mean_target_bps"`
	MeanSending   float64 `json:"mean_sending_bps"`
	MeanDelivered float64 `json:"mean_delivered_bps"`
	MeanCapacity  float64 `json:"mean_capacity_bps"`

	// Utilization is the time mean of Delivered/Capacity, SendingUtilization of
	// Sending/Capacity, both over the time when Capacity > 0 (RFC 8868 §2 item 10: "the ratio
	// of the instantaneous sending rate to the instantaneous bottleneck capacity").
	Utilization        float64 `json:"utilization"`
	SendingUtilization float64 `json:"sending_utilization"`
	// OvershootFraction is the fraction of the covered time when Sending > Capacity, and
	// OvershootMean the time mean of Sending - Capacity over that time (bit/s, 0 if none).
	OvershootFraction float64 `json:"overshoot_fraction"`
	OvershootMean     float64 `json:"overshoot_mean_bps"`
	// LossRate is 1 - ∫Delivered/∫Sending, clamped to [0, 1] (RFC 8868 §2 item 5, from
	// rates: bits in flight at the window's edges bias it by about QueueDelay/Duration).
	LossRate float64 `json:"loss_rate"`
	// QueueDelay summarizes the QueueDelay of the samples in the window (RFC 8868 §2 item 4
	// is packet delay; with regular sampling this is its queueing part over time).
	QueueDelay DurationSummary `json:"queue_delay"`
}

// sortedSamples returns s sorted by At (stable), copying only if needed.
func sortedSamples(s []Sample) []Sample {
	less := func(a, b Sample) int { return a.At.Compare(b.At) }
	if slices.IsSortedFunc(s, less) {
		return s
	}
	c := slices.Clone(s)
	slices.SortStableFunc(c, less)
	return c
}

// segments calls f for each piece of [from, to) during which one sample holds, with that
// sample's index and the piece's length. s is sorted.
func segments(s []Sample, from, to time.Time, f func(i int, d time.Duration)) {
	if len(s) == 0 || !to.After(from) {
		return
	}
	// The sample in effect at from: the last with At <= from (or the first, later).
	i := sort.Search(len(s), func(k int) bool { return s[k].At.After(from) }) - 1
	if i < 0 {
		i = 0
	}
	for ; i < len(s); i++ {
		start := s[i].At
		if start.Before(from) {
			start = from
		}
		if !start.Before(to) {
			return
		}
		end := to
		if i+1 < len(s) && s[i+1].At.Before(to) {
			end = s[i+1].At
		}
		if end.After(start) {
			f(i, end.Sub(start))
		}
	}
}

// AnalyzeBWE computes the [BWEStats] of samples over w. samples need not be sorted.
func AnalyzeBWE(samples []Sample, w Window) BWEStats {
	s := sortedSamples(samples)
	if len(s) == 0 {
		return BWEStats{From: w.From, To: w.To}
	}
	if w.From.IsZero() {
		w.From = s[0].At
	}
	if w.To.IsZero() {
		w.To = s[len(s)-1].At
	}
	st := BWEStats{From: w.From, To: w.To}
	var total, capTime, overTime float64 // seconds
	var target, sending, delivered, capacity, util, sutil, over float64
	segments(s, w.From, w.To, func(i int, d time.Duration) {
		x, t := s[i], d.Seconds()
		total += t
		target += x.Target * t
		sending += x.Sending * t
		delivered += x.Delivered * t
		capacity += x.Capacity * t
		if x.Capacity > 0 {
			capTime += t
			util += x.Delivered / x.Capacity * t
			sutil += x.Sending / x.Capacity * t
		}
		if x.Sending > x.Capacity {
			overTime += t
			over += (x.Sending - x.Capacity) * t
		}
	})
	st.Duration = time.Duration(math.Round(total * 1e9))
	st.MeanTarget = ratio(target, total)
	st.MeanSending = ratio(sending, total)
	st.MeanDelivered = ratio(delivered, total)
	st.MeanCapacity = ratio(capacity, total)
	st.Utilization = ratio(util, capTime)
	st.SendingUtilization = ratio(sutil, capTime)
	st.OvershootFraction = ratio(overTime, total)
	st.OvershootMean = ratio(over, overTime)
	st.LossRate = math.Max(0, math.Min(1, 1-ratio(delivered, sending)))
	if sending == 0 {
		st.LossRate = 0
	}
	var qd []time.Duration
	for _, x := range s {
		if !x.At.Before(w.From) && !x.At.After(w.To) {
			qd = append(qd, x.QueueDelay)
		}
	}
	st.Samples = len(qd)
	st.QueueDelay = SummarizeDurations(qd)
	return st
}

// Which rate of a [Sample] a convergence is judged on.
const (
	RateDelivered = "delivered"
	RateTarget    = "target"
	RateSending   = "sending"
)

// Defaults of [ConvergenceOptions].
const (
	DefaultTolerance = 0.15
	DefaultHold      = time.Second
)

// ConvergenceOptions configure [ConvergenceTime].
type ConvergenceOptions struct {
	// Reference is the rate to converge to, bit/s: the new capacity, or a fair share
	// (capacity/n). Zero: the Capacity of the first sample at or after the change.
	Reference float64 `json:"reference_bps"`
	// Tolerance is the band's half-width as a fraction of Reference; zero means
	// DefaultTolerance (±15%).
	Tolerance float64 `json:"tolerance"`
	// Hold is how long the rate must stay in the band; zero or negative means DefaultHold.
	Hold time.Duration `json:"hold_ns"`
	// Rate is RateDelivered (the default: empty or any other string), RateTarget or
	// RateSending.
	Rate string `json:"rate"`
}

// ConvergenceTime is RFC 8868 §2 item 8, "the time taken to reach a stable rate ... after the
// available link capacity changes, or when new flows get added": the time from change until
// the chosen rate enters [Reference(1-Tolerance), Reference(1+Tolerance)] and then stays in
// it for at least Hold, judged on the sample-and-hold series up to the last sample (the hold
// must end by then). If the rate is already in the band at change and holds, it is 0. ok
// is false if it never converges within the samples (or Reference is not positive).
func ConvergenceTime(samples []Sample, change time.Time, opts ConvergenceOptions) (d time.Duration, ok bool) {
	s := sortedSamples(samples)
	if len(s) == 0 {
		return 0, false
	}
	tol := opts.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}
	hold := opts.Hold
	if hold <= 0 {
		hold = DefaultHold
	}
	rate := func(x Sample) float64 {
		switch opts.Rate {
		case RateTarget:
			return x.Target
		case RateSending:
			return x.Sending
		default:
			return x.Delivered
		}
	}
	// The sample in effect at change, or the first one after it.
	k := sort.Search(len(s), func(i int) bool { return s[i].At.After(change) }) - 1
	ref := opts.Reference
	if ref == 0 {
		j := sort.Search(len(s), func(i int) bool { return !s[i].At.Before(change) })
		if j == len(s) {
			return 0, false
		}
		ref = s[j].Capacity
	}
	if ref <= 0 {
		return 0, false
	}
	if k < 0 {
		k = 0
	}
	var runStart time.Time
	inRun := false
	for i := k; i < len(s); i++ {
		at := s[i].At
		if at.Before(change) {
			at = change
		}
		if inRun && at.Sub(runStart) >= hold {
			return runStart.Sub(change), true
		}
		if math.Abs(rate(s[i])-ref) <= tol*ref {
			if !inRun {
				runStart, inRun = at, true
			}
		} else {
			inRun = false
		}
	}
	return 0, false
}

// Jain is Jain's fairness index of n flows' rates (Jain, Chiu & Hawe 1984, DEC-TR-301;
// RFC 5166; the measure behind RFC 8868 §2 item 7, self-fairness):
//
//	J = (Σx)² / (n·Σx²)
//
// 1 when all rates are equal, 1/n when one flow has everything. An empty slice gives 0,
// rates that are all zero give 1 (equal shares of nothing).
func Jain(rates []float64) float64 {
	if len(rates) == 0 {
		return 0
	}
	var sum, sq float64
	for _, x := range rates {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(rates)) * sq)
}

// Series is a [Sample] sequence resampled to a fixed step, for charts: point i stands for
// [Start + i·Step, Start + (i+1)·Step) and holds the time-weighted means of the samples over
// that interval (sample and hold, the last sample holding on).
type Series struct {
	Start      time.Time       `json:"start"`
	Step       time.Duration   `json:"step_ns"`
	Target     []float64       `json:"target_bps"`
	Sending    []float64       `json:"sending_bps"`
	Delivered  []float64       `json:"delivered_bps"`
	Capacity   []float64       `json:"capacity_bps"`
	QueueDelay []time.Duration `json:"queue_delay_ns"`
}

// Resample returns the Series of samples (need not be sorted) from the first sample's At, with
// floor((last.At - first.At)/step) + 1 points, so the last point contains the last sample.
// No samples or a step <= 0 give an empty Series.
func Resample(samples []Sample, step time.Duration) Series {
	s := sortedSamples(samples)
	if len(s) == 0 || step <= 0 {
		return Series{Step: step}
	}
	n := int(s[len(s)-1].At.Sub(s[0].At)/step) + 1
	out := Series{
		Start: s[0].At, Step: step,
		Target: make([]float64, n), Sending: make([]float64, n), Delivered: make([]float64, n),
		Capacity: make([]float64, n), QueueDelay: make([]time.Duration, n),
	}
	for b := range n {
		from := out.Start.Add(time.Duration(b) * step)
		var tg, se, de, ca, qd float64
		segments(s, from, from.Add(step), func(i int, d time.Duration) {
			t := d.Seconds()
			tg += s[i].Target * t
			se += s[i].Sending * t
			de += s[i].Delivered * t
			ca += s[i].Capacity * t
			qd += float64(s[i].QueueDelay) * t
		})
		w := step.Seconds()
		out.Target[b], out.Sending[b], out.Delivered[b], out.Capacity[b] = tg/w, se/w, de/w, ca/w
		out.QueueDelay[b] = time.Duration(math.Round(qd / w))
	}
	return out
}

// Len is the number of points.
func (s Series) Len() int { return len(s.Target) }

// At is the start of point i's interval.
func (s Series) At(i int) time.Time { return s.Start.Add(time.Duration(i) * s.Step) }

// Samples returns the points as Samples, each at the start of its interval (so that
// AnalyzeBWE and ConvergenceTime can run on a resampled series).
func (s Series) Samples() []Sample {
	out := make([]Sample, s.Len())
	for i := range out {
		out[i] = Sample{
			At: s.At(i), Target: s.Target[i], Sending: s.Sending[i], Delivered: s.Delivered[i],
			Capacity: s.Capacity[i], QueueDelay: s.QueueDelay[i],
		}
	}
	return out
}
