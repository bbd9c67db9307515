package h264synth

import (
	"testing"
	"time"
)

// TestRoundTrip: every NAL unit of a stream arrives intact through packetization (single NAL
// units, STAP-A, FU-A) and reassembly; a corrupted byte and a lost fragment are caught.
func TestRoundTrip(t *testing.T) {
	src := NewSource(1, 500_000, 25, time.Second)
	var d Depacketizer
	now := time.Unix(0, 0)
	var seq uint16
	var units, keys, fua, stap uint64
	for i := range 100 {
		au, key := src.Next(now.Add(time.Duration(i)*src.Interval()), false)
		if key {
			keys++
			units += 3
		} else {
			units++
		}
		for _, p := range Packetize(au) {
			if len(p) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(p))
			}
			switch p[0] & 0x1f {
			case typeFUA:
				fua++
			case typeSTAPA:
				stap++
			}
			d.Push(seq, p)
			seq++
		}
	}
	s := d.Stats()
	if s.NALUnits != units || s.Corrupt != 0 || s.IDR != keys || s.SPS != keys || s.PPS != keys || keys < 4 {
		t.Errorf("stats %+v, want %d units, %d key frames", s, units, keys)
	}
	if fua == 0 || stap != keys {
		t.Errorf("%d FU-A and %d STAP-A packets (%d key frames)", fua, stap, keys)
	}

	// A flipped byte in a single NAL unit packet is caught.
	au, _ := src.Next(now.Add(time.Hour), false)
	ps := Packetize(au)
	ps[0][len(ps[0])/2] ^= 0x02
	for _, p := range ps {
		d.Push(seq, p)
		seq++
	}
	if got := d.Stats().Corrupt; got != 1 {
		t.Errorf("%d corrupt after a flipped byte, want 1", got)
	}
	// A lost FU-A fragment drops that unit and nothing else.
	for {
		au, key := src.Next(now.Add(2*time.Hour), true)
		ps := Packetize(au)
		if !key || len(ps) < 4 {
			continue
		}
		before := d.Stats()
		for i, p := range ps {
			if i != 2 {
				d.Push(seq, p)
			}
			seq++
		}
		after := d.Stats()
		if after.IDR != before.IDR || after.SPS != before.SPS+1 || after.Corrupt != before.Corrupt {
			t.Errorf("after a lost fragment: %+v (before %+v)", after, before)
		}
		break
	}
}
