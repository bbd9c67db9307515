package sipphone

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/siprtc/siprtc/internal/h264synth"
	"github.com/siprtc/siprtc/internal/vp8synth"
)

// defaultVideoPT is the dynamic payload type the phone offers its video codec with.
const defaultVideoPT = 96

// keyFrameEvery is the synthetic video's key frame interval.
const keyFrameEvery = 3 * time.Second

// VideoStats are the counters of a call's video stream (Video option).
type VideoStats struct {
	Codec       string
	PayloadType uint8
	LocalAddr   netip.AddrPort
	RemoteAddr  netip.AddrPort // zero until the peer accepts video

	PacketsSent, FramesSent, KeyFramesSent uint64

	PacketsReceived, BytesReceived    uint64
	FramesReceived, KeyFramesReceived uint64 // frames by distinct timestamp; key frames by VP8 tag or H.264 IDR
	Invalid                           uint64 // datagrams that were neither RTP nor RTCP

	// NALUnits are the H.264 NAL units reassembled from what was received, CorruptNALUnits
	// those whose checksum (internal/h264synth) did not match, or malformed packets. VP8: 0.
	NALUnits, CorruptNALUnits uint64

	KeyFrameRequests uint64 // RTCP PLI and FIR received
	FastUpdates      uint64 // SIP INFO picture_fast_update received (also answered with a key frame)
}

// videoOptions is the Video option.
type videoOptions struct {
	codec        string
	bitrate, fps int
}

// Video makes the phone offer, and accept, a video stream besides audio: codec "VP8" or "H264"
// (packetization-mode 1, constrained baseline: h264synth.Fmtp), with PT 96 when the phone offers
// (the offer's payload type when it answers), sending the synthetic video of internal/vp8synth or
// internal/h264synth at bitrate bit/s and fps frames a second (zero: 300 kbit/s, 25 fps), key
// frames every 3 s and on RTCP PLI/FIR. Received video is counted in MediaStats.Video. Without
// it, the phone is audio only.
func Video(codec string, bitrate, fps int) Option {
	return func(o *options) {
		o.video = &videoOptions{codec: codec, bitrate: orDefault(bitrate, 300_000), fps: orDefault(fps, 25)}
		if isH264(codec) {
			o.video.codec = "H264"
		} else if isVP8(codec) {
			o.video.codec = "VP8"
		}
	}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// remoteVideo is what the phone uses of a peer's video m-line.
type remoteVideo struct {
	addr     netip.AddrPort // port 0: the stream is refused
	rtcpPort uint16
	formats  []videoFormat // the m-line's formats with an rtpmap, in the peer's order
}

// videoFormat is one format of a peer's video m-line.
type videoFormat struct {
	pt         uint8
	name, fmtp string
}

// find is the payload type of the first format of codec (VP8, or H264 in packetization-mode 1).
func (rv *remoteVideo) find(codec string) (uint8, bool) {
	for _, f := range rv.formats {
		if !strings.EqualFold(f.name, codec) {
			continue
		}
		if isH264(codec) && !strings.Contains(strings.ReplaceAll(f.fmtp, " ", ""), "packetization-mode=1") {
			continue
		}
		return f.pt, true
	}
	return 0, false
}

// videoState is where the phone stands with video, which decides its next m=video line.
type videoState int

const (
	videoOffer    videoState = iota // no remote description yet: offer the codec with PT 96
	videoAccepted                   // the peer has the codec on a live m-line
	videoRefused                    // the peer's video m-line cannot be used: answer with port 0
	videoAbsent                     // the peer's description has no video: no m=video line
)

// videoStream is a call's video RTP session, on its own port pair; RTCP is read on the next
// port and, multiplexed, on the RTP port.
type videoStream struct {
	conn, rtcpConn net.PacketConn
	local          netip.AddrPort
	opts           videoOptions
	seed           uint64
	keyFrame       atomic.Bool
	m              *Media

	mu        sync.Mutex
	state     videoState
	remote    netip.AddrPort
	pt        uint8
	stop      chan struct{}
	ssrc      uint32
	seq       uint16
	ts        uint32
	stats     VideoStats
	lastFrame map[uint32]uint32 // newest timestamp per source
	h264      map[uint32]*h264synth.Depacketizer
}

// newVideo binds the video port pair of m.
func (p *Phone) newVideo(m *Media) (*videoStream, error) {
	conn, rtcpConn, local, err := p.bindRTP()
	if err != nil {
		return nil, err
	}
	v := &videoStream{
		conn: conn, rtcpConn: rtcpConn, local: local, opts: *p.opts.video, m: m,
		seed: uint64(randUint32()), pt: defaultVideoPT,
		ssrc: randUint32(), seq: uint16(randUint32()), ts: randUint32(), lastFrame: map[uint32]uint32{},
		h264: map[uint32]*h264synth.Depacketizer{},
	}
	v.stats.LocalAddr, v.stats.Codec, v.stats.PayloadType = local, v.opts.codec, defaultVideoPT
	return v, nil
}

// line is the phone's next m=video line: nil for none.
func (v *videoStream) line() *videoLine {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch v.state {
	case videoAbsent:
		return nil
	case videoRefused:
		return &videoLine{port: 0, pt: v.pt, codec: v.opts.codec}
	}
	return &videoLine{port: int(v.local.Port()), pt: v.pt, codec: v.opts.codec}
}

// setRemote follows the peer's description: rv nil means it has no video.
func (v *videoStream) setRemote(rv *remoteVideo) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var pt uint8
	var ok bool
	if rv != nil {
		pt, ok = rv.find(v.opts.codec)
	}
	switch {
	case rv == nil:
		v.state, v.remote = videoAbsent, netip.AddrPort{}
	case !ok || rv.addr.Port() == 0:
		v.state, v.remote = videoRefused, netip.AddrPort{}
	default:
		v.state, v.remote, v.pt = videoAccepted, rv.addr, pt
		v.stats.PayloadType = pt
	}
	v.stats.RemoteAddr = v.remote
	if v.state != videoAccepted && v.stop != nil {
		close(v.stop)
		v.stop = nil
	}
}

