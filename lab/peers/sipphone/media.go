package sipphone

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/siprtc/siprtc/internal/g711"
	"github.com/siprtc/siprtc/internal/tone"
)

const (
	frameDuration = 20 * time.Millisecond
	frameSamples  = 160 // 20 ms at 8 kHz
	toneAmplitude = 0.25 * math.MaxInt16
	// toneWindow is how many decoded audio frames ToneFrequency looks at: the last 2 s.
	toneWindow = 100
)

// Repair kinds of PacketRecord.Repaired.
const (
	RepairNone = ""
	// RepairNACK is a retransmission on the stream's own SSRC. The phone sends no NACK, so it
	// cannot tell a retransmission (done upstream: the gateway forwarding what a WebRTC client
	// resent to it) from reordering: a packet arriving after a higher sequence number counts as
	// one. The lab's links do not reorder unless told to (netem DelayModel.Reorder).
	RepairNACK = "nack"
	// RepairRTX, RepairFEC and RepairRED complete the set the WebRTC client uses; the phone
	// negotiates neither RTX nor FEC nor RED, so it never sees them.
	RepairRTX = "rtx"
	RepairFEC = "fec"
	RepairRED = "red"
)

// PacketRecord is one received RTP packet as the phone saw it.
type PacketRecord struct {
	Arrival     time.Time
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
	PayloadType uint8
	Marker      bool
	Size        int // whole RTP packet, bytes
	PayloadSize int
	// Repaired is RepairNACK for a packet that arrived after a higher sequence number (see
	// RepairNACK), "" otherwise.
	Repaired string
}

// SentRecord is one RTP packet the phone sent, audio or video.
type SentRecord struct {
	At          time.Time
	Kind        string // "audio" or "video"
	Seq         uint16
	Timestamp   uint32
	SSRC        uint32
	PayloadType uint8
	Marker      bool
	Size        int // whole RTP packet, bytes
	PayloadSize int
	// Retransmission marks a packet sent again; the phone answers no NACK, so it is always
	// false (the field keeps the log comparable with the WebRTC client's).
	Retransmission bool
}

// MediaStats are the counters of one call's RTP session.
type MediaStats struct {
	Codec       string
	PayloadType uint8
	LocalAddr   netip.AddrPort
	RemoteAddr  netip.AddrPort // where RTP is sent, from the peer's session description

	PacketsSent uint64
	BytesSent   uint64 // RTP payload bytes

	PacketsReceived uint64 // valid RTP packets, duplicates included
	BytesReceived   uint64 // RTP payload bytes
	Duplicates      uint64 // packets whose sequence number was already received
	Lost            uint64 // sequence numbers skipped and never received (tail loss is not seen)
	Reordered       uint64 // packets that arrived after a higher sequence number
	Invalid         uint64 // datagrams that were not RTP
	SSRCs           int    // distinct sources received

	// Jitter is the RFC 3550 interarrival jitter of the last source received.
	Jitter        time.Duration
	FirstReceived time.Time
	LastReceived  time.Time

	// Video are the video stream's counters (Video option).
	Video VideoStats

	RTCPSent     uint64 // compound RTCP packets (SR or RR, with SDES), one every 5 s
	RTCPReceived uint64
	// PeerReport is the last reception report the peer sent about our stream (PeerReports > 0).
	PeerReport  rtcp.ReceptionReport
	PeerReports uint64
}

// Media is the RTP session of a call: it sends a G.711 sine tone (or, with Opus negotiated, silent
// Opus: there is no Opus encoder in the module) in 20 ms frames to the peer and records every
// packet it sends and receives. RTP is symmetric: it goes out of the socket it is received on.
// RTCP runs on the next port: a sender or receiver report with SDES every 5 s, and the peer's
// reports are read.
type Media struct {
	conn     net.PacketConn
	rtcpConn net.PacketConn
	local    netip.AddrPort
	cname    string
	done     chan struct{} // closed by close
	log      *slog.Logger
	toneHz   float64
	logCap   int
	onClose  func(*Media)
	video    *videoStream // nil without the Video option

	mu         sync.Mutex
	remote     netip.AddrPort
	rtcpRemote netip.AddrPort
	senderInfo map[uint32]senderInfo // last SR of each peer source, for LSR/DLSR
	codec      codec
	hasCodec   bool
	stop       chan struct{} // closes the running sender
	closed     bool
	ssrc       uint32
	seq        uint16
	ts         uint32
	sample     uint64 // tone phase, in samples
	talkspurt  bool   // next packet starts a talkspurt: marker bit
	stats      MediaStats
	records    []PacketRecord
	sent       []SentRecord
	sources    map[uint32]*sourceState
	lastSource *sourceState
	frames     []tone.Frame // the last toneWindow decoded G.711 frames
	frameRate  uint32       // their sample rate
	opaque     bool         // audio arrived in a codec the phone cannot decode (Opus)
	wg         sync.WaitGroup
}

