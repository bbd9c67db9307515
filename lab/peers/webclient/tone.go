package webclient

import (
	"errors"
	"math"

	"github.com/siprtc/siprtc/internal/tone"
)

// toneAmplitude is the tone's peak: -12 dBFS, loud enough to survive G.711, far from clipping.
const toneAmplitude = 0.25 * math.MaxInt16

var (
	// ErrNoTone: too little decodable audio has arrived to estimate a frequency (under 10
	// cycles of a contiguous signal), or it has no zero crossings (silence).
	ErrNoTone = tone.ErrNoTone
	// ErrUndecodable: the negotiated audio codec is one the client cannot decode (Opus: there
	// is no Go Opus codec in the module's dependencies), so content cannot be checked.
	ErrUndecodable = errors.New("webclient: received audio codec cannot be decoded")
)

// sine fills out with a sine of hz sampled at rate, starting at sample index first, so that
// consecutive frames join without a phase jump.
func sine(out []int16, hz float64, rate uint32, first uint64) {
	tone.Sine(out, hz, toneAmplitude, rate, first)
}
