package vp8synth

import (
	"math"
	"testing"
	"time"
)

func TestVP8KeyFrame(t *testing.T) {
	for _, c := range []struct {
		p       []byte
		key, ok bool
	}{
		{[]byte{0x10, 0x10}, true, true},
		{[]byte{0x10, 0x11}, false, true},
		{[]byte{0x00, 0x10}, false, false},                 // not a frame start
		{[]byte{0x90, 0x80, 0x81, 0x02, 0x10}, true, true}, // X, I with a 15-bit picture id
		{[]byte{0x90, 0xE0, 0x05, 0x07, 0x20, 0x11}, false, true},
	} {
		if key, ok := KeyFrameStart(c.p); key != c.key || ok != c.ok {
			t.Errorf("% x: key %v ok %v", c.p, key, ok)
		}
	}
}

// TestSource: a key frame first, then inter frames, each cut into payloads under MaxPayload
// whose first has S set and starts the VP8 frame tag.
func TestSource(t *testing.T) {
	s := NewSource(1, 2_000_000, 25, time.Second)
	now := time.Now()
	for i := range 30 {
		frame, key := s.Next(now.Add(time.Duration(i)*s.Interval()), false)
		if key != (i == 0 || i == 25) {
			t.Errorf("frame %d: key %v", i, key)
		}
		ps := Packetize(frame)
		total := 0
		for j, p := range ps {
			if len(p) > MaxPayload || (p[0] == 0x10) != (j == 0) {
				t.Fatalf("frame %d payload %d: %d bytes, descriptor %#x", i, j, len(p), p[0])
			}
			total += len(p) - 1
		}
		if k, ok := KeyFrameStart(ps[0]); !ok || k != key || total != len(frame) {
			t.Errorf("frame %d: key %v ok %v, %d of %d bytes", i, k, ok, total, len(frame))
		}
	}
	if _, key := s.Next(now, true); !key {
		t.Error("forced key frame")
	}
	if s.TimestampStep() != 3600 {
		t.Errorf("step %d", s.TimestampStep())
	}
}

// rateOver runs s for d from start (a PLI every pli frames when pli > 0) and returns the
// average bitrate of its frames, the end time and the spread of the inter frame sizes
// (standard deviation over mean).
func rateOver(s *Source, start time.Time, d time.Duration, pli int) (bps float64, end time.Time, spread float64) {
	var bytes, n, sum, sumSq float64
	frames := int(d / s.Interval())
	for i := range frames {
		frame, key := s.Next(start.Add(time.Duration(i)*s.Interval()), pli > 0 && i%pli == pli-1)
		bytes += float64(len(frame))
		if !key {
			n++
			sum += float64(len(frame))
			sumSq += float64(len(frame)) * float64(len(frame))
		}
	}
	mean := sum / n
	return bytes * 8 / d.Seconds(), start.Add(time.Duration(frames) * s.Interval()), math.Sqrt(sumSq/n-mean*mean) / mean
}

// TestSourceRate: over a minute the frames average the target within 5%, with periodic and
// requested key frames, at bitrates from an encoder's floor to a few Mbit/s; sizes vary as a
// real encoder's do (not constant, not wild).
func TestSourceRate(t *testing.T) {
	for _, c := range []struct {
		bitrate, fps int
		keyEvery     time.Duration
		pli          int
	}{
		{30_000, 15, 3 * time.Second, 0},
		{300_000, 30, 3 * time.Second, 0},
		{500_000, 30, time.Second, 0},
		{1_000_000, 25, 3 * time.Second, 47},
		{2_500_000, 30, 10 * time.Second, 0},
	} {
		s := NewSource(7, c.bitrate, c.fps, c.keyEvery)
		got, _, spread := rateOver(s, time.Now(), time.Minute, c.pli)
		if math.Abs(got-float64(c.bitrate)) > 0.05*float64(c.bitrate) {
			t.Errorf("%+v: %.0f bit/s", c, got)
		}
		if spread < 0.1 || spread > 0.8 {
			t.Errorf("%+v: inter frame sizes spread %.2f", c, spread)
		}
	}
}

// TestSourceSetBitrate: a new target applies at once: the average over the next second is
// within 15% of it (the rate control settles its buffer), and from then on within 5% (over
// the next three seconds), down and up.
func TestSourceSetBitrate(t *testing.T) {
	s := NewSource(3, 1_000_000, 30, 3*time.Second)
	now := time.Now()
	_, now, _ = rateOver(s, now, 5*time.Second, 0)
	for _, target := range []int{250_000, 1_500_000, 100_000, 800_000} {
		s.SetBitrate(target)
		if s.Bitrate() != target {
			t.Fatalf("bitrate %d", s.Bitrate())
		}
		var first, next float64
		first, now, _ = rateOver(s, now, time.Second, 0)
		next, now, _ = rateOver(s, now, 3*time.Second, 0)
		if math.Abs(first-float64(target)) > 0.15*float64(target) || math.Abs(next-float64(target)) > 0.05*float64(target) {
			t.Errorf("target %d: %.0f bit/s over the first second, %.0f over the next three", target, first, next)
		}
	}
}