// sourceState tracks the sequence space of one received SSRC (RFC 3550 A.1, A.8).
type sourceState struct {
	ssrc         uint32
	base, max    int64 // extended sequence numbers
	priorExpect  int64 // expected and received at the last report, for the fraction lost
	priorRecv    int64
	seen         map[int64]struct{}
	jitter       float64 // timestamp units
	clockRate    float64
	firstArrival time.Time
	lastArrival  int64 // timestamp units since firstArrival
	lastTS       uint32
	havePrev     bool
}

// newMedia binds an RTP socket (and RTCP on the next port) in the phone's range. The receive loop
// runs from the start, so packets that arrive before the call is answered (early media) are
// recorded too.
func (p *Phone) newMedia() (*Media, error) {
	conn, rtcpConn, local, err := p.bindRTP()
	if err != nil {
		return nil, err
	}
	m := &Media{
		conn:       conn,
		rtcpConn:   rtcpConn,
		local:      local,
		cname:      fmt.Sprintf("%s@%s", p.cfg.User, p.cfg.LocalIP),
		done:       make(chan struct{}),
		log:        p.log,
		toneHz:     p.opts.toneHz,
		logCap:     p.opts.packetLogLimit,
		ssrc:       randUint32(),
		seq:        uint16(randUint32()),
		ts:         randUint32(),
		talkspurt:  true,
		sources:    make(map[uint32]*sourceState),
		senderInfo: make(map[uint32]senderInfo),
		onClose: func(m *Media) {
			p.mu.Lock()
			delete(p.medias, m)
			p.mu.Unlock()
		},
	}
	m.stats.LocalAddr = local
	if p.opts.video != nil {
		if m.video, err = p.newVideo(m); err != nil {
			_ = conn.Close()
			_ = rtcpConn.Close()
			return nil, err
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = conn.Close()
		_ = rtcpConn.Close()
		if m.video != nil {
			m.video.closeConns()
		}
		return nil, ErrClosed
	}
	p.medias[m] = struct{}{}
	m.wg.Add(3)
	if m.video != nil {
		m.wg.Add(2)
	}
	p.mu.Unlock()
	go m.receive()
	go m.receiveRTCP()
	go m.reportRTCP()
	if m.video != nil {
		go m.video.receive(m.video.conn)
		go m.video.receive(m.video.rtcpConn)
	}
	return m, nil
}

// bindRTP binds an even RTP port and the next one for RTCP through the phone's Net, trying pairs
// of the range from a random one.
func (p *Phone) bindRTP() (rtpConn, rtcpConn net.PacketConn, local netip.AddrPort, err error) {
	first := p.cfg.RTPPortMin + p.cfg.RTPPortMin%2
	if first+1 > p.cfg.RTPPortMax {
		return nil, nil, local, fmt.Errorf("%w: no even/odd pair in %d-%d", ErrNoRTPPort, p.cfg.RTPPortMin, p.cfg.RTPPortMax)
	}
	count := (p.cfg.RTPPortMax-1-first)/2 + 1
	start := int(randUint32() % uint32(count))
	var lastErr error
	for i := range min(count, 64) {
		port := first + 2*((start+i)%count)
		local = netip.AddrPortFrom(p.cfg.LocalIP, uint16(port))
		rtpConn, lastErr = p.cfg.Net.ListenPacket("udp4", local.String())
		if lastErr != nil {
			continue
		}
		rtcpConn, lastErr = p.cfg.Net.ListenPacket("udp4", netip.AddrPortFrom(p.cfg.LocalIP, uint16(port+1)).String())
		if lastErr == nil {
			return rtpConn, rtcpConn, local, nil
		}
		_ = rtpConn.Close()
	}
	return nil, nil, netip.AddrPort{}, fmt.Errorf("%w in %d-%d: %w", ErrNoRTPPort, p.cfg.RTPPortMin, p.cfg.RTPPortMax, lastErr)
}

// setRemote points the sender at the peer's address with the negotiated codec.
func (m *Media) setRemote(ra remoteAudio, c codec) {
	m.mu.Lock()
	addr := ra.addr
	m.remote = addr
	m.rtcpRemote = netip.AddrPortFrom(addr.Addr(), addr.Port()+1)
	if ra.rtcpPort != 0 {
		m.rtcpRemote = netip.AddrPortFrom(addr.Addr(), ra.rtcpPort)
	}
	m.codec, m.hasCodec = c, true
	m.stats.RemoteAddr = addr
	m.stats.Codec, m.stats.PayloadType = c.name, c.pt
	m.mu.Unlock()
	if m.video != nil {
		m.video.setRemote(ra.video)
	}
}

// Start starts sending the tone (a no-op if it is already sent). The phone starts it itself when a
// call is answered, unless the ManualMedia option is set.
func (m *Media) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return ErrClosed
	case !m.hasCodec:
		return fmt.Errorf("%w: no negotiated codec yet", ErrBadSDP)
	case m.stop != nil:
		m.video.start() // video accepted by a later offer or answer
		return nil
	}
	m.stop = make(chan struct{})
	m.talkspurt = true
	m.wg.Add(1)
	go m.send(m.stop)
	m.video.start()
	return nil
}

