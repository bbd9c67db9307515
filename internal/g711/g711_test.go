package g711

import (
	"math"
	"testing"
)

func TestG711RoundTrip(t *testing.T) {
	if got := EncodeULaw(0); got != 0xFF {
		t.Errorf("mu-law of silence %#x, want 0xff", got)
	}
	if got := EncodeALaw(0); got != 0xD5 {
		t.Errorf("A-law of silence %#x, want 0xd5", got)
	}
	for s := math.MinInt16; s <= math.MaxInt16; s += 7 {
		in := int16(s)
		for name, back := range map[string]int16{
			"PCMU": DecodeULaw(EncodeULaw(in)),
			"PCMA": DecodeALaw(EncodeALaw(in)),
		} {
			// G.711 keeps about 12 bits: the error grows with the magnitude, under 1/16 of it.
			tolerance := math.Max(64, math.Abs(float64(in))/16)
			if diff := math.Abs(float64(back) - float64(in)); diff > tolerance {
				t.Fatalf("%s: %d decodes back as %d", name, in, back)
			}
		}
	}
}
