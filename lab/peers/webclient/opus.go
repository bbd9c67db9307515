package webclient

// Opus: the module has no Go Opus encoder or decoder (pion ships none, and adding a cgo libopus
// binding is out of scope), so the client cannot put a tone into Opus nor check Opus content.
// What it sends when Opus is negotiated is honest about that: well-formed Opus packets (RFC 6716)
// that decode to silence, padded to the size a real encoder would produce at the configured
// bitrate, so packet rates, sizes, timestamps, loss and repair are realistic and any decoder on
// the path (a PBX that transcodes) gets valid input. Content checks need G.711: negotiate PCMU
// or PCMA for them (the client's default preference).

// opusSilence is the 20 ms CELT-only frame libopus emits for digital silence (TOC 0xF8 =
// configuration 31, fullband 20 ms, mono, one frame; then the two range-coder bytes).
var opusSilence = [...]byte{0xFF, 0xFE}

// opusFrame returns a 20 ms Opus packet of size bytes (at least 3) that decodes to silence. A
// larger size uses a code 3 packet (RFC 6716 3.2.5) with one frame and padding: TOC 0xFB,
// frame count byte 0x41 (no VBR, padding, M=1), the padding length bytes, the frame, then the
// padding.
func opusFrame(size int) []byte {
	if size <= 3+len(opusSilence) {
		return append([]byte{0xF8}, opusSilence[:]...)
	}
	// 2 header bytes + L length bytes + frame + P padding bytes = size, where the first L-1
	// length bytes are 255 (254 bytes of padding each, and another length byte follows) and
	// the last one v is 0..254: size-4 = 255*(L-1) + v + 1.
	r := size - 2 - len(opusSilence) - 1
	full, v := r/255, r%255
	lengths := make([]byte, 0, full+1)
	for range full {
		lengths = append(lengths, 255)
	}
	lengths = append(lengths, byte(v))
	pad := 254*full + v
	out := make([]byte, 0, size)
	out = append(out, 0xFB, 0x41)
	out = append(out, lengths...)
	out = append(out, opusSilence[:]...)
	return append(out, make([]byte, pad)...)
}
