package rtc

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/flexfec"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/fec"
)

// RED (RFC 2198) and FlexFEC-03, both ways, when Config.RED and Config.FlexFEC are on.
//
// Sending: Opus is RED-framed by an interceptor (the NACK responder, outside it, keeps the
// plain packets; what it resends is framed again); video is protected by pion's FlexFEC-03
// encoder interceptor, fed copies of the packets by fecCopy (the encoder keeps them without
// copying, and its writers reuse their buffers). They sit inside the NACK, bandwidth
// estimation and TWCC interceptors (only the repair counters and WithInterceptor's are further
// in), as pion requires for FlexFEC: the FEC packets must cover the media packets exactly as
// they leave, TWCC sequence numbers included, and the pacer must not see them.
//
// Receiving: pion does not hand a receiver its FEC stream. A FlexFEC stream declared with
// a=ssrc-group:FEC-FR is accepted by the SRTP session and never read (handleIncomingSSRC
// returns as soon as it finds the SSRC in the remote description), and the StreamInfo of a
// remote stream carries no FEC SSRC or payload type: no interceptor ever sees a FEC packet.
// The gateway therefore taps the SRTP session's read buffers (SettingEngine.BufferFactory):
// every decrypted RTP packet of a protected video stream, and of its FEC stream (known by the
// flexfec-03 payload type of the remote description), goes through a fec.FlexFECDecoder in
// the SRTP session's goroutine; the FEC packets end there. The packets it rebuilds wait in a
// queue that the interceptor bound on the media stream serves before its next read (pion
// delivers RTX the same way: on the read after the packet arrived). RED packets are decoded
// by that same interceptor on the audio stream. Both sit inside the NACK generator, so that it
// does not ask for what they rebuilt, and take the TWCC transport sequence number out of a
// rebuilt packet (it never arrived: the sender's estimator must not think so).
//
// The payload types come from the remote description: set it through Peer (its
// SetRemoteDescription notes them), else the gateway's own are assumed (red 63, flexfec-03 49)
// and the gateway sends no RED (it cannot know the client accepted it).

// Defaults and limits of the RED and FlexFEC settings of Config.
const (
	// DefaultREDDistance is how many earlier frames a RED packet repeats (Chrome's choice).
	DefaultREDDistance = 1
	// MaxREDDistance bounds Config.REDDistance.
	MaxREDDistance = 8
	// DefaultFECMediaPackets and DefaultFECPackets are pion's flexfec defaults: 2 FEC
	// packets for every 5 video packets.
	DefaultFECMediaPackets = 5
	DefaultFECPackets      = 2
	// MaxFECMediaPackets is the most media packets one FEC batch covers (libwebrtc's limit).
	MaxFECMediaPackets = 48
)

var errRepair = errors.New("rtc: bad RED/FlexFEC settings")

// The formats of the repair mechanisms, as the gateway registers them. red's fmtp names
// Opus's payload type (RFC 2198: one redundant block and the primary, both Opus).
var (
	redCodec     = Codec{Name: "red", ClockRate: 48000, Channels: 2, PayloadType: 63, Fmtp: "111/111"}
	flexFECCodec = Codec{Name: "flexfec-03", ClockRate: 90000, PayloadType: 49, Fmtp: "repair-window=10000000"}
)

func isRED(name string) bool     { return strings.EqualFold(name, redCodec.Name) }
func isFlexFEC(name string) bool { return strings.EqualFold(name, flexFECCodec.Name) }

// repairOn reports whether RED or FlexFEC is configured.
func (c Config) repairOn() bool { return c.RED || c.FlexFEC }

func (c Config) redDistance() int {
	if c.REDDistance == 0 {
		return DefaultREDDistance
	}
	return c.REDDistance
}

func (c Config) fecNumbers() (media, fecs int) {
	media, fecs = c.FECMediaPackets, c.FECPackets
	if media == 0 {
		media = DefaultFECMediaPackets
	}
	if fecs == 0 {
		fecs = DefaultFECPackets
	}
	return media, fecs
}