// Stop stops sending; receiving goes on until the call ends.
func (m *Media) Stop() {
	m.mu.Lock()
	if m.stop != nil {
		close(m.stop)
		m.stop = nil
	}
	m.mu.Unlock()
	m.video.halt()
}

// LocalAddr is the address RTP is received on and sent from.
func (m *Media) LocalAddr() netip.AddrPort { return m.local }

// Stats returns the counters so far.
func (m *Media) Stats() MediaStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.SSRCs = len(m.sources)
	var unique, expected uint64
	for _, src := range m.sources {
		unique += uint64(len(src.seen))
		expected += uint64(src.max - src.base + 1)
	}
	if expected > unique {
		s.Lost = expected - unique
	}
	if m.video != nil {
		s.Video = m.video.snapshot()
	}
	if m.lastSource != nil {
		s.Jitter = time.Duration(m.lastSource.jitter / m.lastSource.clockRate * float64(time.Second))
	}
	return s
}

// Received returns the per-packet log, in arrival order (at most PacketLogLimit entries).
func (m *Media) Received() []PacketRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]PacketRecord(nil), m.records...)
}

// Sent returns the per-packet log of what the phone sent, audio and video, in sending order (at
// most PacketLogLimit entries).
func (m *Media) Sent() []SentRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]SentRecord(nil), m.sent...)
}

// logSent adds a packet to the sent log.
func (m *Media) logSent(r SentRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sent) < m.logCap {
		m.sent = append(m.sent, r)
	}
}

// close stops sending and receiving and waits for both goroutines.
func (m *Media) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return
	}
	m.closed = true
	if m.stop != nil {
		close(m.stop)
		m.stop = nil
	}
	close(m.done)
	m.mu.Unlock()
	m.video.halt()
	_ = m.conn.Close()
	_ = m.rtcpConn.Close()
	if m.video != nil {
		m.video.closeConns()
	}
	m.wg.Wait()
	if m.onClose != nil {
		m.onClose(m)
	}
}

func (m *Media) send(stop chan struct{}) {
	defer m.wg.Done()
	ticker := time.NewTicker(frameDuration)
	defer ticker.Stop()
	pkt := &rtp.Packet{}
	buf := make([]byte, 1500)
	m.sendFrame(pkt, buf)
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			m.sendFrame(pkt, buf)
		}
	}
}

// sendFrame sends the next 20 ms of tone: sequence and timestamp advance by one frame each time.
func (m *Media) sendFrame(pkt *rtp.Packet, buf []byte) {
	m.mu.Lock()
	remote, c := m.remote, m.codec
	spf := c.samplesPerFrame()
	if !remote.IsValid() || remote.Addr().IsUnspecified() || remote.Port() == 0 {
		// On hold (c=0.0.0.0): the clock runs, nothing is sent.
		m.ts += spf
		m.sample += uint64(spf)
		m.mu.Unlock()
		return
	}
	pkt.Header = rtp.Header{
		Version:        2,
		Marker:         m.talkspurt,
		PayloadType:    c.pt,
		SequenceNumber: m.seq,
		Timestamp:      m.ts,
		SSRC:           m.ssrc,
	}
	if c.name == "opus" {
		pkt.Payload = opusFrame(opusFrameBytes)
	} else {
		pkt.Payload = pkt.Payload[:0]
		for i := range spf {
			t := float64(m.sample+uint64(i)) / float64(c.rate)
			s := int16(toneAmplitude * math.Sin(2*math.Pi*m.toneHz*t))
			if c.name == "PCMA" {
				pkt.Payload = append(pkt.Payload, g711.EncodeALaw(s))
			} else {
				pkt.Payload = append(pkt.Payload, g711.EncodeULaw(s))
			}
		}
	}
	m.talkspurt = false
	m.seq++
	m.ts += spf
	m.sample += uint64(spf)
	m.mu.Unlock()

	n, err := pkt.MarshalTo(buf)
	if err != nil {
		m.log.Warn("RTP marshal", "error", err)
		return
	}
	if _, err := m.conn.WriteTo(buf[:n], net.UDPAddrFromAddrPort(remote)); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			m.log.Debug("RTP send", "error", err)
		}
		return
	}
	m.mu.Lock()
	m.stats.PacketsSent++
	m.stats.BytesSent += uint64(len(pkt.Payload))
	m.mu.Unlock()
	m.logSent(SentRecord{
		At: time.Now(), Kind: "audio", Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC,
		PayloadType: pkt.PayloadType, Marker: pkt.Marker, Size: n, PayloadSize: len(pkt.Payload),
	})
}

