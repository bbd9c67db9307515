package webclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/internal/g711"
	"github.com/siprtc/siprtc/internal/h264synth"
	"github.com/siprtc/siprtc/internal/tone"
	"github.com/siprtc/siprtc/internal/vp8synth"
)

const (
	audioFrame = 20 * time.Millisecond
	// toneWindow is how many decoded audio frames ToneFrequency looks at: the last 2 s.
	toneWindow = 100
	// dtmfVolume is the level put in RFC 4733 events: -10 dBm0, a typical keypad's.
	dtmfVolume = 10
	// dtmfEndRepeats: the end packet of an event is sent three times (RFC 4733 2.5.1.4).
	dtmfEndRepeats = 3
	// dtmfGapFrames of audio separate two digits of one SendDTMF (60 ms).
	dtmfGapFrames = 3
)

// PacketRecord is one RTP packet the client sent or received. Sent packets are logged as they
// leave (after the pacer, before SRTP: retransmissions, RTX and FEC packets included); received
// ones as the track delivers them (after SRTP and the NACK/RTX machinery, so a repaired packet
// shows once, at its repair time).
type PacketRecord struct {
	At          time.Time // send or arrival time
	Kind        string    // "audio" or "video"
	SSRC        uint32
	Seq         uint16 // an RTX packet sent: the original sequence number it carries
	Timestamp   uint32
	PayloadType uint8
	Marker      bool
	Size        int // RTP header (extensions included) and payload, bytes
	// Repaired says how a received packet got here when not as sent the first time:
	// RepairNACK (a retransmission on its own SSRC that the client had NACKed; without the
	// NACK it would be reordering), RepairRTX (unwrapped from the RTX stream), RepairFEC or
	// RepairRED (recovered); "" otherwise. A sent packet: RepairNACK or RepairRTX for a
	// retransmission, RepairFEC for a FlexFEC packet.
	Repaired string
	// Retransmission marks a sent packet that is a retransmission (Repaired nack or rtx).
	Retransmission bool
}

// MediaStats are one kind's counters (audio or video) of a call.
type MediaStats struct {
	// SendCodec is what the client sends (e.g. "PCMU"), ReceiveCodec what it last received
	// (telephone-events aside).
	SendCodec, ReceiveCodec string

	PacketsSent uint64
	BytesSent   uint64 // RTP payload bytes
	FirstSent   time.Time

	PacketsReceived uint64 // duplicates included
	BytesReceived   uint64 // RTP payload bytes
	Duplicates      uint64 // sequence numbers already received
	// Lost are sequence numbers skipped and never received (after NACK repair); loss at the
	// very end of a stream is not seen.
	Lost          uint64
	Reordered     uint64 // packets that arrived after a higher sequence number (repairs included)
	Invalid       uint64 // packets pion could not hand over (unknown payload type, ...)
	FirstReceived time.Time
	LastReceived  time.Time

	// Retransmitted are the packets the client sent again (NACK responder, on the SSRC or on
	// RTX), FECSent its FlexFEC packets (counted with video).
	Retransmitted, FECSent uint64
	// NACKRepaired, RTXRepaired, FECRecovered and REDRecovered count the received packets by
	// how they were repaired (PacketRecord.Repaired), duplicates aside.
	NACKRepaired, RTXRepaired, FECRecovered, REDRecovered uint64
}

// VideoStats are the video counters of a call.
type VideoStats struct {
	MediaStats
	FramesSent, KeyFramesSent         uint64
	FramesReceived, KeyFramesReceived uint64 // frames by distinct timestamp
	KeyFrameRequests                  uint64 // PLI and FIR received
	// NALUnits are the H.264 NAL units reassembled from what was received, CorruptNALUnits
	// those whose checksum (internal/h264synth) did not match, or malformed packets. VP8: 0.
	NALUnits, CorruptNALUnits uint64
}

// mediaConfig is how one call's media is built.
type mediaConfig struct {
	toneHz        float64
	audio         []rtc.Codec // audio formats to send, in preference order
	video         *rtc.Codec  // nil: no video
	videoBitrate  int         // bit/s
	videoFPS      int
	keyFrameEvery time.Duration
	opusBytes     int
	logLimit      int
	seed          uint64
	log           *slog.Logger
	// bwe makes the video bitrate follow the bandwidth estimate (WithBWE), with
	// bweInterval between two BWESamples.
	bwe         bool
	bweInterval time.Duration
	// mediaShare is the share of the video packets that are media when FlexFEC protects them
	// (0: no FEC); redDistance how many earlier frames RED repeats (0: no RED).
	mediaShare  float64
	redDistance int
}

