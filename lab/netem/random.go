package netem

import (
	"math"
	"math/rand/v2"
	"time"
)

// lose decides one packet's fate under model m, drawing from rng; bad is the Gilbert-Elliott
// state, carried from packet to packet. The decision for a packet depends only on the stream's
// seed and how many packets came before it, so the same seed and traffic give the same pattern.
//
// Gilbert-Elliott: the packet is lost with the current state's loss probability, then the state
// moves (Good -> Bad with P, Bad -> Good with R), so a burst in Bad lasts 1/R packets on average.
func lose(m LossModel, rng *rand.Rand, bad *bool) bool {
	switch m.Kind {
	case LossBernoulli:
		return m.Rate > 0 && rng.Float64() < m.Rate
	case LossGilbertElliott:
		var lost bool
		if *bad {
			lost = rng.Float64() < m.LossBad
			if rng.Float64() < m.R {
				*bad = false
			}
		} else {
			lost = rng.Float64() < m.LossGood
			if rng.Float64() < m.P {
				*bad = true
			}
		}
		return lost
	default:
		return false
	}
}

// defaultParetoShape is the Pareto jitter's shape when DelayModel.Shape is 0.
const defaultParetoShape = 2.5

// maxJitter bounds a single draw (a Pareto tail can be absurd): no packet waits an hour.
const maxJitter = time.Hour

// drawJitter draws one packet's extra delay from m's distribution:
//   - uniform: [0, 2*Mean);
//   - normal: Mean + Std*N(0,1), draws below 0 count as 0 (so with Std comparable to Mean the
//     mean is a little above Mean);
//   - exponential: mean Mean;
//   - pareto: Pareto type II (Lomax), which starts at 0 like the others: scale Mean*(Shape-1),
//     so its mean is Mean; Shape 2.5 by default.
func drawJitter(m DelayModel, rng *rand.Rand) time.Duration {
	mean := float64(m.Mean)
	var v float64
	switch m.Jitter {
	case JitterUniform:
		v = rng.Float64() * 2 * mean
	case JitterNormal:
		v = mean + rng.NormFloat64()*float64(m.Std)
	case JitterExponential:
		v = rng.ExpFloat64() * mean
	case JitterPareto:
		shape := m.Shape
		if shape == 0 {
			shape = defaultParetoShape
		}
		u := 1 - rng.Float64() // (0, 1]
		v = mean * (shape - 1) * (math.Pow(u, -1/shape) - 1)
	default:
		return 0
	}
	if v <= 0 {
		return 0
	}
	if v >= float64(maxJitter) {
		return maxJitter
	}
	return time.Duration(v)
}

// jitterMean is the mean of m's jitter draw (what the stream link's RTT estimate uses).
func jitterMean(m DelayModel) time.Duration {
	if m.Jitter == JitterNone {
		return 0
	}
	return m.Mean
}
