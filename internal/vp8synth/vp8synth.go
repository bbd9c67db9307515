// Package vp8synth is the lab's synthetic VP8 video source, shared by the lab peers (the WebRTC
// client and the SIP phone): frames whose sizes follow a target bitrate, key frames at the start,
// periodically and on request, cut into RTP payloads with a VP8 payload descriptor (RFC 7741).
// The payload is random bytes behind a valid VP8 frame tag: a pass-through gateway or PBX carries
// it; a decoder would show noise.
package vp8synth

import (
	"math/rand/v2"
	"time"
)

const (
	// MaxPayload bounds one video RTP payload (descriptor included), below the usual MTU once
	// RTP, SRTP and header extensions are added.
	MaxPayload = 1100
	// ClockRate is VP8's RTP clock.
	ClockRate = 90000
	// keyFrameScale is how much larger a key frame is than the average frame.
	keyFrameScale = 3
)

// Source produces the frames of a synthetic VP8 stream. It is not safe for concurrent use.
type Source struct {
	rng        *rand.Rand
	fps        int
	keyEvery   time.Duration
	avg        float64 // bytes per frame on average
	interScale float64
	lastKey    time.Time
}

// NewSource returns a source of fps frames a second averaging bitrate bit/s, with a key frame
// every keyEvery. seed makes the frame sizes and contents reproducible.
func NewSource(seed uint64, bitrate, fps int, keyEvery time.Duration) *Source {
	fps = max(fps, 1)
	interval := time.Second / time.Duration(fps)
	// Inter frames are scaled down so that the key frames keep the average on target.
	perKey := max(float64(keyEvery)/float64(interval), 2)
	return &Source{
		rng: rand.New(rand.NewPCG(seed, 2)), fps: fps, keyEvery: keyEvery,
		avg:        float64(bitrate) / 8 / float64(fps),
		interScale: max((perKey-keyFrameScale)/(perKey-1), 0.2),
	}
}

// Interval is the time between two frames.
func (s *Source) Interval() time.Duration { return time.Second / time.Duration(s.fps) }

// TimestampStep is how far the 90 kHz RTP timestamp advances per frame.
func (s *Source) TimestampStep() uint32 { return uint32(ClockRate / s.fps) }

// Next returns the frame due at now: a key frame at the start, every keyEvery and when forceKey
// is set (a PLI or FIR arrived); its size follows the bitrate with +-30% noise.
func (s *Source) Next(now time.Time, forceKey bool) (frame []byte, key bool) {
	key = forceKey || s.lastKey.IsZero() || now.Sub(s.lastKey) >= s.keyEvery
	size := s.avg * s.interScale * (0.7 + 0.6*s.rng.Float64())
	if key {
		size, s.lastKey = s.avg*keyFrameScale, now
	}
	frame = make([]byte, max(int(size), 16))
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
