package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
)

var (
	errNoPeerConnection = errors.New("media: Config.PeerConnection is required")
	errStreamExists     = errors.New("media: stream of this kind already added")
	errNoCodecs         = errors.New("media: no codec pair")
	errPayloadConflict  = errors.New("media: payload type used twice")
	errClosed           = errors.New("media: bridge closed")
)

// Defaults of Config's zero values.
const (
	DefaultRTCPInterval = 5 * time.Second
	// DefaultDTMFInterval is RFC 4733's recommended update interval (2.5.1.2).
	DefaultDTMFInterval = 50 * time.Millisecond
	// DefaultDTMFDuration is the tone length of SendDTMF when none is given.
	DefaultDTMFDuration = 100 * time.Millisecond
)

// Config is one call's bridge.
type Config struct {
	// PeerConnection is the gateway's side of the client's call. The bridge adds its tracks,
	// takes its OnTrack handler, and reads the RTCP of its senders and receivers (pion's NACK
	// responder only sees NACKs that somebody reads).
	PeerConnection *webrtc.PeerConnection
	// Repair are the PeerConnection's repair counters (rtc.Peer.Repair), reported by Stats.
	Repair *rtc.RepairCounters
	// Net opens the SIP leg's sockets; nil is the standard network.
	Net transport.Net
	// LocalIP is where the SIP leg's sockets listen (the address for the SIP SDP); the zero
	// value listens on every address.
	LocalIP netip.Addr
	// PortMin and PortMax bound the SIP leg's ports (RTP even, RTCP the next); 0, 0: any.
	PortMin, PortMax uint16
	// RTCPInterval is the period of the SIP leg's SR/RR (default 5 s).
	RTCPInterval time.Duration
	// DTMFInterval is the update period of generated RFC 4733 events (default 50 ms).
	DTMFInterval time.Duration
	// OnDTMF receives the telephone-events detected on either leg (start and end of each; a
	// client's event the SIP leg has no telephone-event for: its end only, SIPInfo set). It
	// runs on the media path: it must not block.
	OnDTMF func(kind webrtc.RTPCodecType, ev DTMF)
	// OnPictureFastUpdate is called when the client asks for a key frame of the video it
	// receives (RTCP PLI or FIR). The bridge has already sent an RTCP PLI on the SIP leg;
	// a SIP INFO picture_fast_update is the call layer's to send. It must not block.
	OnPictureFastUpdate func()
	// CNAME is the SIP leg's RTCP CNAME (default: a random one).
	CNAME string
	// Logger gets the bridge's events (latching, source changes, RTCP errors); nil discards.
	Logger *slog.Logger
}

// Bridge is the media of one call: per media kind, a Stream between the PeerConnection and a
// plain RTP/RTCP socket pair toward the PBX. No transcoding: both legs carry the same formats.
type Bridge struct {
	cfg Config
	pc  *webrtc.PeerConnection
	net transport.Net
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the SIP leg's readers, the RTCP loop, DTMF senders

	mu      sync.Mutex
	streams [2]*Stream // audio, video
	drained map[*webrtc.RTPReceiver]bool
	closed  bool
}

