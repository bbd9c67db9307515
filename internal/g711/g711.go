// Package g711 is G.711 companding (PCMU mu-law, PCMA A-law) for the lab peers, which encode
// their test tones themselves and decode what they receive to check content, not only counts.
package g711

// G.711 companding after the ITU-T reference (the public-domain Sun g711.c).

var (
	ulawSegEnd = [8]int{0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF}
	alawSegEnd = [8]int{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}
)

func segment(v int, ends *[8]int) int {
	for i, end := range ends {
		if v <= end {
			return i
		}
	}
	return 8
}

// EncodeULaw encodes one 16-bit sample as mu-law (PCMU).
func EncodeULaw(sample int16) byte {
	const bias, clip = 0x84 >> 2, 8159
	v := int(sample) >> 2
	mask := 0xFF
	if v < 0 {
		v = -v
		mask = 0x7F
	}
	v = min(v, clip) + bias
	seg := segment(v, &ulawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	return byte((seg<<4 | (v>>(seg+1))&0x0F) ^ mask)
}

// DecodeULaw decodes one mu-law byte.
func DecodeULaw(u byte) int16 {
	const bias = 0x84
	u = ^u
	t := (int(u&0x0F) << 3) + bias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(bias - t)
	}
	return int16(t - bias)
}

// EncodeALaw encodes one 16-bit sample as A-law (PCMA).
func EncodeALaw(sample int16) byte {
	v := int(sample) >> 3
	mask := 0xD5
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := segment(v, &alawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0x0F
	} else {
		a |= (v >> seg) & 0x0F
	}
	return byte(a ^ mask)
}

// DecodeALaw decodes one A-law byte.
func DecodeALaw(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