// media is a call's RTP: an audio source (a tone, or silent Opus), an optional synthetic video
// source, and receivers that log and decode what arrives. It attaches to a PeerConnection's
// tracks; the PeerConnection itself (ICE, DTLS-SRTP, NACK, reports) stays pion's.
type media struct {
	cfg mediaConfig
	log *slog.Logger

	audioTrack, videoTrack   *rtc.TrackLocal
	audioSender, videoSender *webrtc.RTPSender
	keyFrame                 atomic.Bool  // PLI or FIR received: the next frame is a key frame
	tap                      *tap         // the sent log and the NACKs sent
	bwe                      *rtc.BWE     // nil without WithBWE
	audioRate                atomic.Int64 // the audio's nominal wire rate, bit/s, once bound
	videoRate                atomic.Int64 // the video encoder's current target, bit/s

	mu        sync.Mutex
	started   bool
	stopped   bool
	stopCh    chan struct{}
	wg        sync.WaitGroup
	dtmfQueue []*dtmfRequest
	dtmfSent  int
	audio     MediaStats
	video     VideoStats
	received  []PacketRecord
	samples   []BWESample
	dtmf      []DTMFEvent
	streams   map[uint32]*streamCounter
	frames    []tone.Frame // the last toneWindow decoded audio frames
	frameRate uint32       // their sample rate
	opaque    bool         // audio arrived in a codec the client cannot decode
	events    map[uint32]*eventState
	lastFrame map[uint32]uint32 // newest video timestamp per source
	h264      map[uint32]*h264synth.Depacketizer
}

// streamCounter follows the sequence space of one received source (RFC 3550 A.1).
type streamCounter struct {
	kind      string
	base, max int64 // extended sequence numbers
	seen      map[int64]struct{}
}

// eventState is the RFC 4733 event a source is sending: its timestamp and its entry in the
// DTMF log.
type eventState struct {
	ts    uint32
	index int
}

// dtmfRequest is one digit to send in the audio stream.
type dtmfRequest struct {
	code     byte
	duration time.Duration
	done     chan error
}

// newMedia adds the client's tracks to pc: as the offerer, new send-receive transceivers; as
// the answerer (after SetRemoteDescription), on the transceivers the offer created, and video
// only if the offer has video. The audio source sends the first format of its preference the
// negotiation kept; an answerer takes the offer's order as its preference.
//
// tp is the tap registered in pc's interceptors (rtc.WithInterceptor); bwe, when not nil,
// drives the video bitrate (only with cfg.bwe).
func newMedia(pc *webrtc.PeerConnection, cfg mediaConfig, answering bool, tp *tap, bwe *rtc.BWE) (*media, error) {
	m := &media{
		cfg: cfg, log: cfg.log, stopCh: make(chan struct{}), tap: tp,
		streams: map[uint32]*streamCounter{}, events: map[uint32]*eventState{}, lastFrame: map[uint32]uint32{},
		h264: map[uint32]*h264synth.Depacketizer{},
	}
	if cfg.bwe {
		m.bwe = bwe
	}
	m.videoRate.Store(int64(cfg.videoBitrate))
	m.keyFrame.Store(true)
	prefer := cfg.audio
	if answering {
		prefer = offerOrder(pc, cfg.audio)
	}
	m.audioTrack = rtc.NewTrackLocal(webrtc.RTPCodecTypeAudio, prefer, "audio", "webclient")
	var err error
	if m.audioSender, err = addTrack(pc, m.audioTrack, answering); err != nil {
		return nil, err
	}
	if cfg.video != nil && (!answering || hasKind(pc, webrtc.RTPCodecTypeVideo)) {
		m.videoTrack = rtc.NewTrackLocal(webrtc.RTPCodecTypeVideo, []rtc.Codec{*cfg.video}, "video", "webclient")
		if m.videoSender, err = addTrack(pc, m.videoTrack, answering); err != nil {
			return nil, err
		}
	}
	pc.OnTrack(m.onTrack)
	for _, s := range []*webrtc.RTPSender{m.audioSender, m.videoSender} {
		if s != nil {
			m.wg.Add(1)
			go m.readRTCP(s)
		}
	}
	return m, nil
}

