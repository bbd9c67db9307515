// Package vp8synth is the lab's synthetic VP8 video source, shared by the lab peers (the WebRTC
// client and the SIP phone): frames whose sizes follow a target bitrate, key frames at the start,
// periodically and on request, cut into RTP payloads with a VP8 payload descriptor (RFC 7741).
// The payload is random bytes behind a valid VP8 frame tag: a pass-through gateway or PBX carries
// it; a decoder would show noise.
package vp8synth

import (
	"math"
	"math/rand/v2"
	"time"
)

const (
	// MaxPayload bounds one video RTP payload (descriptor included), below the usual MTU once
	// RTP, SRTP and header extensions are added.
	MaxPayload = 1100
	// ClockRate is VP8's RTP clock.
	ClockRate = 90000
	// keyFrameScale is how much larger a key frame is than the average frame (libvpx's key
	// frames are 3-10 times an inter frame, depending on content and bitrate).
	keyFrameScale = 4
	// minFrame is the smallest frame: a tag, a header and a few bytes of skipped macroblocks.
	minFrame = 16
	// horizon is how long the rate control takes to pay back what a frame overshot (a key frame
	// above all), in seconds: libvpx's buffer is a second or so, its reaction to a new target
	// immediate.
	horizon = 1.0 / 3
	// noiseSigma is the spread of the frame sizes around the rate control's choice (log-normal:
	// 0.2 gives about +-20%), complexityTau and complexitySigma a slow drift of the content's
	// complexity (motion, detail) that the rate control follows. Together: 1 s windows of a
	// steady target average within 10% of it nine times out of ten, 3 s windows within 4%.
	noiseSigma      = 0.2
	complexityTau   = 2 * time.Second
	complexitySigma = 0.15
)

// Source produces the frames of a synthetic VP8 stream whose sizes follow a target bitrate the
// way a real encoder's do: a buffer-based rate control spends the target's bytes per frame, a
// key frame (at the start, every keyEvery, on request) costs several frames' worth that the
// following inter frames pay back within a third of a second, sizes vary frame to frame (log-normal
// noise) and with a slowly drifting content complexity, and a new target (SetBitrate) applies
// from the next frame. The long-run average is the target. It is not safe for concurrent use.
type Source struct {
	rng        *rand.Rand
	fps        int
	keyEvery   time.Duration
	bitrate    int
	debt       float64 // bytes produced beyond the target's budget so far
	complexity float64 // log of the content's current complexity (mean 0)
	lastKey    time.Time
	started    bool
}

// NewSource returns a source of fps frames a second averaging bitrate bit/s, with a key frame
// every keyEvery (0: only the first and requested ones). seed makes the frame sizes and
// contents reproducible.
func NewSource(seed uint64, bitrate, fps int, keyEvery time.Duration) *Source {
	return &Source{rng: rand.New(rand.NewPCG(seed, 2)), fps: max(fps, 1), keyEvery: keyEvery, bitrate: max(bitrate, 0)}
}

// SetBitrate changes the target bitrate (bit/s); the next frame follows it. What the rate
// control owes keeps its duration at the new rate (as an encoder's buffer level does), so a
// drop is not starved by bytes owed at the higher rate.
func (s *Source) SetBitrate(bitrate int) {
	bitrate = max(bitrate, 0)
	if s.bitrate > 0 {
		s.debt *= float64(bitrate) / float64(s.bitrate)
	}
	s.bitrate = bitrate
}

// Bitrate is the current target bitrate, bit/s.
func (s *Source) Bitrate() int { return s.bitrate }

// Interval is the time between two frames.
func (s *Source) Interval() time.Duration { return time.Second / time.Duration(s.fps) }

// TimestampStep is how far the 90 kHz RTP timestamp advances per frame.
func (s *Source) TimestampStep() uint32 { return uint32(ClockRate / s.fps) }

// Next returns the frame due at now: a key frame at the start, every keyEvery and when forceKey
// is set (a PLI or FIR arrived); its size follows the rate control (see Source).
func (s *Source) Next(now time.Time, forceKey bool) (frame []byte, key bool) {
	key = forceKey || !s.started || (s.keyEvery > 0 && now.Sub(s.lastKey) >= s.keyEvery)
	s.started = true
	budget := float64(s.bitrate) / 8 / float64(s.fps) // bytes per frame at the target
	// The content's complexity drifts (an Ornstein-Uhlenbeck walk in log space).
	a := math.Exp(-float64(s.Interval()) / float64(complexityTau))
	s.complexity = a*s.complexity + math.Sqrt(1-a*a)*complexitySigma*s.rng.NormFloat64()
	noise := math.Exp(noiseSigma*s.rng.NormFloat64() - noiseSigma*noiseSigma/2)
	var size float64
	if key {
		s.lastKey = now
		size = budget * keyFrameScale * noise
	} else {
		// Pay back the debt over the horizon; a rate control never stops a stream altogether,
		// nor overshoots much to use up an unspent budget.
		pay := 1 - s.debt/(budget*horizon*float64(s.fps)+1)
		size = budget * min(max(pay, 0.1), 1.5) * math.Exp(s.complexity-complexitySigma*complexitySigma/2) * noise
	}
	size = max(size, minFrame)
	s.debt += size - budget
	// Bound the memory: a long stall (target 0) or a collapse of the target does not leave a
	// debt that starves the stream for seconds; an unspent budget is not saved up either.
	s.debt = min(max(s.debt, -budget*horizon*float64(s.fps)), 2*float64(s.bitrate)/8+keyFrameScale*budget)
	frame = make([]byte, int(size))
	for i := range frame {
		frame[i] = byte(s.rng.Uint32())
	}
	// VP8 frame tag (RFC 6386 9.1): bit 0 is 0 for a key frame, show_frame set; a key frame
	// carries the start code and 640x480.
	frame[0] = 0x11
	if key {
		frame[0] = 0x10
		copy(frame[3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01})
	}
	return frame, key
}

// Packetize cuts a frame into RTP payloads of at most MaxPayload bytes, each behind a one-byte
// VP8 payload descriptor (S set on the first). The marker belongs on the last one's packet.
func Packetize(frame []byte) [][]byte {
	const chunk = MaxPayload - 1
	var out [][]byte
	for off := 0; off < len(frame); off += chunk {
		end := min(off+chunk, len(frame))
		desc := byte(0)
		if off == 0 {
			desc = 0x10 // S: start of the partition
		}
		payload := make([]byte, 0, 1+end-off)
		out = append(out, append(append(payload, desc), frame[off:end]...))
	}
	return out
}

// KeyFrameStart reports, for the first packet of a VP8 frame (S set, partition 0), whether the
// frame is a key frame; ok is false for other packets.
func KeyFrameStart(p []byte) (key, ok bool) {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return false, false
	}
	i := 1
	if p[0]&0x80 != 0 { // X: extensions
		if len(p) < 2 {
			return false, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return false, false
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX
			i++
		}
	}
	if len(p) <= i {
		return false, false
	}
	return p[i]&0x01 == 0, true
}
