// Package tone makes and measures the lab's test tones, shared by the lab peers (the WebRTC
// client and the SIP phone): a sine generator whose consecutive frames join without a phase
// jump, and an estimator of the dominant frequency of decoded audio received as RTP frames (in
// any order, with gaps and duplicates).
package tone

import (
	"errors"
	"math"
	"slices"
)

// ErrNoTone: too little decodable audio to estimate a frequency (under 10 cycles of a
// contiguous signal), or audio without zero crossings (silence).
var ErrNoTone = errors.New("tone: no tone in the received audio")

// Frame is one received audio frame, decoded: its RTP timestamp and its samples.
type Frame struct {
	TS      uint32
	Samples []int16
}

// Sine fills out with a sine of hz and peak amplitude sampled at rate, starting at sample index
// first, so that consecutive frames join without a phase jump.
func Sine(out []int16, hz, amplitude float64, rate uint32, first uint64) {
	for i := range out {
		t := float64(first+uint64(i)) / float64(rate)
		out[i] = int16(amplitude * math.Sin(2*math.Pi*hz*t))
	}
}

// Window appends f to frames, dropping the oldest so that at most n remain.
func Window(frames []Frame, f Frame, n int) []Frame {
	if len(frames) >= n {
		frames = append(frames[:0], frames[len(frames)-n+1:]...)
	}
	return append(frames, f)
}

// Estimate estimates the frequency of a tone from decoded frames (in any order, with gaps):
// frames whose timestamps follow each other form runs of contiguous signal, and in each run the
// positive-going zero crossings, placed between samples by linear interpolation, give whole
// cycles over a measured time. Runs are pooled: cycles / seconds. Splitting at gaps (a lost
// packet, a DTMF event) keeps a phase jump from counting as a crossing.
func Estimate(frames []Frame, rate uint32) (float64, error) {
	if len(frames) == 0 || rate == 0 {
		return 0, ErrNoTone
	}
	// Order by timestamp, relative to the newest frame so that a wrap of the 32-bit timestamp
	// does not disorder them.
	ref := frames[len(frames)-1].TS
	sorted := slices.Clone(frames)
	slices.SortFunc(sorted, func(a, b Frame) int {
		return int(int32(a.TS-ref)) - int(int32(b.TS-ref))
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
			switch next := prev.TS + uint32(len(prev.Samples)); {
			case f.TS == prev.TS:
				continue // a duplicate
			case f.TS != next:
				flush()
			}
		}
		run = append(run, f.Samples...)
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