// validateRepair checks the RED and FlexFEC settings.
func (c Config) validateRepair() error {
	if c.REDDistance < 0 || c.REDDistance > MaxREDDistance {
		return fmt.Errorf("%w: REDDistance %d, want 1..%d (0: %d)", errRepair, c.REDDistance, MaxREDDistance, DefaultREDDistance)
	}
	media, fecs := c.fecNumbers()
	if media < 1 || media > MaxFECMediaPackets {
		return fmt.Errorf("%w: FECMediaPackets %d, want 1..%d", errRepair, c.FECMediaPackets, MaxFECMediaPackets)
	}
	if fecs < 1 || fecs > media {
		return fmt.Errorf("%w: FECPackets %d, want 1..FECMediaPackets (%d)", errRepair, c.FECPackets, media)
	}
	if c.RED && !c.hasCodec("opus") {
		return fmt.Errorf("%w: RED needs opus in Codecs", errRepair)
	}
	if c.FlexFEC && !c.Video {
		return fmt.Errorf("%w: FlexFEC needs Video", errRepair)
	}
	return nil
}

func (c Config) hasCodec(name string) bool {
	for _, n := range c.negotiable() {
		if n == name {
			return true
		}
	}
	return false
}

// addRepairSelection sets sel.RED and sel.FlexFEC for a call whose WebRTC side offered (or
// will be offered) webrtcSide: RED when Opus is the first audio format, FlexFEC when the call
// has video. The format is the WebRTC side's when it lists one, else the gateway's.
func (c Config) addRepairSelection(sel *Selection, webrtcSide []Codec) {
	if sel == nil {
		return
	}
	if c.RED && len(sel.Audio) > 0 && strings.EqualFold(sel.Audio[0].WebRTC.Name, "opus") {
		opusPT := sel.Audio[0].WebRTC.PayloadType
		sel.RED = Codec{Name: redCodec.Name, ClockRate: 48000, Channels: 2, PayloadType: redCodec.PayloadType, Fmtp: redFmtp(opusPT)}
		for _, w := range webrtcSide {
			if isRED(w.Name) && redPrimary(w.Fmtp) == int(opusPT) {
				sel.RED = w
				break
			}
		}
	}
	if c.FlexFEC && c.Video && len(sel.Video) > 0 {
		sel.FlexFEC = flexFECCodec
		for _, w := range webrtcSide {
			if isFlexFEC(w.Name) {
				sel.FlexFEC = w
				break
			}
		}
	}
}

// offeredCodecs lists the formats of an offer's first audio and video m-lines.
func offeredCodecs(offer webrtc.SessionDescription) []Codec {
	parsed, err := offer.Unmarshal()
	if err != nil {
		return nil
	}
	var out []Codec
	seen := map[string]bool{}
	for _, m := range parsed.MediaDescriptions {
		if kind := m.MediaName.Media; !seen[kind] {
			seen[kind] = true
			out = append(out, CodecsOf(m)...)
		}
	}
	return out
}

func redFmtp(pt uint8) string {
	s := strconv.Itoa(int(pt))
	return s + "/" + s
}

// redPrimary is the payload type of the primary block a red fmtp ("111/111") names, or -1.
func redPrimary(fmtp string) int {
	first, _, _ := strings.Cut(strings.TrimSpace(fmtp), "/")
	pt, err := strconv.ParseUint(first, 10, 7)
	if err != nil {
		return -1
	}
	return int(pt)
}

// repairFor resolves the selection's RED or FlexFEC format against the remote description
// (its payload type is the one to answer with; absent: the client did not offer it), or
// takes it as it is when the gateway offers.
func repairFor(remote *sdp.SessionDescription, kind webrtc.RTPCodecType, want Codec, primaryPT uint8) (webrtc.RTPCodecParameters, bool) {
	if want.Name == "" {
		return webrtc.RTPCodecParameters{}, false
	}
	if remote == nil {
		return want.WebRTC(), true
	}
	for _, m := range remote.MediaDescriptions {
		if m.MediaName.Media != kind.String() {
			continue
		}
		for _, c := range CodecsOf(m) {
			switch {
			case kind == webrtc.RTPCodecTypeAudio && isRED(c.Name) && redPrimary(c.Fmtp) == int(primaryPT):
				return c.WebRTC(), true
			case kind == webrtc.RTPCodecTypeVideo && isFlexFEC(c.Name):
				return c.WebRTC(), true
			}
		}
		break
	}
	return webrtc.RTPCodecParameters{}, false
}