// start starts the sender once the peer has accepted video (a no-op otherwise or if it runs).
func (v *videoStream) start() {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.state != videoAccepted || v.stop != nil {
		return
	}
	v.stop = make(chan struct{})
	v.keyFrame.Store(true)
	v.m.wg.Add(1)
	go v.send(v.stop)
}

func (v *videoStream) halt() {
	if v == nil {
		return
	}
	v.mu.Lock()
	if v.stop != nil {
		close(v.stop)
		v.stop = nil
	}
	v.mu.Unlock()
}

func (v *videoStream) closeConns() {
	_ = v.conn.Close()
	_ = v.rtcpConn.Close()
}

func (v *videoStream) snapshot() VideoStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// videoSource is a synthetic encoder: vp8synth's or h264synth's.
type videoSource interface {
	Next(now time.Time, forceKey bool) ([]byte, bool)
	Interval() time.Duration
	TimestampStep() uint32
}

// send sends a frame every frame interval, cut into packets with the marker on the last.
func (v *videoStream) send(stop chan struct{}) {
	defer v.m.wg.Done()
	var src videoSource = vp8synth.NewSource(v.seed, v.opts.bitrate, v.opts.fps, keyFrameEvery)
	packetize := vp8synth.Packetize
	if isH264(v.opts.codec) {
		src, packetize = h264synth.NewSource(v.seed, v.opts.bitrate, v.opts.fps, keyFrameEvery), h264synth.Packetize
	}
	ticker := time.NewTicker(src.Interval())
	defer ticker.Stop()
	buf := make([]byte, 12+max(vp8synth.MaxPayload, h264synth.MaxPayload))
	for {
		frame, key := src.Next(time.Now(), v.keyFrame.Swap(false))
		v.sendFrame(packetize(frame), key, buf)
		v.mu.Lock()
		v.ts += src.TimestampStep()
		v.mu.Unlock()
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

func (v *videoStream) sendFrame(payloads [][]byte, key bool, buf []byte) {
	for i, payload := range payloads {
		v.mu.Lock()
		remote := v.remote
		pkt := rtp.Packet{Header: rtp.Header{
			Version: 2, Marker: i == len(payloads)-1, PayloadType: v.pt,
			SequenceNumber: v.seq, Timestamp: v.ts, SSRC: v.ssrc,
		}, Payload: payload}
		v.seq++
		v.mu.Unlock()
		if !remote.IsValid() || remote.Addr().IsUnspecified() {
			return
		}
		n, err := pkt.MarshalTo(buf)
		if err != nil {
			v.m.log.Warn("video RTP marshal", "error", err)
			return
		}
		if _, err := v.conn.WriteTo(buf[:n], net.UDPAddrFromAddrPort(remote)); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				v.m.log.Debug("video RTP send", "error", err)
			}
			return
		}
		v.mu.Lock()
		v.stats.PacketsSent++
		v.mu.Unlock()
		v.m.logSent(SentRecord{
			At: time.Now(), Kind: "video", Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC,
			PayloadType: pkt.PayloadType, Marker: pkt.Marker, Size: n, PayloadSize: len(payload),
		})
	}
	v.mu.Lock()
	v.stats.FramesSent++
	if key {
		v.stats.KeyFramesSent++
	}
	v.mu.Unlock()
}

