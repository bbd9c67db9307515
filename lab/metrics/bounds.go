package metrics

import (
	"math"
	"time"
)

// Standard normal quantiles for [UpperBound] and [LowerBound].
const (
	// Z95 is the two-sided 95% quantile (one-sided 97.5%).
	Z95 = 1.959963984540054
	// Z99 is the two-sided 99% quantile (one-sided 99.5%).
	Z99 = 2.5758293035489004
	// Z999 is the two-sided 99.9% quantile (one-sided 99.95%).
	Z999 = 3.2905267314919255
)

// ARQResidualLoss is the loss left after k retransmission rounds when every transmission of
// a packet (the original and each retransmission) is lost independently with probability p
// (Bernoulli losses): p^(k+1). The model assumes the NACKs themselves get through (or the
// reverse path is lossless); with a reverse loss rate q, use 1-(1-p)(1-q) as the per-round
// failure of the retransmissions. p is clamped to [0, 1], k < 0 is taken as 0.
func ARQResidualLoss(p float64, k int) float64 {
	p = math.Max(0, math.Min(1, p))
	if k < 0 {
		k = 0
	}
	return math.Pow(p, float64(k)+1)
}

// ARQRounds is the number of retransmission rounds that complete before the deadline:
// floor(deadline / (rtt + nackDelay)).
//
// Model: deadline is how long after its nominal arrival a packet can still be played (the
// playout budget, e.g. the fixed playout delay of [StreamOptions.Deadline]). A lost packet
// is noticed at its nominal arrival time plus nackDelay (the receiver's detection and NACK
// pacing: at least the gap to the next packet that reveals the loss, plus any reordering
// hold), then the NACK travels to the sender and the retransmission back, one rtt. Each
// further round (the retransmission was lost too) costs the same rtt + nackDelay again, so
// round i completes i*(rtt + nackDelay) after the nominal arrival. A round that completes
// exactly at the deadline counts (arrival at the playout instant is on time, as in
// [AnalyzeStream]). Sender processing belongs in rtt.
//
// A deadline <= 0 gives 0; a round cost <= 0 with a positive deadline gives math.MaxInt
// (unbounded).
func ARQRounds(deadline, rtt, nackDelay time.Duration) int {
	if deadline <= 0 {
		return 0
	}
	cost := rtt + nackDelay
	if cost <= 0 {
		return math.MaxInt
	}
	return int(deadline / cost)
}

// UpperBound is the upper limit of the Wilson score interval for a proportion p observed over
// n trials at normal quantile z (Wilson 1927; Agresti & Coull 1998):
//
//	(p + z²/(2n) + z·sqrt(p(1-p)/n + z²/(4n²))) / (1 + z²/n)
//
// clamped to [0, 1]. n <= 0 gives 1 (nothing is known).
//
// Use: the Wilson interval of a measured rate m over n packets contains exactly those
// theoretical rates t that a two-sided score test at z does not reject, so the
// non-flaky assertion that a measured loss m is not significantly above theory t is
// LowerBound(m, n, z) <= t, and not significantly below is t <= UpperBound(m, n, z).
// The form measured <= UpperBound(t, n, z) (the interval around the theory) is a
// close, slightly more lenient approximation for small t (a hard zero theory still
// allows z²/(n+z²)). With z = [Z99] a correct implementation fails such an assertion in
// about 0.5% of runs per side; seeded lab runs are deterministic anyway.
func UpperBound(p float64, n int, z float64) float64 {
	if n <= 0 {
		return 1
	}
	c, h := wilson(p, n, z)
	return math.Min(1, c+h)
}

// LowerBound is the lower limit of the Wilson score interval (see [UpperBound]):
//
//	(p + z²/(2n) - z·sqrt(p(1-p)/n + z²/(4n²))) / (1 + z²/n)
//
// clamped to [0, 1]. n <= 0 gives 0.
func LowerBound(p float64, n int, z float64) float64 {
	if n <= 0 {
		return 0
	}
	c, h := wilson(p, n, z)
	return math.Max(0, c-h)
}

// wilson returns the centre and half-width of the Wilson score interval.
func wilson(p float64, n int, z float64) (centre, half float64) {
	p = math.Max(0, math.Min(1, p))
	nf := float64(n)
	z2 := z * z
	den := 1 + z2/nf
	centre = (p + z2/(2*nf)) / den
	half = math.Abs(z) * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return centre, half
}
