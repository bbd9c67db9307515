// Package h264synth is the lab's synthetic H.264 video, shared by the lab peers (the WebRTC
// client and the SIP phone): access units whose sizes follow a target bitrate (the frame sizes of
// internal/vp8synth), an IDR with its SPS and PPS at the start, periodically and on request,
// packetized per RFC 6184 (packetization-mode 1: single NAL units, STAP-A for the SPS and PPS,
// FU-A for large slices) by pion's H264Payloader. The slices are noise a decoder would reject,
// but every NAL unit ends with a checksum of itself, so a receiver (Depacketizer) checks that
// each one crossed the gateway and the PBX intact, whatever packets carried it.
package h264synth

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/pion/rtp/codecs"

	"github.com/siprtc/siprtc/internal/vp8synth"
)

const (
	// ClockRate is H.264's RTP clock.
	ClockRate = 90000
	// MaxPayload bounds one RTP payload, as vp8synth's.
	MaxPayload = vp8synth.MaxPayload
	// Fmtp is the format the lab's peers offer and accept: constrained baseline 3.1,
	// non-interleaved mode (the gateway's own H.264 format).
	Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
)

// NAL unit types (RFC 6184 5.2, H.264 7.4.1).
const (
	TypeSlice = 1
	TypeIDR   = 5
	TypeSPS   = 7
	TypePPS   = 8
	typeSTAPA = 24
	typeFUA   = 28
)

// checkLen is the checksum's length at the end of each NAL unit: CRC-32 in hex digits, so that
// it never forms a start code.
const checkLen = 8

var (
	sps = []byte{0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40, 0x50, 0x1e, 0x90, 0x0f, 0x08, 0x84, 0x6a}
	pps = []byte{0x68, 0xce, 0x3c, 0x80}
)

// Source produces a synthetic H.264 stream (see the package documentation). It is not safe for
// concurrent use.
type Source struct{ vp8 *vp8synth.Source }

// NewSource returns a source of fps frames a second averaging bitrate bit/s, with an IDR every
// keyEvery (0: only the first and requested ones); seed makes it reproducible.
func NewSource(seed uint64, bitrate, fps int, keyEvery time.Duration) *Source {
	return &Source{vp8: vp8synth.NewSource(seed, bitrate, fps, keyEvery)}
}

// SetBitrate changes the target bitrate (bit/s) from the next frame.
func (s *Source) SetBitrate(bitrate int) { s.vp8.SetBitrate(bitrate) }

// Interval is the time between two frames.
func (s *Source) Interval() time.Duration { return s.vp8.Interval() }

// TimestampStep is how far the 90 kHz RTP timestamp advances per frame.
func (s *Source) TimestampStep() uint32 { return s.vp8.TimestampStep() }

// Next returns the access unit due at now, in Annex B: SPS, PPS and an IDR slice for a key frame
// (at the start, every keyEvery, when forceKey is set), one non-IDR slice otherwise.
func (s *Source) Next(now time.Time, forceKey bool) (au []byte, key bool) {
	frame, key := s.vp8.Next(now, forceKey)
	body := make([]byte, len(frame))
	for i, b := range frame {
		body[i] = b | 1 // no zero byte: no start code inside a NAL unit
	}
	start := []byte{0, 0, 0, 1}
	if key {
		au = append(au, start...)
		au = append(au, seal(sps)...)
		au = append(au, start...)
		au = append(au, seal(pps)...)
		au = append(au, start...)
		au = append(au, seal(append([]byte{0x65}, body...))...) // nal_ref_idc 3, IDR
		return au, true
	}
	au = append(au, start...)
	return append(au, seal(append([]byte{0x41}, body...))...), false // nal_ref_idc 2, slice
}

// seal appends the checksum of nal to it.
func seal(nal []byte) []byte {
	sum := fmt.Sprintf("%08x", crc32.ChecksumIEEE(nal))
	return append(append([]byte(nil), nal...), sum...)
}

// intact reports whether nal ends with the checksum of the rest.
func intact(nal []byte) bool {
	if len(nal) <= checkLen {
		return false
	}
	n := len(nal) - checkLen
	sum, err := strconv.ParseUint(string(nal[n:]), 16, 32)
	return err == nil && uint32(sum) == crc32.ChecksumIEEE(nal[:n])
}

// Packetize cuts an access unit into RTP payloads of at most MaxPayload bytes (RFC 6184
// packetization-mode 1). The marker belongs on the last one's packet.
func Packetize(au []byte) [][]byte {
	var p codecs.H264Payloader
	return p.Payload(MaxPayload, au)
}

// Stats are what a Depacketizer has seen.
type Stats struct {
	NALUnits uint64 // complete NAL units, intact or not
	Corrupt  uint64 // NAL units whose checksum does not match, and malformed packets
	IDR      uint64 // intact IDR slices: key frames
	SPS, PPS uint64 // intact parameter sets
}

// Depacketizer reassembles the NAL units of one RTP stream (single NAL unit, STAP-A and FU-A
// packets, RFC 6184) and checks each. A gap in the sequence numbers drops the fragmented unit it
// interrupts. It is not safe for concurrent use.
type Depacketizer struct {
	pkt     codecs.H264Packet
	inFU    bool
	lastSeq uint16
	started bool
	stats   Stats
}

// Push takes the next packet's payload and sequence number; it reports whether the packet
// completed an intact IDR slice.
func (d *Depacketizer) Push(seq uint16, payload []byte) (idr bool) {
	if d.started && seq != d.lastSeq+1 && d.inFU {
		d.pkt, d.inFU = codecs.H264Packet{}, false // the rest of an interrupted FU-A is useless
	}
	d.started, d.lastSeq = true, seq
	if len(payload) == 0 {
		d.stats.Corrupt++
		return false
	}
	if payload[0]&0x1f == typeFUA {
		if len(payload) < 2 {
			d.stats.Corrupt++
			return false
		}
		switch start := payload[1]&0x80 != 0; {
		case start:
			d.pkt, d.inFU = codecs.H264Packet{}, true
		case !d.inFU:
			return false // the middle of a unit whose start was lost
		}
		if payload[1]&0x40 != 0 {
			d.inFU = false
		}
	}
	out, err := d.pkt.Unmarshal(payload)
	if err != nil {
		d.stats.Corrupt++
		return false
	}
	for _, nal := range bytes.Split(out, []byte{0, 0, 0, 1}) {
		if len(nal) == 0 {
			continue
		}
		d.stats.NALUnits++
		if !intact(nal) {
			d.stats.Corrupt++
			continue
		}
		switch nal[0] & 0x1f {
		case TypeIDR:
			d.stats.IDR++
			idr = true
		case TypeSPS:
			d.stats.SPS++
		case TypePPS:
			d.stats.PPS++
		}
	}
	return idr
}

// Stats returns the counts so far.
func (d *Depacketizer) Stats() Stats { return d.stats }