// New builds a bridge on cfg.PeerConnection and starts its RTCP loop; add a Stream per media
// kind with AddStream.
func New(cfg Config) (*Bridge, error) {
	if cfg.PeerConnection == nil {
		return nil, errNoPeerConnection
	}
	if cfg.RTCPInterval <= 0 {
		cfg.RTCPInterval = DefaultRTCPInterval
	}
	if cfg.DTMFInterval <= 0 {
		cfg.DTMFInterval = DefaultDTMFInterval
	}
	if cfg.CNAME == "" {
		cfg.CNAME = fmt.Sprintf("siprtc-%016x", rand.Uint64())
	}
	b := &Bridge{cfg: cfg, pc: cfg.PeerConnection, net: cfg.Net, log: cfg.Logger, drained: map[*webrtc.RTPReceiver]bool{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.net == nil {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		b.net = std
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.pc.OnTrack(b.HandleTrack)
	b.wg.Go(b.rtcpLoop)
	return b, nil
}

func kindIndex(kind webrtc.RTPCodecType) int {
	if kind == webrtc.RTPCodecTypeVideo {
		return 1
	}
	return 0
}

// Stream returns the stream of kind, or nil.
func (b *Bridge) Stream(kind webrtc.RTPCodecType) *Stream {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streams[kindIndex(kind)]
}

// AddStream opens the SIP leg of one media kind (its address goes into the SIP SDP: LocalAddr)
// and adds the matching track to the PeerConnection. pairs are the formats both sides
// negotiated, preferred first (rtc.Selection.Pairs). Call it before creating the offer or the
// answer of the PeerConnection.
func (b *Bridge) AddStream(kind webrtc.RTPCodecType, pairs []rtc.Pair) (*Stream, error) {
	tables, err := newCodecTables(pairs)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.streams[kindIndex(kind)] != nil {
		return nil, fmt.Errorf("%w: %s", errStreamExists, kind)
	}
	leg, err := openSIPLeg(b.net, b.cfg.LocalIP, b.cfg.PortMin, b.cfg.PortMax)
	if err != nil {
		return nil, err
	}
	var prefer []rtc.Codec
	for _, p := range pairs {
		prefer = append(prefer, p.WebRTC)
	}
	s := &Stream{
		b:       b,
		kind:    kind,
		sip:     leg,
		sipSSRC: rand.Uint32(),
		track:   rtc.NewTrackLocal(kind, prefer, kind.String(), "siprtc"),
	}
	s.codecs.Store(tables)
	s.toSIP.rw.ssrc = s.sipSSRC // the WebRTC track's SSRC is its sender's: TrackLocal sets it
	s.pipeline()
	sender, err := b.pc.AddTrack(s.track)
	if err != nil {
		_ = leg.close()
		return nil, fmt.Errorf("media: add %s track: %w", kind, err)
	}
	s.sender = sender
	b.streams[kindIndex(kind)] = s
	b.wg.Go(s.readSIP)
	b.wg.Go(s.readSIPRTCP)
	go s.readSenderRTCP() // ends when the PeerConnection closes
	return s, nil
}

// HandleTrack bridges a track the client sends; New installs it as the PeerConnection's
// OnTrack. A later track of the same kind (renegotiation) takes over: the SIP side's stream
// continues without a break in sequence numbers or timestamps.
func (b *Bridge) HandleTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	s := b.Stream(track.Kind())
	b.mu.Lock()
	if !b.drained[receiver] { // pion's receiver reports need the client's SRs read
		b.drained[receiver] = true
		go drainRTCP(receiver)
	}
	b.mu.Unlock()
	if s == nil {
		b.log.Warn("media: track of a kind without a stream, discarded", "kind", track.Kind(), "ssrc", track.SSRC())
		go drainTrack(track)
		return
	}
	s.remoteSSRC.Store(uint32(track.SSRC()))
	go s.readTrack(track) // ends when the track or the PeerConnection ends
}

// Close stops the SIP legs, the RTCP loop and pending DTMF, and waits for them. The readers
// bound to the PeerConnection end when it is closed (before or after Close).
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	streams := b.streams
	b.mu.Unlock()
	b.cancel()
	var errs []error
	for _, s := range streams {
		if s != nil {
			errs = append(errs, s.sip.close())
		}
	}
	b.wg.Wait()
	return errors.Join(errs...)
}

// Stream is one media kind of a call: the two directions of its media path and the SIP leg.
type Stream struct {
	b       *Bridge
	kind    webrtc.RTPCodecType
	track   *rtc.TrackLocal
	sender  *webrtc.RTPSender
	sip     *sipLeg
	sipSSRC uint32
	codecs  atomic.Pointer[codecTables]

	toSIP, toWebRTC direction

	remoteSSRC atomic.Uint32 // the client's track, the target of key-frame requests
	rtcpCount  rtcpCounters
	remoteSIP  remoteReport // the PBX's report blocks about what the bridge sends
	remoteRTC  remoteReport // the client's

	dtmfMu [2]sync.Mutex // one generated event at a time per destination leg
}

// direction is one way of a stream: its handler chain and the state the handlers keep. The
// reader holds mu while a packet runs through the chain; SendDTMF and Stats take it too.
type direction struct {
	mu     sync.Mutex
	path   Path
	in     receiveStats // the source leg's packets
	out    sendStats    // what the destination leg was sent
	rw     rewriter
	dtmf   dtmfDetector
	dtmfIn uint64         // events detected on the source leg
	gen    generatedEvent // SendDTMF's event in progress toward the destination leg
	held   atomic.Bool    // the destination does not receive (it holds the call): drop
	write  Writer         // the whole chain
	inject Writer         // the chain from the rewrite step on: generated packets enter here
	pkt    Packet
	wbuf   [1500]byte
}

// pipeline assembles both directions of the stream's media path: read it top to bottom, a
// packet read on one leg goes through these steps in order and is written on the other. pion
// works on either side of it: before TrackRemote.Read it has decrypted SRTP, generated NACKs
// and unwrapped RTX; after TrackLocal.WriteRTP it keeps packets for NACKs, adds its
// interceptors' work and encrypts. The SIP leg's RTCP and the translation of key-frame
// requests run beside the chain (rtcp.go).
func (s *Stream) pipeline() {
	tables := s.codecs.Load

	// WebRTC -> SIP: the client's packets, repaired by pion, onto the PBX's RTP socket.
	s.toSIP.path = Path{Kind: s.kind, From: LegWebRTC, To: LegSIP}
	s.toSIP.write = Chain(s.toSIP.path, WriterFunc(s.writeSIP),
		classify(tables, LegWebRTC),                        // payload type -> format, clock, SIP payload type
		countIn(&s.toSIP.in),                               // WebRTC leg receive stats: loss, late, duplicates (dropped), jitter, RTX repairs
		detectDTMF(&s.toSIP.dtmf, s.reportDTMF(LegWebRTC)), // RFC 4733 events to the call layer
		consumeEvents(&s.toSIP.rw),                         // events the SIP side lacks: not forwarded (SIP INFO), no sequence gap
		mapPayloadType(),                                   // to the SIP side's payload type; what it lacks is dropped
		stripExtensions(),                                  // their ids belong to the client's negotiation
		endGeneratedEvent(&s.toSIP.gen),                    // a forwarded event ends SendDTMF's: no overlap
		injectHere(&s.toSIP.inject),                        // SendDTMF's generated packets enter here
		rewrite(&s.toSIP.rw),                               // into the SIP stream: our SSRC, continuous sequence and timestamps
		countOut(&s.toSIP.out),                             // what the SIP leg's sender reports state
	)

	// SIP -> WebRTC: the PBX's packets onto the client's track (pion then keeps them for
	// NACKs and encrypts).
	s.toWebRTC.path = Path{Kind: s.kind, From: LegSIP, To: LegWebRTC}
	s.toWebRTC.write = Chain(s.toWebRTC.path, WriterFunc(s.writeWebRTC),
		latch(s.sip),             // symmetric RTP: the first source becomes the destination
		classify(tables, LegSIP), // payload type -> format, clock, WebRTC payload type
		countIn(&s.toWebRTC.in),  // SIP leg receive stats, the source of its receiver reports
		detectDTMF(&s.toWebRTC.dtmf, s.reportDTMF(LegSIP)), // RFC 4733 events to the call layer
		dropWhileHeld(&s.toWebRTC.held, &s.toWebRTC.rw),    // the client holds the call: it gets nothing
		mapPayloadType(),                   // to the client's payload type; what it lacks is dropped
		stripExtensions(),                  // their ids belong to the PBX's side
		endGeneratedEvent(&s.toWebRTC.gen), // a forwarded event ends SendDTMF's: no overlap
		injectHere(&s.toWebRTC.inject),     // SendDTMF's generated packets enter here
		rewrite(&s.toWebRTC.rw),            // continuous across re-INVITEs and PBX source changes
		countOut(&s.toWebRTC.out),          // what the WebRTC leg was sent
	)
}

// writeSIP is the WebRTC -> SIP sink: the packet onto the SIP leg's RTP socket.
func (s *Stream) writeSIP(p *Packet) error {
	buf := s.toSIP.wbuf[:]
	n, err := p.Header.MarshalTo(buf)
	if err != nil {
		return err
	}
	n += copy(buf[n:], p.Payload)
	return s.sip.writeRTP(buf[:n])
}

// writeWebRTC is the SIP -> WebRTC sink: the packet onto the client's track.
func (s *Stream) writeWebRTC(p *Packet) error {
	return s.track.WriteRTP(&p.Header, p.Payload)
}

func (s *Stream) reportDTMF(from Leg) func(DTMF) {
	d := &s.toSIP
	if from == LegSIP {
		d = &s.toWebRTC
	}
	return func(ev DTMF) {
		ev.From = from
		if !ev.End || ev.SIPInfo { // a consumed event is reported at its end only
			d.dtmfIn++
		}
		if f := s.b.cfg.OnDTMF; f != nil {
			f(s.kind, ev)
		}
	}
}

// deliver parses one datagram and runs it through d's chain.
func (d *direction) deliver(buf []byte, at time.Time, src netip.AddrPort, repaired bool) {
	d.deliverPacket(buf, at, src, repaired, false)
}

// deliverPacket is deliver for a packet that may have been rebuilt by RED or FlexFEC.
func (d *direction) deliverPacket(buf []byte, at time.Time, src netip.AddrPort, repaired, recovered bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := &d.pkt
	hl, err := p.Header.Unmarshal(buf)
	if err != nil {
		d.in.dropped++
		return
	}
	end := len(buf)
	if p.Header.Padding {
		end -= int(buf[len(buf)-1])
		p.Header.Padding, p.Header.PaddingSize = false, 0
	}
	if end <= hl {
		d.in.dropped++ // padding-only: pion's RTX probes
		return
	}
	p.Payload, p.Arrival, p.Source, p.Repaired, p.Generated = buf[hl:end], at, src, repaired, false
	p.Recovered = recovered
	if err := d.write.Write(p); err != nil {
		d.in.dropped++
	}
}

// readTrack runs the WebRTC -> SIP direction for one of the client's tracks.
func (s *Stream) readTrack(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		n, attr, err := track.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.b.log.Debug("media: track ended", "kind", s.kind, "err", err)
			}
			return
		}
		repaired := attr != nil && attr.Get(webrtc.AttributeRtxSsrc) != nil
		s.toSIP.deliverPacket(buf[:n], time.Now(), netip.AddrPort{}, repaired, recovered(attr))
	}
}

