package media

import (
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// Stats is a snapshot of a bridge's counters.
type Stats struct {
	Audio, Video StreamStats
	// Repair is what pion's NACK, RTX, report and TWCC machinery did on the WebRTC leg
	// (zero without Config.Repair).
	Repair rtc.RepairStats
}

// StreamStats are one media kind's counters, per leg.
type StreamStats struct {
	Active      bool // the call has this stream
	WebRTC, SIP LegStats
}

// LegStats count what crossed one leg of a stream, each way, and the RTCP the bridge handled.
type LegStats struct {
	// Received and ReceivedBytes (payload) count the packets read from the leg, duplicates
	// excluded.
	Received, ReceivedBytes uint64
	// Lost is RFC 3550's cumulative loss (expected - received), summed over the leg's
	// successive sources: what repair did not recover.
	Lost int64
	// Late packets arrived after a newer one: NACK retransmissions and reordering.
	Late uint64
	// Duplicates arrived twice and were dropped.
	Duplicates uint64
	// Repaired arrived through the client's RTX stream (WebRTC leg, video).
	Repaired uint64
	// Recovered were rebuilt from the client's RED (audio) or FlexFEC (video) packets
	// (WebRTC leg, with rtc.Config.RED or FlexFEC); rtc.RepairStats counts per mechanism.
	Recovered uint64
	// Dropped were not forwarded: a format the other leg lacks, a stale or unlatched source,
	// a malformed packet, or a duplicate.
	Dropped uint64
	// Sources counts the SSRCs (and restarts) the leg sent.
	Sources uint64
	// Jitter is the RFC 3550 interarrival jitter of the current source.
	Jitter time.Duration
	// DTMFReceived counts the RFC 4733 events detected on the leg.
	DTMFReceived uint64

	// Sent and SentBytes count the packets the bridge wrote to the leg, DTMFSent the events
	// it generated there.
	Sent, SentBytes, DTMFSent uint64

	// SRsSent and RRsSent are the bridge's reports (SIP leg; the WebRTC leg's come from pion,
	// see rtc.RepairStats).
	SRsSent, RRsSent uint64
	// RTCPReceived counts compound RTCP packets read (SIP leg).
	RTCPReceived uint64
	// PLIsReceived and FIRsReceived are the leg's key-frame requests, PLIsSent the ones the
	// bridge sent it.
	PLIsReceived, FIRsReceived, PLIsSent uint64
	// RemoteFractionLost, RemoteLost, RemoteJitter and RTT are from the leg's last report
	// block about what the bridge sends it.
	RemoteFractionLost float64
	RemoteLost         int64
	RemoteJitter       time.Duration
	RTT                time.Duration
}

// Stats returns a snapshot of every stream and of the repair counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	streams := b.streams
	b.mu.Unlock()
	st := Stats{Repair: b.cfg.Repair.Snapshot()}
	if s := streams[0]; s != nil {
		st.Audio = s.Stats()
	}
	if s := streams[1]; s != nil {
		st.Video = s.Stats()
	}
	return st
}

// Stats returns a snapshot of the stream's counters.
func (s *Stream) Stats() StreamStats {
	st := StreamStats{Active: true}
	// The WebRTC leg: received by the WebRTC -> SIP direction, sent by the other.
	s.toSIP.mu.Lock()
	fillIn(&st.WebRTC, &s.toSIP.in, s.toSIP.dtmfIn)
	fillOut(&st.SIP, &s.toSIP.out)
	s.toSIP.mu.Unlock()
	s.toWebRTC.mu.Lock()
	fillIn(&st.SIP, &s.toWebRTC.in, s.toWebRTC.dtmfIn)
	fillOut(&st.WebRTC, &s.toWebRTC.out)
	s.toWebRTC.mu.Unlock()

	c := &s.rtcpCount
	st.SIP.SRsSent, st.SIP.RRsSent, st.SIP.RTCPReceived = c.srsSent.Load(), c.rrsSent.Load(), c.rtcpFromSIP.Load()
	st.SIP.PLIsReceived, st.SIP.FIRsReceived, st.SIP.PLIsSent = c.plisFromSIP.Load(), c.firsFromSIP.Load(), c.plisToSIP.Load()
	st.WebRTC.PLIsReceived, st.WebRTC.FIRsReceived, st.WebRTC.PLIsSent = c.plisFromClient.Load(), c.firsFromClient.Load(), c.plisToClient.Load()
	fillRemote(&st.SIP, &s.remoteSIP, s.clockOf(LegSIP))
	fillRemote(&st.WebRTC, &s.remoteRTC, s.clockOf(LegWebRTC))
	return st
}

func fillIn(l *LegStats, in *receiveStats, dtmf uint64) {
	l.Received, l.ReceivedBytes = in.packets, in.bytes
	l.Lost, l.Late, l.Duplicates, l.Repaired, l.Recovered = in.lost(), in.late, in.duplicates, in.repaired, in.recovered
	l.Dropped, l.Sources, l.Jitter, l.DTMFReceived = in.dropped, in.sources, in.jitterDuration(), dtmf
}

func fillOut(l *LegStats, out *sendStats) {
	l.Sent, l.SentBytes, l.DTMFSent = out.packets, out.bytes, out.dtmfEvents
}

func fillRemote(l *LegStats, r *remoteReport, clock uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l.RemoteFractionLost, l.RemoteLost, l.RTT = r.fractionLost, r.lost, r.rtt
	if clock != 0 {
		l.RemoteJitter = time.Duration(int64(r.jitter) * int64(time.Second) / int64(clock))
	}
}

// clockOf is the clock of the first format of the stream (what report jitter counts in).
func (s *Stream) clockOf(Leg) uint32 {
	if pairs := s.codecs.Load().pairs; len(pairs) > 0 {
		return pairs[0].WebRTC.ClockRate
	}
	return 0
}

// Kind is the stream's media kind.
func (s *Stream) Kind() webrtc.RTPCodecType { return s.kind }