// offerOrder orders the audio formats as the remote offer lists them: an answerer sends the
// offerer's first choice among those it has, as a browser does. Formats the offer lacks keep
// their place after the others (pion's negotiation drops them anyway).
func offerOrder(pc *webrtc.PeerConnection, formats []rtc.Codec) []rtc.Codec {
	rd := pc.RemoteDescription()
	if rd == nil {
		return formats
	}
	parsed, err := (&webrtc.SessionDescription{Type: rd.Type, SDP: rd.SDP}).Unmarshal()
	if err != nil {
		return formats
	}
	var out []rtc.Codec
	for _, md := range parsed.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		for _, offered := range rtc.CodecsOf(md) {
			for _, f := range formats {
				if f.Same(offered) && !slices.ContainsFunc(out, f.Same) {
					out = append(out, f)
				}
			}
		}
		break
	}
	for _, f := range formats {
		if !slices.ContainsFunc(out, f.Same) {
			out = append(out, f)
		}
	}
	return out
}

func addTrack(pc *webrtc.PeerConnection, t *rtc.TrackLocal, answering bool) (*webrtc.RTPSender, error) {
	if answering {
		return pc.AddTrack(t)
	}
	tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return nil, err
	}
	return tr.Sender(), nil
}

func hasKind(pc *webrtc.PeerConnection, kind webrtc.RTPCodecType) bool {
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() == kind {
			return true
		}
	}
	return false
}

// enter registers a goroutine, unless the media is stopping.
func (m *media) enter() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return false
	}
	m.wg.Add(1)
	return true
}

// start starts the sources (once; the call connected).
func (m *media) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return
	}
	m.started = true
	m.wg.Add(1)
	go m.sendAudio()
	if m.videoTrack != nil {
		m.wg.Add(1)
		go m.sendVideo()
	}
	if m.bwe != nil {
		m.wg.Add(1)
		go m.sampleBWE()
	}
}

// halt stops the sources; the receivers and RTCP readers end when the PeerConnection closes.
func (m *media) halt() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopped {
		m.stopped = true
		close(m.stopCh)
	}
}

// wait waits for every goroutine of the media (after halt and the PeerConnection's Close).
func (m *media) wait() {
	m.wg.Wait()
	m.mu.Lock()
	queue := m.dtmfQueue
	m.dtmfQueue = nil
	m.mu.Unlock()
	for _, r := range queue {
		r.done <- ErrCallEnded
	}
}

func (m *media) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// readReceiverRTCP reads what arrives for one receiver (the peer's sender reports): pion's
// report interceptor only sees what is read, and without the peer's SR our receiver reports
// carry no LSR/DLSR, so the peer's NACK responder never learns the round trip and answers every
// repeated NACK (the ARQ suite saw 2.5 retransmissions per loss at 200 ms RTT).
func (m *media) readReceiverRTCP(r *webrtc.RTPReceiver) {
	defer m.wg.Done()
	for {
		if _, _, err := r.ReadRTCP(); err != nil {
			return
		}
	}
}

// readRTCP reads the RTCP of one sender: pion's interceptors (the NACK responder, the reports)
// only see what is read, and PLI/FIR ask the video source for a key frame.
func (m *media) readRTCP(s *webrtc.RTPSender) {
	defer m.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if s == m.videoSender {
					m.keyFrame.Store(true)
					m.mu.Lock()
					m.video.KeyFrameRequests++
					m.mu.Unlock()
				}
			}
		}
	}
}

// ---- audio source ----

// audioState is the audio source's clock and what it is playing.
type audioState struct {
	codec   rtc.Codec
	bound   bool
	spf     uint32 // samples per 20 ms frame
	seq     uint16
	ts      uint32 // media clock: advances one frame per tick, whatever is sent
	sample  uint64 // the tone's phase, in samples
	marker  bool   // the next audio packet starts a talkspurt
	play    *dtmfPlay
	gap     int
	pcm     []int16
	payload []byte
}

// dtmfPlay is the RFC 4733 event being sent.
type dtmfPlay struct {
	req     *dtmfRequest
	pt      uint8
	startTS uint32
	total   uint32 // samples
	elapsed uint32
	ends    int
}