// readSIP runs the SIP -> WebRTC direction; RTCP multiplexed on the RTP port is handled too.
func (s *Stream) readSIP() {
	buf := make([]byte, 1500)
	for {
		n, src, err := readFrom(s.sip.rtp, buf)
		if err != nil {
			return
		}
		if isRTCP(buf[:n]) {
			s.handleSIPRTCP(buf[:n], src)
			continue
		}
		s.toWebRTC.deliver(buf[:n], time.Now(), src, false)
	}
}

func udpAddrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return addrPort(u.AddrPort())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return addrPort(ap)
}

func drainTrack(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := track.Read(buf); err != nil {
			return
		}
	}
}

func drainRTCP(receiver *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := receiver.Read(buf); err != nil {
			return
		}
	}
}

// LocalAddr is the SIP leg's RTP address (RTCP is on the next port): what the SIP SDP states.
func (s *Stream) LocalAddr() netip.AddrPort { return s.sip.local }

// SSRC is the SIP leg's SSRC (a=ssrc in the SIP SDP, if the call layer writes one).
func (s *Stream) SSRC() uint32 { return s.sipSSRC }

// SetRemote points the SIP leg at the PBX's addresses from its SDP (rtcp zero: the RTP port
// + 1; rtcpMux: RTCP on the RTP port). The bridge still latches onto the address the PBX's
// RTP actually comes from. Call it again after a re-INVITE.
func (s *Stream) SetRemote(rtpAddr, rtcpAddr netip.AddrPort, rtcpMux bool) {
	s.toWebRTC.mu.Lock()
	defer s.toWebRTC.mu.Unlock()
	s.sip.setRemote(rtpAddr, rtcpAddr, rtcpMux)
}