// registerRepairCodecs adds red and flexfec-03 to the MediaEngine. red gets the audio
// feedback: when it comes first in the m-line (it must, for Chrome to send RED), pion binds the
// remote audio stream with its parameters.
func registerRepairCodecs(m *webrtc.MediaEngine, cfg Config) error {
	if cfg.RED {
		p := redCodec.WebRTC()
		p.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBNACK}}
		if err := m.RegisterCodec(p, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("rtc: register %s: %w", redCodec, err)
		}
	}
	if cfg.FlexFEC {
		if err := m.RegisterCodec(flexFECCodec.WebRTC(), webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("rtc: register %s: %w", flexFECCodec, err)
		}
	}
	return nil
}

// Recovery names the mechanism that rebuilt a packet.
type Recovery string

// The repair mechanisms that rebuild packets on the receiving side.
const (
	RecoveredRED     Recovery = "red"
	RecoveredFlexFEC Recovery = "flexfec"
)

type recoveredKey struct{}

// RecoveredBy reports how the gateway rebuilt the packet a TrackRemote.Read returned with
// these attributes ("" for a packet that arrived).
func RecoveredBy(a interceptor.Attributes) Recovery {
	if a == nil {
		return ""
	}
	r, _ := a.Get(recoveredKey{}).(Recovery)
	return r
}

// repairPeer is one PeerConnection's RED and FlexFEC state (one per API).
type repairPeer struct {
	cfg      Config
	distance int
	counters *RepairCounters

	mu      sync.Mutex
	neg     negotiated
	streams map[uint32]*flexStream // protected remote video streams by media SSRC
}

// negotiated is what the remote description says about RED and FlexFEC.
type negotiated struct {
	fromSDP bool
	red     map[uint8]uint8   // red payload type -> the primary's
	flexPTs map[uint8]bool    // flexfec-03 payload types
	fecFor  map[uint32]uint32 // FEC SSRC -> media SSRC (a=ssrc-group:FEC-FR)
}

// withRepairPeer gives counters (created when nil) the RED/FlexFEC state of an API built from
// cfg; without RED and FlexFEC it returns counters unchanged.
func withRepairPeer(cfg Config, counters *RepairCounters) *RepairCounters {
	if !cfg.repairOn() {
		return counters
	}
	if counters == nil {
		counters = &RepairCounters{}
	}
	rp := &repairPeer{cfg: cfg, distance: cfg.redDistance(), counters: counters, streams: map[uint32]*flexStream{}}
	rp.neg = negotiated{
		red:     map[uint8]uint8{redCodec.PayloadType: uint8(redPrimary(redCodec.Fmtp))},
		flexPTs: map[uint8]bool{flexFECCodec.PayloadType: true},
		fecFor:  map[uint32]uint32{},
	}
	counters.repair = rp
	return counters
}

// addRepair registers red and flexfec-03 and adds the repair interceptors (see above) to ir.
func addRepair(ir *interceptor.Registry, m *webrtc.MediaEngine, counters *RepairCounters) error {
	rp := counters.repairPeer()
	if rp == nil {
		return nil
	}
	if err := registerRepairCodecs(m, rp.cfg); err != nil {
		return err
	}
	ir.Add(repairFactory{rp})
	if rp.cfg.FlexFEC {
		n, k := rp.cfg.fecNumbers()
		f, err := flexfec.NewFecInterceptor(flexfec.NumMediaPackets(uint32(n)), flexfec.NumFECPackets(uint32(k)))
		if err != nil {
			return fmt.Errorf("rtc: flexfec: %w", err)
		}
		ir.Add(f)
		ir.Add(fecCopyFactory{n: n + 1})
	}
	return nil
}

// fecCopyFactory builds fecCopy, which sits right outside pion's FlexFEC encoder.
type fecCopyFactory struct{ n int }

