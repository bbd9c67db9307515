package vp8synth

import (
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
