package metrics

import (
	"math"
	"testing"
)

func TestARQResidualLoss(t *testing.T) {
	near(t, "p=0.1,k=2", ARQResidualLoss(0.1, 2), 0.001, 1e-15) // 0.1^3
	near(t, "p=0.05,k=0", ARQResidualLoss(0.05, 0), 0.05, 1e-15)
	near(t, "p=0.2,k=1", ARQResidualLoss(0.2, 1), 0.04, 1e-15)
	near(t, "k<0 is 0", ARQResidualLoss(0.3, -4), 0.3, 1e-15)
	near(t, "p>1 clamps", ARQResidualLoss(1.5, 3), 1, 0)
	near(t, "p<0 clamps", ARQResidualLoss(-1, 3), 0, 0)
	// Unbounded rounds (ARQRounds' MaxInt) must not overflow k+1.
	near(t, "k=MaxInt", ARQResidualLoss(0.5, math.MaxInt), 0, 0)
}

func TestARQRounds(t *testing.T) {
	for _, c := range []struct {
		deadline, rtt, nack float64 // ms
		want                int
	}{
		{200, 60, 20, 2}, // rounds complete at 80, 160 ms; the third at 240 is too late
		{160, 60, 20, 2}, // a round completing exactly at the deadline counts
		{159, 60, 20, 1},
		{79, 60, 20, 0},
		{1000, 100, 0, 10},
		{0, 60, 20, 0},
		{-5, 60, 20, 0},
	} {
		eq(t, "ARQRounds", ARQRounds(ms(c.deadline), ms(c.rtt), ms(c.nack)), c.want)
	}
	eq(t, "free rounds", ARQRounds(ms(100), 0, 0), math.MaxInt)
}

func TestWilson(t *testing.T) {
	// p = 0: the interval is [0, z²/(n+z²)]; with z = 1.96 and n = 100:
	// 3.841459/103.841459 = 0.0369935.
	near(t, "upper p=0", UpperBound(0, 100, Z95), 0.0369934982, 1e-9)
	near(t, "lower p=0", LowerBound(0, 100, Z95), 0, 1e-15)
	// p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96·sqrt(0.0025 + 3.841459/40000)/1.03841459
	// = 1.96·0.0509510/1.0384146 = 0.0961685.
	near(t, "upper p=.5", UpperBound(0.5, 100, Z95), 0.5961684697, 1e-9)
	near(t, "lower p=.5", LowerBound(0.5, 100, Z95), 0.4038315303, 1e-9)
	// p = 0.02, n = 1000, z = 2.5758: z² = 6.634897, den = 1.006634897,
	// centre = (0.02 + 0.0033174)/den = 0.0231636,
	// half = 2.5758293·sqrt(1.96e-5 + 1.6587e-6)/den = 0.0117984.
	near(t, "upper p=.02", UpperBound(0.02, 1000, Z99), 0.0349619032, 1e-9)
	near(t, "lower p=.02", LowerBound(0.02, 1000, Z99), 0.0113656151, 1e-9)
	// p = 1: the interval is [n/(n+z²), 1].
	near(t, "lower p=1", LowerBound(1, 100, Z95), 100/103.841458820694, 1e-9)
	near(t, "upper p=1", UpperBound(1, 100, Z95), 1, 1e-15)
	eq(t, "upper n=0", UpperBound(0.1, 0, Z99), 1.0)
	eq(t, "lower n=0", LowerBound(0.1, 0, Z99), 0.0)
	// The use the doc recommends: 12 losses in 1000 against a theory of 0.5% is
	// significant at 99% (LowerBound > theory), 9 is not.
	if LowerBound(0.012, 1000, Z99) <= 0.005 {
		t.Error("12/1000 should be significantly above 0.5%")
	}
	if LowerBound(0.009, 1000, Z99) > 0.005 {
		t.Error("9/1000 should not be significantly above 0.5%")
	}
}