func (f fecCopyFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &fecCopy{n: f.n}, nil
}

// fecCopy hands pion's FlexFEC encoder packets it may keep. The encoder holds the header and
// payload of every packet of a batch until the batch is complete, without copying them; its
// writers reuse their buffers (the bridge its read buffer, the pacer its pool), so the FEC
// packets would XOR bytes of later packets: garbage for the receiver. fecCopy copies each
// media packet into a ring of batch+1 buffers per stream (a batch is encoded, synchronously,
// at the write of its last packet, before its first buffer comes round again).
type fecCopy struct {
	interceptor.NoOp
	n int
}

func (c *fecCopy) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if info.SSRCForwardErrorCorrection == 0 || info.PayloadTypeForwardErrorCorrection == 0 {
		return writer
	}
	var (
		mu   sync.Mutex
		ring = make([][]byte, c.n)
		next int
	)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC != info.SSRC {
			return writer.Write(h, payload, a)
		}
		mu.Lock() // serializes the stream's writes, so that the ring stays in step
		defer mu.Unlock()
		buf := append(ring[next][:0], payload...)
		ring[next] = buf
		next = (next + 1) % len(ring)
		hdr := h.Clone()
		return writer.Write(&hdr, buf, a)
	})
}

// tapRepair installs FlexFEC's tap on the SRTP session's buffers.
func tapRepair(s *webrtc.SettingEngine, counters *RepairCounters) {
	if rp := counters.repairPeer(); rp != nil && rp.cfg.FlexFEC {
		s.BufferFactory = rp.newBuffer
	}
}

func (c *RepairCounters) repairPeer() *repairPeer {
	if c == nil {
		return nil
	}
	return c.repair
}

// SetRemoteDescription is the PeerConnection's, after noting what RED and FlexFEC need from
// the description (payload types, a=ssrc-group:FEC-FR). With Config.RED or Config.FlexFEC,
// set remote descriptions through the Peer rather than its embedded PeerConnection.
func (p *Peer) SetRemoteDescription(d webrtc.SessionDescription) error {
	if rp := p.Repair.repairPeer(); rp != nil && d.SDP != "" {
		rp.noteRemote(d.SDP)
	}
	return p.PeerConnection.SetRemoteDescription(d)
}

// noteRemote reads the remote description's red and flexfec-03 formats and FEC-FR groups.
func (rp *repairPeer) noteRemote(raw string) {
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(raw); err != nil {
		return // pion will refuse it
	}
	n := negotiated{fromSDP: true, red: map[uint8]uint8{}, flexPTs: map[uint8]bool{}, fecFor: map[uint32]uint32{}}
	for _, m := range desc.MediaDescriptions {
		for _, c := range CodecsOf(m) {
			switch {
			case m.MediaName.Media == "audio" && isRED(c.Name):
				if p := redPrimary(c.Fmtp); p >= 0 {
					n.red[c.PayloadType] = uint8(p)
				}
			case m.MediaName.Media == "video" && isFlexFEC(c.Name):
				n.flexPTs[c.PayloadType] = true
			}
		}
		for _, a := range m.Attributes {
			f := strings.Fields(a.Value)
			if a.Key != "ssrc-group" || len(f) != 3 || f[0] != "FEC-FR" {
				continue
			}
			media, err1 := strconv.ParseUint(f[1], 10, 32)
			fecSSRC, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil {
				n.fecFor[uint32(fecSSRC)] = uint32(media)
			}
		}
	}
	rp.mu.Lock()
	rp.neg = n
	rp.mu.Unlock()
}

// redPTFor is the payload type to RED-frame packets of payload type primary with, when the
// remote description negotiated one.
func (rp *repairPeer) redPTFor(primary uint8) (uint8, bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if !rp.neg.fromSDP {
		return 0, false
	}
	for red, p := range rp.neg.red {
		if p == primary {
			return red, true
		}
	}
	return 0, false
}

func (rp *repairPeer) isRED(pt uint8) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	_, ok := rp.neg.red[pt]
	return ok
}

type repairFactory struct{ rp *repairPeer }

