package sipphone

// opusFrameBytes is the size of the Opus packets the phone sends: what a 32 kbit/s encoder
// produces in 20 ms.
const opusFrameBytes = 80

// opusSilence is the 20 ms CELT-only frame libopus emits for digital silence (after the TOC
// byte: the two range-coder bytes).
var opusSilence = [...]byte{0xFF, 0xFE}

// opusFrame returns a 20 ms Opus packet (RFC 6716) of size bytes (at least 3) that decodes to
// silence: there is no Opus encoder among the module's dependencies, so the phone sends what
// libopus sends for silence, padded to a real encoder's size. A larger size is a code 3 packet
// with one frame and padding: TOC 0xFB, frame count byte 0x41 (no VBR, padding, M=1), the
// padding length bytes (255 for each 254 bytes and another length byte, then the rest), the
// frame, the padding.
func opusFrame(size int) []byte {
	if size <= 3+len(opusSilence) {
		return append([]byte{0xF8}, opusSilence[:]...)
	}
	r := size - 2 - len(opusSilence) - 1
	full, v := r/255, r%255
	out := make([]byte, 0, size)
	out = append(out, 0xFB, 0x41)
	for range full {
		out = append(out, 255)
	}
	out = append(out, byte(v))
	out = append(out, opusSilence[:]...)
	return append(out, make([]byte, 254*full+v)...)
}