// SetCodecs replaces the payload type mapping after a renegotiation of either leg.
func (s *Stream) SetCodecs(pairs []rtc.Pair) error {
	t, err := newCodecTables(pairs)
	if err != nil {
		return err
	}
	s.codecs.Store(t)
	return nil
}

func newCodecTables(pairs []rtc.Pair) (*codecTables, error) {
	if len(pairs) == 0 {
		return nil, errNoCodecs
	}
	t := &codecTables{pairs: append([]rtc.Pair(nil), pairs...)}
	for _, p := range pairs {
		if p.WebRTCOnly() { // a client-only telephone-event: consumed on its way to SIP
			e := &t.from[LegWebRTC][p.WebRTC.PayloadType&0x7f]
			if e.known || !p.WebRTC.IsTelephoneEvent() {
				return nil, fmt.Errorf("%w: %d on the %s leg", errPayloadConflict, p.WebRTC.PayloadType, LegWebRTC)
			}
			*e = codecEntry{known: true, clock: p.WebRTC.ClockRate, event: true, consume: true}
			continue
		}
		sides := [2]rtc.Codec{LegWebRTC: p.WebRTC, LegSIP: p.SIP}
		for from := range sides {
			in, out := sides[from], sides[1-from]
			e := &t.from[from][in.PayloadType&0x7f]
			if e.known {
				return nil, fmt.Errorf("%w: %d on the %s leg", errPayloadConflict, in.PayloadType, Leg(from))
			}
			*e = codecEntry{known: true, out: out.PayloadType, clock: in.ClockRate, event: in.IsTelephoneEvent()}
		}
	}
	return t, nil
}