// sendAudio sends a frame every 20 ms once the track is bound: the tone in G.711, silent Opus,
// or the digits queued by SendDTMF in place of the audio while they play.
func (m *media) sendAudio() {
	defer m.wg.Done()
	rng := rand.New(rand.NewPCG(m.cfg.seed, 1))
	st := &audioState{seq: uint16(rng.Uint32()), ts: rng.Uint32(), marker: true}
	ticker := time.NewTicker(audioFrame)
	defer ticker.Stop()
	for {
		m.audioTick(st)
		select {
		case <-m.stopCh:
			if st.play != nil {
				st.play.req.done <- ErrCallEnded
			}
			return
		case <-ticker.C:
		}
	}
}

func (m *media) audioTick(st *audioState) {
	if !st.bound {
		c, ok := m.audioTrack.Codec()
		if !ok {
			return // not negotiated yet
		}
		st.codec, st.bound = c, true
		st.spf = c.ClockRate / uint32(time.Second/audioFrame)
		st.pcm = make([]int16, st.spf)
		// RTP header with its extensions (about 20 bytes) and the payload, 50 times a second.
		payload := int(st.spf) * 8000 / int(c.ClockRate) // G.711: a byte a sample at 8 kHz
		if strings.EqualFold(c.Name, "opus") {
			// RED: a 1-byte header for the primary and a 4-byte one for each repeated frame.
			payload = m.cfg.opusBytes
			if d := m.cfg.redDistance; d > 0 {
				payload = (1+d)*m.cfg.opusBytes + 1 + 4*d
			}
		}
		m.audioRate.Store(int64((20 + payload) * 8 * int(time.Second/audioFrame)))
		m.mu.Lock()
		m.audio.SendCodec = c.Name
		m.mu.Unlock()
	}
	defer func() { st.ts += st.spf; st.sample += uint64(st.spf) }()

	if st.play == nil && st.gap == 0 {
		if req := m.nextDTMF(); req != nil {
			pt, ok := m.eventPayloadType(st.codec.ClockRate)
			if !ok {
				req.done <- ErrNoTelephoneEvent
			} else {
				total := uint32(req.duration.Seconds() * float64(st.codec.ClockRate))
				// The duration field has 16 bits: at 48 kHz an event lasts at most 1.36 s
				// (RFC 4733 long-duration segments are not sent).
				total = min(total, 0xFFFF/st.spf*st.spf)
				total = max(total, st.spf)
				st.play = &dtmfPlay{req: req, pt: pt, startTS: st.ts, total: total}
			}
		}
	}
	if st.play != nil {
		m.eventTick(st)
		return
	}
	if st.gap > 0 {
		st.gap--
	}
	var payload []byte
	switch strings.ToUpper(st.codec.Name) {
	case "PCMU", "PCMA":
		sine(st.pcm, m.cfg.toneHz, st.codec.ClockRate, st.sample)
		st.payload = st.payload[:0]
		alaw := strings.EqualFold(st.codec.Name, "PCMA")
		for _, s := range st.pcm {
			if alaw {
				st.payload = append(st.payload, g711.EncodeALaw(s))
			} else {
				st.payload = append(st.payload, g711.EncodeULaw(s))
			}
		}
		payload = st.payload
	case "OPUS":
		payload = opusFrame(m.cfg.opusBytes)
	default:
		return // bound to a format the client does not produce: nothing to send
	}
	h := &rtp.Header{Version: 2, Marker: st.marker, PayloadType: st.codec.PayloadType, SequenceNumber: st.seq, Timestamp: st.ts}
	if m.write(m.audioTrack, h, payload) {
		st.marker = false
		st.seq++
	}
}

// eventTick sends the next packet of the playing event: updates with a growing duration, then
// the end packet three times (RFC 4733 2.5.1), all with the event's start timestamp and fresh
// sequence numbers.
func (m *media) eventTick(st *audioState) {
	p := st.play
	ev := telephoneEvent{code: p.req.code, volume: dtmfVolume}
	first := p.elapsed == 0
	if p.ends == 0 && p.elapsed+st.spf < p.total {
		p.elapsed += st.spf
	} else {
		p.elapsed = p.total
		ev.end = true
		p.ends++
	}
	ev.duration = uint16(p.elapsed)
	h := &rtp.Header{Version: 2, Marker: first, PayloadType: p.pt, SequenceNumber: st.seq, Timestamp: p.startTS}
	if m.write(m.audioTrack, h, ev.marshal()) {
		st.seq++
	}
	if p.ends == dtmfEndRepeats {
		m.mu.Lock()
		m.dtmfSent++
		m.mu.Unlock()
		p.req.done <- nil
		st.play, st.marker, st.gap = nil, true, dtmfGapFrames
	}
}

