package media

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// rtcpCounters count the RTCP the bridge itself handles (pion's report interceptors and NACKs on
// the WebRTC leg are in rtc.RepairStats).
type rtcpCounters struct {
	srsSent, rrsSent               atomic.Uint64 // SIP leg
	rtcpFromSIP                    atomic.Uint64 // compound packets
	plisFromSIP, firsFromSIP       atomic.Uint64
	plisToSIP                      atomic.Uint64
	plisFromClient, firsFromClient atomic.Uint64
	plisToClient                   atomic.Uint64
}

// remoteReport is what a leg's receiver last reported about the stream the bridge sends it.
type remoteReport struct {
	mu           sync.Mutex
	fractionLost float64
	lost         int64
	jitter       uint32 // clock ticks
	rtt          time.Duration
}

func (r *remoteReport) update(rr rtcp.ReceptionReport, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fractionLost = float64(rr.FractionLost) / 256
	lost := int64(rr.TotalLost)
	if lost >= 1<<23 { // 24-bit signed
		lost -= 1 << 24
	}
	r.lost, r.jitter = lost, rr.Jitter
	if rr.LastSenderReport != 0 {
		// RFC 3550 6.4.1: A - LSR - DLSR, in 1/65536 s.
		a := uint32(ntpTime(now) >> 16)
		if d := int32(a - rr.LastSenderReport - rr.Delay); d >= 0 {
			r.rtt = time.Duration(int64(d) * int64(time.Second) >> 16)
		}
	}
}

// rtcpLoop sends every stream's SIP-leg report each RTCPInterval.
func (b *Bridge) rtcpLoop() {
	tick := time.NewTicker(b.cfg.RTCPInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-tick.C:
			b.mu.Lock()
			streams := b.streams
			b.mu.Unlock()
			for _, s := range streams {
				if s != nil {
					s.sendSIPReport(now)
				}
			}
		}
	}
}

// sendSIPReport sends the SIP leg's compound RTCP: an SR when the bridge sent media in the
// interval (else an RR), with a report block about the PBX's source, and the CNAME.
func (s *Stream) sendSIPReport(now time.Time) {
	s.toSIP.mu.Lock()
	out := s.toSIP.out
	s.toSIP.mu.Unlock()
	s.toWebRTC.mu.Lock()
	block, haveBlock := s.toWebRTC.in.reportBlock(now)
	s.toWebRTC.mu.Unlock()

	var reports []rtcp.ReceptionReport
	if haveBlock {
		reports = []rtcp.ReceptionReport{block}
	}
	var first rtcp.Packet
	if out.packets > 0 && now.Sub(out.lastAt) < 2*s.b.cfg.RTCPInterval {
		first = &rtcp.SenderReport{
			SSRC: s.sipSSRC, NTPTime: ntpTime(now), RTPTime: out.rtpTimeAt(now),
			PacketCount: uint32(out.packets), OctetCount: uint32(out.bytes), Reports: reports,
		}
		s.rtcpCount.srsSent.Add(1)
	} else {
		first = &rtcp.ReceiverReport{SSRC: s.sipSSRC, Reports: reports}
		s.rtcpCount.rrsSent.Add(1)
	}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: s.sipSSRC,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: s.b.cfg.CNAME}},
	}}}
	buf, err := rtcp.Marshal([]rtcp.Packet{first, sdes})
	if err != nil {
		s.b.log.Warn("media: marshal SIP RTCP", "err", err)
		return
	}
	if err := s.sip.writeRTCP(buf); err != nil && err != errNoRemote {
		s.b.log.Debug("media: send SIP RTCP", "err", err)
	}
}

// readSIPRTCP reads the SIP leg's RTCP socket.
func (s *Stream) readSIPRTCP() {
	buf := make([]byte, 1500)
	for {
		n, src, err := readFrom(s.sip.rtcp, buf)
		if err != nil {
			return
		}
		s.handleSIPRTCP(buf[:n], src)
	}
}

// handleSIPRTCP takes what the PBX reports: the SR time for our receiver reports, its report
// blocks about our stream, and key-frame requests, which cross to the client as PLI.
func (s *Stream) handleSIPRTCP(b []byte, src netip.AddrPort) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	s.sip.latchRTCP(src)
	now := time.Now()
	s.rtcpCount.rtcpFromSIP.Add(1)
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			s.toWebRTC.mu.Lock()
			if s.toWebRTC.in.started && p.SSRC == s.toWebRTC.in.ssrc {
				s.toWebRTC.in.lastSR, s.toWebRTC.in.lastSRAt = uint32(p.NTPTime>>16), now
			}
			s.toWebRTC.mu.Unlock()
			s.takeReports(&s.remoteSIP, p.Reports, s.sipSSRC, now)
		case *rtcp.ReceiverReport:
			s.takeReports(&s.remoteSIP, p.Reports, s.sipSSRC, now)
		case *rtcp.PictureLossIndication:
			s.rtcpCount.plisFromSIP.Add(1)
			s.keyFrameFromClient()
		case *rtcp.FullIntraRequest:
			s.rtcpCount.firsFromSIP.Add(1)
			s.keyFrameFromClient()
		}
	}
}

func (s *Stream) takeReports(r *remoteReport, reports []rtcp.ReceptionReport, ssrc uint32, now time.Time) {
	for _, rr := range reports {
		if rr.SSRC == ssrc {
			r.update(rr, now)
		}
	}
}

// readSenderRTCP reads the client's RTCP about the track the bridge sends (this read is also
// what feeds pion's NACK responder): receiver reports, and key-frame requests, which cross to
// the SIP leg as RTCP PLI and to the call layer (SIP INFO picture_fast_update).
func (s *Stream) readSenderRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		mine := s.track.SSRC()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.ReceiverReport:
				s.takeReports(&s.remoteRTC, p.Reports, mine, now)
			case *rtcp.SenderReport:
				s.takeReports(&s.remoteRTC, p.Reports, mine, now)
			case *rtcp.PictureLossIndication:
				s.rtcpCount.plisFromClient.Add(1)
				s.keyFrameFromSIP()
			case *rtcp.FullIntraRequest:
				s.rtcpCount.firsFromClient.Add(1)
				s.keyFrameFromSIP()
			}
		}
	}
}

// keyFrameFromSIP asks the PBX's video source for a key frame: RTCP PLI on the SIP leg, and
// the call layer's callback for SIP INFO.
func (s *Stream) keyFrameFromSIP() {
	s.toWebRTC.mu.Lock()
	media, ok := s.toWebRTC.in.ssrc, s.toWebRTC.in.started
	s.toWebRTC.mu.Unlock()
	if ok {
		if buf, err := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: s.sipSSRC, MediaSSRC: media}}); err == nil {
			if s.sip.writeRTCP(buf) == nil {
				s.rtcpCount.plisToSIP.Add(1)
			}
		}
	}
	if f := s.b.cfg.OnPictureFastUpdate; f != nil {
		f()
	}
}

// keyFrameFromClient asks the client's video sender for a key frame (PLI).
func (s *Stream) keyFrameFromClient() {
	media := s.remoteSSRC.Load()
	if media == 0 {
		return
	}
	if err := s.b.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: s.track.SSRC(), MediaSSRC: media}}); err == nil {
		s.rtcpCount.plisToClient.Add(1)
	}
}

// RequestKeyFrame asks the client for a key frame of the video it sends, e.g. when the PBX
// sent a SIP INFO picture_fast_update.
func (s *Stream) RequestKeyFrame() {
	if s.kind == webrtc.RTPCodecTypeVideo {
		s.keyFrameFromClient()
	}
}