// HoldToWebRTC stops (held) or resumes forwarding the PBX's media to the client. The client
// holds the call when its last offer said sendonly or inactive: it then gets nothing, whatever
// the PBX sends (Asterisk keeps sending after answering a hold recvonly). Receive statistics,
// RTCP and DTMF detection go on, and the client's stream resumes with continuous sequence
// numbers.
func (s *Stream) HoldToWebRTC(held bool) { s.toWebRTC.held.Store(held) }

// SendDTMF sends one digit (0-9, *, #, A-D) as RFC 4733 events on leg to: a first packet with
// the marker bit, updates every DTMFInterval, three end packets; d is the tone's length (0:
// DefaultDTMFDuration). It returns when the last packet is sent. The event's clock is that of
// the audio codec flowing to the leg, so the leg needs telephone-event at that rate.
func (s *Stream) SendDTMF(ctx context.Context, to Leg, digit rune, d time.Duration) error {
	if d <= 0 {
		d = DefaultDTMFDuration
	}
	dir := &s.toSIP
	if to == LegWebRTC {
		dir = &s.toWebRTC
	}
	s.dtmfMu[to].Lock()
	defer s.dtmfMu[to].Unlock()

	dir.mu.Lock()
	entry, err := s.eventCodec(to, dir.rw.clockRate)
	dir.mu.Unlock()
	if err != nil {
		return err
	}
	plan, err := newDTMFPlan(digit, d, s.b.cfg.DTMFInterval, entry.clock)
	if err != nil {
		return err
	}
	tick := time.NewTicker(s.b.cfg.DTMFInterval)
	defer tick.Stop()
	if err := s.awaitForwardedEventEnd(ctx, dir, tick.C); err != nil {
		return err
	}
	defer func() {
		dir.mu.Lock()
		dir.gen = generatedEvent{}
		dir.mu.Unlock()
	}()
	var ts uint32
	var buf [4]byte
	for first := true; ; first = false {
		payload, marker, done := plan.next(buf[:])
		if done {
			return nil
		}
		now := time.Now()
		dir.mu.Lock()
		if dir.gen.cut { // a forwarded event started: this one was ended for it
			dir.mu.Unlock()
			return nil
		}
		if first {
			ts = rand.Uint32()
			if dir.rw.sent {
				ts = dir.rw.nowTS(now, entry.clock)
			}
			dir.out.dtmfEvents++
			dir.gen = generatedEvent{active: true, ts: ts, entry: entry, code: plan.code}
		}
		if ev, err := parseTelephoneEvent(payload); err == nil {
			dir.gen.duration = ev.duration
			dir.gen.active = !ev.end
		}
		p := &Packet{
			Header:  rtp.Header{Version: 2, Marker: marker, PayloadType: entry.out, SequenceNumber: uint16(rand.Uint32()), Timestamp: ts},
			Payload: payload, Arrival: now, Generated: true, codec: entry,
		}
		err := dir.inject.Write(p)
		dir.mu.Unlock()
		if err != nil && !errors.Is(err, rtc.ErrTrackNotBound) {
			return fmt.Errorf("media: dtmf to %s: %w", to, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.b.ctx.Done():
			return errClosed
		}
	}
}

// maxForwardedEventWait bounds how long SendDTMF waits for a forwarded event to end (its end
// packets may all be lost): longer than any key press.
const maxForwardedEventWait = 2 * time.Second

// awaitForwardedEventEnd waits, a tick at a time, until no event of the source leg is being
// forwarded on dir (its end packets included), so a generated event does not start inside it.
func (s *Stream) awaitForwardedEventEnd(ctx context.Context, dir *direction, tick <-chan time.Time) error {
	deadline := time.Now().Add(maxForwardedEventWait)
	for {
		dir.mu.Lock()
		// The repeated end packets come within an update interval or two of the first.
		busy := dir.dtmf.forwarding(time.Now(), 2*s.b.cfg.DTMFInterval)
		dir.mu.Unlock()
		if !busy || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.b.ctx.Done():
			return errClosed
		}
	}
}

// eventCodec is the telephone-event format toward leg to at clockRate (0: the first audio
// codec's), as an entry whose out field is the payload type on that leg.
func (s *Stream) eventCodec(to Leg, clockRate uint32) (codecEntry, error) {
	pairs := s.codecs.Load().pairs
	if clockRate == 0 {
		for _, p := range pairs {
			if !p.WebRTC.IsTelephoneEvent() {
				clockRate = p.WebRTC.ClockRate
				break
			}
		}
	}
	for _, p := range pairs {
		if p.WebRTC.IsTelephoneEvent() && p.WebRTC.ClockRate == clockRate && (to == LegWebRTC || !p.WebRTCOnly()) {
			out := p.SIP
			if to == LegWebRTC {
				out = p.WebRTC
			}
			return codecEntry{known: true, out: out.PayloadType, clock: clockRate, event: true}, nil
		}
	}
	return codecEntry{}, fmt.Errorf("%w at %d Hz toward the %s leg", errNoEventCodec, clockRate, to)
}