// receive counts video packets and frames; RTCP multiplexed on the port (RFC 5761) is read too.
func (v *videoStream) receive(conn net.PacketConn) {
	defer v.m.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if n >= 2 && buf[1] >= 192 && buf[1] <= 223 {
			v.readRTCP(buf[:n])
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.Version != 2 {
			v.mu.Lock()
			v.stats.Invalid++
			v.mu.Unlock()
			continue
		}
		v.mu.Lock()
		v.stats.PacketsReceived++
		v.stats.BytesReceived += uint64(len(pkt.Payload))
		if last, seen := v.lastFrame[pkt.SSRC]; !seen || int32(pkt.Timestamp-last) > 0 {
			v.lastFrame[pkt.SSRC] = pkt.Timestamp
			v.stats.FramesReceived++
		}
		if isH264(v.opts.codec) {
			d := v.h264[pkt.SSRC]
			if d == nil {
				d = &h264synth.Depacketizer{}
				v.h264[pkt.SSRC] = d
			}
			before := d.Stats()
			if d.Push(pkt.SequenceNumber, pkt.Payload) {
				v.stats.KeyFramesReceived++
			}
			after := d.Stats()
			v.stats.NALUnits += after.NALUnits - before.NALUnits
			v.stats.CorruptNALUnits += after.Corrupt - before.Corrupt
		} else if key, ok := vp8synth.KeyFrameStart(pkt.Payload); ok && key {
			v.stats.KeyFramesReceived++
		}
		v.mu.Unlock()
	}
}

// fastUpdate answers a SIP INFO picture_fast_update with a key frame.
func (v *videoStream) fastUpdate() {
	v.keyFrame.Store(true)
	v.mu.Lock()
	v.stats.FastUpdates++
	v.mu.Unlock()
}

// readRTCP asks the sender for a key frame on PLI or FIR.
func (v *videoStream) readRTCP(b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			v.keyFrame.Store(true)
			v.mu.Lock()
			v.stats.KeyFrameRequests++
			v.mu.Unlock()
		}
	}
}

// videoLine is the phone's m=video line: port 0 refuses the peer's stream.
type videoLine struct {
	port  int
	pt    uint8
	codec string // VP8 or H264
}

func (l *videoLine) rtpmap() string {
	return fmt.Sprintf("%d %s/%d", l.pt, l.codec, vp8synth.ClockRate)
}

// fmtp is the line's a=fmtp value ("" for none): H.264's format.
func (l *videoLine) fmtp() string {
	if isH264(l.codec) {
		return fmt.Sprintf("%d %s", l.pt, h264synth.Fmtp)
	}
	return ""
}

func isVP8(name string) bool { return strings.EqualFold(name, "VP8") }

func isH264(name string) bool { return strings.EqualFold(name, "H264") }
