package tone

import (
	"errors"
	"math"
	"testing"

	"github.com/siprtc/siprtc/internal/g711"
)

// TestEstimate: the estimator finds a G.711 tone through gaps, reordering and duplicates.
func TestEstimate(t *testing.T) {
	for _, hz := range []float64{300, 440, 1000, 2600, 3400} {
		var frames []Frame
		pcm := make([]int16, 160)
		for i := range 100 {
			if i%7 == 3 {
				continue // a lost packet
			}
			Sine(pcm, hz, 0.25*math.MaxInt16, 8000, uint64(i)*160)
			f := Frame{TS: uint32(0xFFFFF000 + i*160), Samples: make([]int16, 160)} // wraps
			for j, s := range pcm {
				f.Samples[j] = g711.DecodeULaw(g711.EncodeULaw(s))
			}
			frames = append(frames, f)
		}
		frames[10], frames[11] = frames[11], frames[10]
		frames = append(frames, frames[20])
		got, err := Estimate(frames, 8000)
		if err != nil || math.Abs(got-hz) > hz*0.002 {
			t.Errorf("%v Hz: estimated %v, %v", hz, got, err)
		}
	}
	if _, err := Estimate([]Frame{{TS: 0, Samples: make([]int16, 160)}}, 8000); !errors.Is(err, ErrNoTone) {
		t.Errorf("silence: %v", err)
	}
}

// TestWindow keeps the newest n frames.
func TestWindow(t *testing.T) {
	var w []Frame
	for i := range 10 {
		w = Window(w, Frame{TS: uint32(i)}, 3)
	}
	if len(w) != 3 || w[0].TS != 7 || w[2].TS != 9 {
		t.Errorf("window %+v, want timestamps 7, 8, 9", w)
	}
}