func (f repairFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &repairInterceptor{rp: f.rp}, nil
}

// repairInterceptor RED-frames the Opus the gateway sends, decodes the client's RED, and
// serves the video packets FlexFEC rebuilt.
type repairInterceptor struct {
	interceptor.NoOp
	rp *repairPeer
}

// BindLocalStream RED-frames the packets of the bound Opus format once RED is negotiated.
func (r *repairInterceptor) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !r.rp.cfg.RED || !strings.EqualFold(info.MimeType, webrtc.MimeTypeOpus) {
		return writer
	}
	primary := info.PayloadType
	var (
		mu  sync.Mutex
		enc *fec.REDEncoder
		pt  uint8
	)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.PayloadType != primary || h.SSRC != info.SSRC {
			return writer.Write(h, payload, a)
		}
		redPT, ok := r.rp.redPTFor(primary)
		if !ok {
			return writer.Write(h, payload, a)
		}
		mu.Lock()
		if enc == nil || pt != redPT {
			enc, pt = fec.NewREDEncoder(redPT, r.rp.distance), redPT
		}
		red := enc.Encode(&rtp.Packet{Header: *h, Payload: payload})
		mu.Unlock()
		r.rp.counters.redSent.Add(1)
		return writer.Write(&red.Header, red.Payload, a)
	})
}

// BindRemoteStream decodes RED on audio streams and serves FlexFEC's rebuilt packets on
// protected video streams.
func (r *repairInterceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	mime := strings.ToLower(info.MimeType)
	twcc := 0
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			twcc = e.ID
		}
	}
	switch {
	case r.rp.cfg.RED && strings.HasPrefix(mime, "audio/"):
		return &redReader{rp: r.rp, inner: reader, decoders: map[uint8]*fec.REDDecoder{}}
	case r.rp.cfg.FlexFEC && strings.HasPrefix(mime, "video/") && mime != strings.ToLower(webrtc.MimeTypeRTX) && !strings.Contains(mime, "flexfec"):
		s := &flexStream{rp: r.rp, dec: fec.NewFlexFECDecoder(info.SSRC, 0), twccID: uint8(twcc)}
		r.rp.mu.Lock()
		negotiated := len(r.rp.neg.flexPTs) > 0
		if negotiated { // else the client sends no FEC: no need to keep its video
			r.rp.streams[info.SSRC] = s
		}
		r.rp.mu.Unlock()
		if !negotiated {
			return reader
		}
		return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			if n, attr, ok := s.pop(b); ok {
				return n, attr, nil
			}
			return reader.Read(b, a)
		})
	}
	return reader
}

// UnbindRemoteStream forgets a protected video stream.
func (r *repairInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) {
	r.rp.mu.Lock()
	delete(r.rp.streams, info.SSRC)
	r.rp.mu.Unlock()
}

// maxQueued bounds the rebuilt packets waiting for a read.
const maxQueued = 256

// queue holds marshaled packets, with the attributes to return them with, for the next reads.
type queue struct {
	pkts []queued
	free [][]byte
}

type queued struct {
	buf  []byte
	attr interceptor.Attributes
}

func (q *queue) push(p *rtp.Packet, attr interceptor.Attributes) {
	if len(q.pkts) >= maxQueued {
		q.free = append(q.free, q.pkts[0].buf)
		q.pkts[0] = queued{}
		q.pkts = q.pkts[1:]
	}
	var buf []byte
	if n := len(q.free); n > 0 {
		buf, q.free = q.free[n-1][:0], q.free[:n-1]
	}
	size := p.MarshalSize()
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	n, err := p.MarshalTo(buf[:size])
	if err != nil {
		q.free = append(q.free, buf)
		return
	}
	q.pkts = append(q.pkts, queued{buf: buf[:n], attr: attr})
}

// pop copies the oldest packet into b.
func (q *queue) pop(b []byte) (int, interceptor.Attributes, bool) {
	if len(q.pkts) == 0 {
		return 0, nil, false
	}
	p := q.pkts[0]
	q.pkts[0] = queued{}
	q.pkts = q.pkts[1:]
	n := copy(b, p.buf)
	q.free = append(q.free, p.buf)
	return n, p.attr, true
}

