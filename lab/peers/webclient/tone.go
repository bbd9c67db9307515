package webclient

import (
	"errors"
	"math"
	"slices"
)

// toneAmplitude is the tone's peak: -12 dBFS, loud enough to survive G.711, far from clipping.
const toneAmplitude = 0.25 * math.MaxInt16

var (
	// ErrNoTone: too little decodable audio has arrived to estimate a frequency (under 10
	// cycles of a contiguous signal), or it has no zero crossings (silence).
	ErrNoTone = errors.New("webclient: no tone in the received audio")
	// ErrUndecodable: the negotiated audio codec is one the client cannot decode (Opus: there
	// is no Go Opus codec in the module's dependencies), so content cannot be checked.
	ErrUndecodable = errors.New("webclient: received audio codec cannot be decoded")
)

// sine fills out with a sine of hz sampled at rate, starting at sample index first, so that
// consecutive frames join without a phase jump.
func sine(out []int16, hz float64, rate uint32, first uint64) {
	for i := range out {
		t := float64(first+uint64(i)) / float64(rate)
		out[i] = int16(toneAmplitude * math.Sin(2*math.Pi*hz*t))
	}
}

// decodedFrame is one received G.711 frame, decoded, kept for the content checks.
type decodedFrame struct {
	ts      uint32
	samples []int16
}

// estimateFrequency estimates the frequency of a tone from decoded frames (in any order, with
// gaps): frames whose timestamps follow each other form runs of contiguous signal, and in each
// run the positive-going zero crossings, placed between samples by linear interpolation, give
// whole cycles over a measured time. Runs are pooled: cycles / seconds. Splitting at gaps (a
// lost packet, a DTMF event) keeps a phase jump from counting as a crossing.
func estimateFrequency(frames []decodedFrame, rate uint32) (float64, error) {
	if len(frames) == 0 || rate == 0 {
		return 0, ErrNoTone
	}
	// Order by timestamp, relative to the newest frame so that a wrap of the 32-bit timestamp
	// does not disorder them.
	ref := frames[len(frames)-1].ts
	sorted := slices.Clone(frames)
	slices.SortFunc(sorted, func(a, b decodedFrame) int {
		return int(int32(a.ts-ref)) - int(int32(b.ts-ref))
	})
	var cycles, seconds float64
	var run []int16
	flush := func() {
		c, s := crossings(run, rate)
		cycles += c
		seconds += s
		run = run[:0]
	}
	for i, f := range sorted {
		if i > 0 {
			prev := sorted[i-1]
			switch next := prev.ts + uint32(len(prev.samples)); {
			case f.ts == prev.ts:
				continue // a duplicate
			case f.ts != next:
				flush()
			}
		}
		run = append(run, f.samples...)
	}
	flush()
	if cycles < 10 || seconds <= 0 {
		return 0, ErrNoTone
	}
	return cycles / seconds, nil
}

// crossings returns the whole cycles between the first and the last positive-going zero
// crossing of s, and the time they span.
func crossings(s []int16, rate uint32) (cycles, seconds float64) {
	first, last := -1.0, -1.0
	n := 0
	for i := 1; i < len(s); i++ {
		a, b := float64(s[i-1]), float64(s[i])
		if a < 0 && b >= 0 {
			at := float64(i-1) + (-a)/(b-a)
			if first < 0 {
				first = at
			}
			last = at
			n++
		}
	}
	if n < 2 {
		return 0, 0
	}
	return float64(n - 1), (last - first) / float64(rate)
}