func (m *media) nextDTMF() *dtmfRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.dtmfQueue) == 0 {
		return nil
	}
	r := m.dtmfQueue[0]
	m.dtmfQueue = m.dtmfQueue[1:]
	return r
}

// eventPayloadType is the negotiated telephone-event format at the audio codec's clock rate.
func (m *media) eventPayloadType(clock uint32) (uint8, bool) {
	for _, c := range m.audioSender.GetParameters().Codecs {
		if strings.EqualFold(c.MimeType, "audio/telephone-event") && c.ClockRate == clock {
			return uint8(c.PayloadType), true
		}
	}
	return 0, false
}

// sendDTMF plays digits in the audio stream, one after the other, and returns once the last
// end packet is sent.
func (m *media) sendDTMF(ctx context.Context, digits string, d time.Duration) error {
	var reqs []*dtmfRequest
	for _, r := range digits {
		code, err := dtmfCode(string(r))
		if err != nil {
			return err
		}
		reqs = append(reqs, &dtmfRequest{code: code, duration: d, done: make(chan error, 1)})
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ErrCallEnded
	}
	m.dtmfQueue = append(m.dtmfQueue, reqs...)
	m.mu.Unlock()
	for _, r := range reqs {
		select {
		case err := <-r.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// write sends one packet on a track and counts it (the tap logs it as it leaves); false when it
// was not sent.
func (m *media) write(t *rtc.TrackLocal, h *rtp.Header, payload []byte) bool {
	if err := t.WriteRTP(h, payload); err != nil {
		if !errors.Is(err, rtc.ErrTrackNotBound) && !errors.Is(err, io.ErrClosedPipe) {
			m.log.Debug("webclient: RTP write", "kind", t.Kind(), "err", err)
		}
		return false
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.audio
	if t == m.videoTrack {
		s = &m.video.MediaStats
	}
	if s.FirstSent.IsZero() {
		s.FirstSent = now
	}
	s.PacketsSent++
	s.BytesSent += uint64(len(payload))
	return true
}

// ---- video source ----

// sendVideo sends the synthetic VP8 stream of internal/vp8synth: frames at the frame rate whose
// sizes follow the target bitrate, a key frame at the start, every keyFrameEvery and on PLI/FIR,
// each frame cut into RTP packets with a VP8 payload descriptor, the marker on the last, 90 kHz
// timestamps. With the bandwidth estimator, each frame takes the encoder's bitrate from its
// current target (videoBitrateFor).
func (m *media) sendVideo() {
	defer m.wg.Done()
	rng := rand.New(rand.NewPCG(m.cfg.seed, 3))
	var src videoSource = vp8synth.NewSource(m.cfg.seed, m.cfg.videoBitrate, m.cfg.videoFPS, m.cfg.keyFrameEvery)
	packetize := vp8synth.Packetize
	if strings.EqualFold(m.cfg.video.Name, "H264") {
		src = h264synth.NewSource(m.cfg.seed, m.cfg.videoBitrate, m.cfg.videoFPS, m.cfg.keyFrameEvery)
		packetize = h264synth.Packetize
	}
	ticker := time.NewTicker(src.Interval())
	defer ticker.Stop()
	seq, ts := uint16(rng.Uint32()), rng.Uint32()
	for {
		if c, ok := m.videoTrack.Codec(); ok {
			if m.bwe != nil {
				rate := m.videoBitrateFor(m.bwe.GetTargetBitrate())
				m.videoRate.Store(int64(rate))
				src.SetBitrate(rate)
			}
			frame, key := src.Next(time.Now(), m.keyFrame.Swap(false))
			seq = m.sendFrame(c, packetize(frame), key, seq, ts)
			ts += src.TimestampStep()
		}
		select {
		case <-m.stopCh:
			return
		case <-ticker.C:
		}
	}
}

// videoSource is a synthetic encoder: vp8synth's or h264synth's.
type videoSource interface {
	SetBitrate(bitrate int)
	Next(now time.Time, forceKey bool) ([]byte, bool)
	Interval() time.Duration
	TimestampStep() uint32
}

// sendFrame sends one frame's payloads and returns the next sequence number.
func (m *media) sendFrame(c rtc.Codec, payloads [][]byte, key bool, seq uint16, ts uint32) uint16 {
	sentAll := true
	for i, payload := range payloads {
		h := &rtp.Header{Version: 2, Marker: i == len(payloads)-1, PayloadType: c.PayloadType, SequenceNumber: seq, Timestamp: ts}
		if m.write(m.videoTrack, h, payload) {
			seq++
		} else {
			sentAll = false
		}
	}
	if sentAll {
		m.mu.Lock()
		m.video.SendCodec = c.Name
		m.video.FramesSent++
		if key {
			m.video.KeyFramesSent++
		}
		m.mu.Unlock()
	}
	return seq
}

// ---- receivers ----

// onTrack reads one remote track until the PeerConnection closes, and its receiver's RTCP.
func (m *media) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	if !m.enter() {
		return
	}
	defer m.wg.Done()
	if m.enter() {
		go m.readReceiverRTCP(recv)
	}
	kind := track.Kind().String()
	failures := 0
	for {
		pkt, attr, err := track.ReadRTP()
		if err != nil {
			if m.isStopped() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) {
				return
			}
			// A packet pion could not hand over (e.g. an unnegotiated payload type).
			if failures++; failures > 1000 {
				m.log.Warn("webclient: track keeps failing", "kind", kind, "err", err)
				return
			}
			m.mu.Lock()
			if kind == "video" {
				m.video.Invalid++
			} else {
				m.audio.Invalid++
			}
			m.mu.Unlock()
			continue
		}
		failures = 0
		repaired := RepairNone
		switch {
		case viaRTX(attr):
			repaired = RepairRTX
		case rtc.RecoveredBy(attr) == rtc.RecoveredRED:
			repaired = RepairRED
		case rtc.RecoveredBy(attr) == rtc.RecoveredFlexFEC:
			repaired = RepairFEC
		}
		m.record(kind, track.Codec(), pkt, repaired, time.Now())
	}
}

// record counts and logs one received packet; repaired is what the receive path knows of its
// repair (RTX, a FEC or RED recovery), and a late packet the client had NACKed is a NACK repair.
func (m *media) record(kind string, codec webrtc.RTPCodecParameters, pkt *rtp.Packet, repaired string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.audio
	if kind == "video" {
		s = &m.video.MediaStats
	}
	s.PacketsReceived++
	s.BytesReceived += uint64(len(pkt.Payload))
	if s.FirstReceived.IsZero() {
		s.FirstReceived = now
	}
	s.LastReceived = now
	sc := m.streams[pkt.SSRC]
	if sc == nil {
		sc = &streamCounter{kind: kind, base: int64(pkt.SequenceNumber), max: int64(pkt.SequenceNumber), seen: map[int64]struct{}{}}
		m.streams[pkt.SSRC] = sc
	}
	// Extend the 16-bit sequence number to the value nearest the highest one seen.
	ext := sc.max + int64(int16(pkt.SequenceNumber-uint16(sc.max)))
	_, dup := sc.seen[ext]
	if repaired == RepairNone && !dup && ext < sc.max && m.tap != nil && m.tap.wasNacked(pkt.SSRC, pkt.SequenceNumber) {
		repaired = RepairNACK
	}
	if len(m.received) < m.cfg.logLimit {
		m.received = append(m.received, PacketRecord{
			At: now, Kind: kind, SSRC: pkt.SSRC, Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp,
			PayloadType: pkt.PayloadType, Marker: pkt.Marker, Size: pkt.MarshalSize(), Repaired: repaired,
		})
	}
	if dup {
		s.Duplicates++
		return
	}
	switch repaired {
	case RepairNACK:
		s.NACKRepaired++
	case RepairRTX:
		s.RTXRepaired++
	case RepairFEC:
		s.FECRecovered++
	case RepairRED:
		s.REDRecovered++
	}
	sc.seen[ext] = struct{}{}
	switch {
	case ext > sc.max:
		sc.max = ext
	case ext < sc.base:
		sc.base = ext
		s.Reordered++
	case ext < sc.max:
		s.Reordered++
	}

	_, name, _ := strings.Cut(codec.MimeType, "/")
	if kind == "video" {
		m.recordVideo(pkt, name)
		s.ReceiveCodec = name
		return
	}
	switch strings.ToUpper(name) {
	case "TELEPHONE-EVENT":
		m.recordEvent(pkt, codec.ClockRate, now)
		return
	case "PCMU", "PCMA":
		samples := make([]int16, len(pkt.Payload))
		for i, b := range pkt.Payload {
			if strings.EqualFold(name, "PCMA") {
				samples[i] = g711.DecodeALaw(b)
			} else {
				samples[i] = g711.DecodeULaw(b)
			}
		}
		m.frames = tone.Window(m.frames, tone.Frame{TS: pkt.Timestamp, Samples: samples}, toneWindow)
		m.frameRate = codec.ClockRate
	default:
		m.opaque = true
	}
	s.ReceiveCodec = name
}

// recordEvent logs RFC 4733 digits: a new timestamp starts an event, later packets of it
// update its duration and end.
func (m *media) recordEvent(pkt *rtp.Packet, clock uint32, now time.Time) {
	ev, ok := parseTelephoneEvent(pkt.Payload)
	digit := digitOf(ev.code)
	if !ok || digit == "" || clock == 0 {
		return
	}
	dur := time.Duration(ev.duration) * time.Second / time.Duration(clock)
	st := m.events[pkt.SSRC]
	if st != nil && st.ts == pkt.Timestamp {
		e := &m.dtmf[st.index]
		e.Duration = max(e.Duration, dur)
		e.Ended = e.Ended || ev.end
		return
	}
	if st != nil && int32(pkt.Timestamp-st.ts) < 0 {
		return // a late packet of an older event
	}
	m.dtmf = append(m.dtmf, DTMFEvent{At: now, Digit: digit, Duration: dur, Source: DTMFFromRTP, Ended: ev.end})
	m.events[pkt.SSRC] = &eventState{ts: pkt.Timestamp, index: len(m.dtmf) - 1}
}

// recordVideo counts frames by timestamp and key frames by their VP8 frame tag or, for H.264,
// by the IDR slices reassembled, whose NAL units are checked (h264synth.Depacketizer).
func (m *media) recordVideo(pkt *rtp.Packet, codec string) {
	last, seen := m.lastFrame[pkt.SSRC]
	if !seen || int32(pkt.Timestamp-last) > 0 {
		m.lastFrame[pkt.SSRC] = pkt.Timestamp
		m.video.FramesReceived++
	}
	if strings.EqualFold(codec, "H264") {
		d := m.h264[pkt.SSRC]
		if d == nil {
			d = &h264synth.Depacketizer{}
			m.h264[pkt.SSRC] = d
		}
		before := d.Stats()
		if d.Push(pkt.SequenceNumber, pkt.Payload) {
			m.video.KeyFramesReceived++
		}
		after := d.Stats()
		m.video.NALUnits += after.NALUnits - before.NALUnits
		m.video.CorruptNALUnits += after.Corrupt - before.Corrupt
		return
	}
	if key, ok := vp8synth.KeyFrameStart(pkt.Payload); ok && key {
		m.video.KeyFramesReceived++
	}
}

// ---- reports ----

func (m *media) stats() (audio MediaStats, video VideoStats, dtmfSent int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	audio, video = m.audio, m.video
	if m.tap != nil {
		audio.Retransmitted, audio.FECSent, video.Retransmitted, video.FECSent = m.tap.counts()
	}
	for _, sc := range m.streams {
		lost := uint64(max(sc.max-sc.base+1-int64(len(sc.seen)), 0))
		if sc.kind == "video" {
			video.Lost += lost
		} else {
			audio.Lost += lost
		}
	}
	return audio, video, m.dtmfSent
}

func (m *media) toneFrequency() (float64, error) {
	m.mu.Lock()
	frames, rate, opaque := append([]tone.Frame(nil), m.frames...), m.frameRate, m.opaque
	m.mu.Unlock()
	if len(frames) == 0 && opaque {
		return 0, ErrUndecodable
	}
	return tone.Estimate(frames, rate)
}

func (m *media) packets() (sent, received []PacketRecord) {
	if m.tap != nil {
		sent = m.tap.packets()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return sent, append([]PacketRecord(nil), m.received...)
}

func (m *media) dtmfEvents() []DTMFEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]DTMFEvent(nil), m.dtmf...)
}
