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

	"github.com/siprtc/siprtc/internal/vp8synth"
)

// defaultVideoPT is the dynamic payload type the phone offers VP8 with.
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
	FramesReceived, KeyFramesReceived uint64 // frames by distinct timestamp; key frames by VP8 tag
	Invalid                           uint64 // datagrams that were neither RTP nor RTCP

	KeyFrameRequests uint64 // RTCP PLI and FIR received
	FastUpdates      uint64 // SIP INFO picture_fast_update received (also answered with a key frame)
}

// videoOptions is the Video option.
type videoOptions struct {
	codec        string
	bitrate, fps int
}

// Video makes the phone offer, and accept, a video stream besides audio: codec (only "VP8"),
// with PT 96 when the phone offers (the offer's payload type when it answers), sending the
// synthetic VP8 of internal/vp8synth at bitrate bit/s and fps frames a second (zero: 300 kbit/s,
// 25 fps), key frames every 3 s and on RTCP PLI/FIR. Received video is counted in
// MediaStats.Video. Without it, the phone is audio only.
func Video(codec string, bitrate, fps int) Option {
	return func(o *options) {
		o.video = &videoOptions{codec: codec, bitrate: orDefault(bitrate, 300_000), fps: orDefault(fps, 25)}
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
	pt       uint8
	vp8      bool // the m-line has VP8 (pt is its payload type)
}

// videoState is where the phone stands with video, which decides its next m=video line.
type videoState int

const (
	videoOffer    videoState = iota // no remote description yet: offer VP8 with PT 96
	videoAccepted                   // the peer has VP8 on a live m-line
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
	}
	v.stats.LocalAddr, v.stats.Codec, v.stats.PayloadType = local, "VP8", defaultVideoPT
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
		return &videoLine{port: 0, pt: v.pt}
	}
	return &videoLine{port: int(v.local.Port()), pt: v.pt}
}

// setRemote follows the peer's description: rv nil means it has no video.
func (v *videoStream) setRemote(rv *remoteVideo) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case rv == nil:
		v.state, v.remote = videoAbsent, netip.AddrPort{}
	case !rv.vp8 || rv.addr.Port() == 0:
		v.state, v.remote = videoRefused, netip.AddrPort{}
	default:
		v.state, v.remote, v.pt = videoAccepted, rv.addr, rv.pt
		v.stats.PayloadType = rv.pt
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

// send sends a frame every frame interval, cut into packets with the marker on the last.
func (v *videoStream) send(stop chan struct{}) {
	defer v.m.wg.Done()
	src := vp8synth.NewSource(v.seed, v.opts.bitrate, v.opts.fps, keyFrameEvery)
	ticker := time.NewTicker(src.Interval())
	defer ticker.Stop()
	buf := make([]byte, 12+vp8synth.MaxPayload)
	for {
		frame, key := src.Next(time.Now(), v.keyFrame.Swap(false))
		v.sendFrame(frame, key, buf)
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

func (v *videoStream) sendFrame(frame []byte, key bool, buf []byte) {
	payloads := vp8synth.Packetize(frame)
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
		if key, ok := vp8synth.KeyFrameStart(pkt.Payload); ok && key {
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
	port int
	pt   uint8
}

func (l *videoLine) rtpmap() string { return fmt.Sprintf("%d VP8/%d", l.pt, vp8synth.ClockRate) }

func isVP8(name string) bool { return strings.EqualFold(name, "VP8") }