func (m *Media) receive() {
	defer m.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := m.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.Version != 2 {
			m.mu.Lock()
			m.stats.Invalid++
			m.mu.Unlock()
			continue
		}
		m.record(now, &pkt, n)
	}
}

func (m *Media) record(now time.Time, pkt *rtp.Packet, size int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.stats
	s.PacketsReceived++
	s.BytesReceived += uint64(len(pkt.Payload))
	if s.FirstReceived.IsZero() {
		s.FirstReceived = now
	}
	s.LastReceived = now

	src := m.sources[pkt.SSRC]
	if src == nil {
		rate := 8000.0
		if m.hasCodec {
			rate = float64(m.codec.rate)
		}
		src = &sourceState{
			ssrc: pkt.SSRC, base: int64(pkt.SequenceNumber), max: int64(pkt.SequenceNumber),
			seen: make(map[int64]struct{}), clockRate: rate, firstArrival: now,
		}
		m.sources[pkt.SSRC] = src
	}
	m.lastSource = src
	// Extend the 16-bit sequence number to the value nearest the highest one seen.
	ext := src.max + int64(int16(pkt.SequenceNumber-uint16(src.max)))
	_, dup := src.seen[ext]
	repaired := RepairNone
	if !dup && ext < src.max {
		repaired = RepairNACK
	}
	if len(m.records) < m.logCap {
		m.records = append(m.records, PacketRecord{
			Arrival: now, Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp, SSRC: pkt.SSRC,
			PayloadType: pkt.PayloadType, Marker: pkt.Marker, Size: size, PayloadSize: len(pkt.Payload),
			Repaired: repaired,
		})
	}
	if dup {
		s.Duplicates++
		return
	}
	src.seen[ext] = struct{}{}
	switch {
	case ext > src.max:
		src.max = ext
	case ext < src.base:
		src.base = ext
		s.Reordered++
	case ext < src.max:
		s.Reordered++
	}

	m.decode(pkt)

	// Interarrival jitter, RFC 3550 6.4.1: D = (Rj-Ri) - (Sj-Si), in timestamp units; the
	// timestamp difference is taken modulo 2^32.
	arrival := int64(now.Sub(src.firstArrival).Seconds() * src.clockRate)
	if src.havePrev {
		d := float64(arrival-src.lastArrival) - float64(int32(pkt.Timestamp-src.lastTS))
		src.jitter += (math.Abs(d) - src.jitter) / 16
	}
	src.lastArrival, src.lastTS, src.havePrev = arrival, pkt.Timestamp, true
}

// decode keeps the decoded samples of a packet of the negotiated audio codec (G.711) for
// ToneFrequency; other payload types (telephone-event, comfort noise) are left out. Called
// with m.mu held.
func (m *Media) decode(pkt *rtp.Packet) {
	if !m.hasCodec || pkt.PayloadType != m.codec.pt {
		return
	}
	var decode func(byte) int16
	switch m.codec.name {
	case "PCMU":
		decode = g711.DecodeULaw
	case "PCMA":
		decode = g711.DecodeALaw
	default:
		m.opaque = true
		return
	}
	samples := make([]int16, len(pkt.Payload))
	for i, b := range pkt.Payload {
		samples[i] = decode(b)
	}
	m.frames = tone.Window(m.frames, tone.Frame{TS: pkt.Timestamp, Samples: samples}, toneWindow)
	m.frameRate = m.codec.rate
}

// ToneFrequency estimates the dominant frequency of the audio received over the last 2 s (the
// newest 100 frames of the negotiated codec, decoded: G.711 only). It returns ErrUndecodable
// when the audio is Opus, ErrNoTone when there is too little of it or it is silence.
func (m *Media) ToneFrequency() (float64, error) {
	m.mu.Lock()
	frames, rate, opaque := append([]tone.Frame(nil), m.frames...), m.frameRate, m.opaque
	m.mu.Unlock()
	if len(frames) == 0 && opaque {
		return 0, ErrUndecodable
	}
	return tone.Estimate(frames, rate)
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