// flexStream is one protected remote video stream: its decoder, fed by the SRTP tap, and the
// packets it rebuilt.
type flexStream struct {
	rp     *repairPeer
	twccID uint8

	mu          sync.Mutex
	dec         *fec.FlexFECDecoder
	q           queue
	unrecovered uint64 // the decoder's Unrecoverable already counted
}

// push gives the decoder one packet of the stream or of its FEC stream.
func (s *flexStream) push(p *rtp.Packet, isFEC bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.dec.Push(p)
	c := s.rp.counters
	if isFEC {
		c.flexfecReceived.Add(1)
	}
	c.flexfecRecovered.Add(uint64(len(out)))
	if u := s.dec.Stats().Unrecoverable; u != s.unrecovered {
		c.flexfecUnrecoverable.Add(u - s.unrecovered)
		s.unrecovered = u
	}
	for _, r := range out {
		if s.twccID != 0 {
			_ = r.DelExtension(s.twccID) // absent: nothing to do
		}
		s.q.push(r, interceptor.Attributes{recoveredKey{}: RecoveredFlexFEC})
	}
}

func (s *flexStream) pop(b []byte) (int, interceptor.Attributes, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.pop(b)
}

// redReader decodes the RED packets of one remote audio stream.
type redReader struct {
	rp       *repairPeer
	inner    interceptor.RTPReader
	mu       sync.Mutex
	decoders map[uint8]*fec.REDDecoder // by RED payload type
	q        queue
	pkt      rtp.Packet
	scratch  []byte
}

func (r *redReader) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	for {
		r.mu.Lock()
		n, attr, ok := r.q.pop(b)
		r.mu.Unlock()
		if ok {
			return n, attr, nil
		}
		n, attr, err := r.inner.Read(b, a)
		if err != nil || n < 2 {
			return n, attr, err
		}
		pt := b[1] & 0x7f
		if !r.rp.isRED(pt) {
			r.seen(b[:n])
			return n, attr, nil
		}
		if n, attr, ok := r.decode(b, n, pt, attr); ok {
			return n, attr, nil
		}
		// A malformed RED packet: dropped, read the next one.
	}
}

// seen tells the decoders about a plain packet between RED ones.
func (r *redReader) seen(raw []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.decoders) == 0 || r.pkt.Unmarshal(raw) != nil {
		return
	}
	for _, d := range r.decoders {
		_, _ = d.Decode(&r.pkt)
	}
}

// decode unframes the RED packet in b[:n]: the first packet out goes back in b, the others
// wait in the queue. The primary keeps the packet's attributes; the rebuilt ones are marked.
func (r *redReader) decode(b []byte, n int, pt uint8, attr interceptor.Attributes) (int, interceptor.Attributes, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.decoders[pt]
	if d == nil {
		d = fec.NewREDDecoder(pt)
		r.decoders[pt] = d
	}
	if err := r.pkt.Unmarshal(b[:n]); err != nil {
		return 0, nil, false
	}
	out, err := d.Decode(&r.pkt)
	if err != nil {
		return 0, nil, false
	}
	c := r.rp.counters
	c.redReceived.Add(1)
	c.redRecovered.Add(uint64(len(out) - 1))
	attr = dropCachedHeader(attr) // the packet changes under it
	attrOf := func(i int) interceptor.Attributes {
		if i == len(out)-1 {
			return attr
		}
		return interceptor.Attributes{recoveredKey{}: RecoveredRED}
	}
	for i, p := range out[1:] {
		r.q.push(p, attrOf(i+1))
	}
	first := out[0]
	size := first.MarshalSize()
	if cap(r.scratch) < size {
		r.scratch = make([]byte, size)
	}
	m, err := first.MarshalTo(r.scratch[:size])
	if err != nil || m > len(b) {
		return 0, nil, false
	}
	copy(b, r.scratch[:m])
	return m, attrOf(0), true
}

// dropCachedHeader removes the RTP header interceptors cache in the attributes (the packet
// changed under it).
func dropCachedHeader(a interceptor.Attributes) interceptor.Attributes {
	for k, v := range a {
		if _, ok := v.(*rtp.Header); ok {
			delete(a, k)
		}
	}
	return a
}

// newBuffer is the SRTP session's buffer factory: RTP buffers tap FlexFEC (tapBuffer), RTCP
// buffers are pion's defaults.
func (rp *repairPeer) newBuffer(t packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	b := packetio.NewBuffer()
	if t != packetio.RTPBufferPacket {
		b.SetLimitSize(srtcpBufferSize)
		return &plainBuffer{b}
	}
	b.SetLimitSize(srtpBufferSize)
	return &tapBuffer{plainBuffer: plainBuffer{b}, rp: rp, ssrc: ssrc}
}

// pion's SRTP buffer sizes (srtp's defaults when no BufferFactory is set).
const (
	srtpBufferSize  = 1000 * 1000
	srtcpBufferSize = 100 * 1000
)

// plainBuffer adapts packetio.Buffer to the io.ReadWriteCloser the SRTP session wants, with
// the attribute and deadline methods it looks for.
type plainBuffer struct{ *packetio.Buffer }

func (b *plainBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b *plainBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

func (b *plainBuffer) ReadWithAttributes(p []byte, a packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, a)
}

func (b *plainBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, a)
}

func (b *plainBuffer) SetReadDeadline(t time.Time) error { return b.Buffer.SetReadDeadline(t) }

// tapBuffer is the read buffer of one SSRC: the FlexFEC packets it gets go to the decoder of
// the stream they protect (and end there), the protected stream's packets go to its decoder
// too (and on to the buffer).
type tapBuffer struct {
	plainBuffer
	rp   *repairPeer
	ssrc uint32

	mu     sync.Mutex
	isFEC  bool
	stream *flexStream // the protected stream this SSRC is, or (FEC) protects
	pkt    rtp.Packet
}

func (b *tapBuffer) Write(p []byte) (int, error) { return b.WriteWithAttributes(p, nil) }

func (b *tapBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	if b.tap(p) {
		return len(p), nil
	}
	return b.Buffer.Write(p, a)
}

// tap feeds the packet to FlexFEC and reports whether it ends here (a FEC packet).
func (b *tapBuffer) tap(raw []byte) bool {
	if len(raw) < 12 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := raw[1] & 0x7f
	if b.stream == nil && !b.isFEC {
		b.classify(raw, pt)
	}
	if b.stream == nil && !b.isFEC {
		return false
	}
	if err := b.pkt.Unmarshal(raw); err != nil {
		return b.isFEC
	}
	if b.isFEC {
		if b.stream == nil { // the protected stream was not bound (yet)
			b.stream = b.rp.protectedBy(b.ssrc, b.pkt.Payload)
		}
		if b.stream != nil {
			b.stream.push(&b.pkt, true)
		}
		return true
	}
	b.stream.push(&b.pkt, false)
	return false
}

// classify finds out whether this SSRC is a protected video stream or a FEC stream.
func (b *tapBuffer) classify(raw []byte, pt uint8) {
	rp := b.rp
	rp.mu.Lock()
	isFEC := rp.neg.flexPTs[pt]
	s := rp.streams[b.ssrc]
	rp.mu.Unlock()
	switch {
	case isFEC:
		b.isFEC = true
		if len(raw) >= 12 {
			var h rtp.Header
			if hl, err := h.Unmarshal(raw); err == nil {
				b.stream = rp.protectedBy(b.ssrc, raw[hl:])
			}
		}
	case s != nil:
		b.stream = s
	}
}

// protectedBy finds the stream a FEC stream protects: its a=ssrc-group:FEC-FR, else the SSRC
// its FlexFEC-03 header names.
func (rp *repairPeer) protectedBy(fecSSRC uint32, payload []byte) *flexStream {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if media, ok := rp.neg.fecFor[fecSSRC]; ok {
		return rp.streams[media]
	}
	if len(payload) >= 16 {
		media := uint32(payload[12])<<24 | uint32(payload[13])<<16 | uint32(payload[14])<<8 | uint32(payload[15])
		return rp.streams[media]
	}
	return nil
}
