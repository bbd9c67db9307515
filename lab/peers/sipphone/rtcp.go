package sipphone

import (
	"errors"
	"math"
	"net"
	"time"

	"github.com/pion/rtcp"
)

const rtcpInterval = 5 * time.Second

// senderInfo is what a reception report needs of the peer's last sender report.
type senderInfo struct {
	lsr     uint32 // middle 32 bits of its NTP timestamp
	arrival time.Time
}

// reportRTCP sends a compound RTCP packet every 5 s once the peer is known: a sender report while
// the tone is sent (a receiver report otherwise) with a reception block for the peer's last
// source, and an SDES CNAME (RFC 3550 6.1).
func (m *Media) reportRTCP() {
	defer m.wg.Done()
	ticker := time.NewTicker(rtcpInterval)
	defer ticker.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-ticker.C:
			m.sendRTCP(time.Now())
		}
	}
}

func (m *Media) sendRTCP(now time.Time) {
	m.mu.Lock()
	remote := m.rtcpRemote
	if !remote.IsValid() || remote.Addr().IsUnspecified() || remote.Port() == 0 {
		m.mu.Unlock()
		return
	}
	var reports []rtcp.ReceptionReport
	if src := m.lastSource; src != nil {
		reports = append(reports, m.receptionReport(src, now))
	}
	var report rtcp.Packet = &rtcp.ReceiverReport{SSRC: m.ssrc, Reports: reports}
	if m.stats.PacketsSent > 0 {
		report = &rtcp.SenderReport{
			SSRC:        m.ssrc,
			NTPTime:     ntpTime(now),
			RTPTime:     m.ts,
			PacketCount: uint32(m.stats.PacketsSent),
			OctetCount:  uint32(m.stats.BytesSent),
			Reports:     reports,
		}
	}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: m.ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: m.cname}},
	}}}
	m.mu.Unlock()

	buf, err := rtcp.Marshal([]rtcp.Packet{report, sdes})
	if err != nil {
		m.log.Warn("RTCP marshal", "error", err)
		return
	}
	if _, err := m.rtcpConn.WriteTo(buf, net.UDPAddrFromAddrPort(remote)); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			m.log.Debug("RTCP send", "error", err)
		}
		return
	}
	m.mu.Lock()
	m.stats.RTCPSent++
	m.mu.Unlock()
}

// receptionReport describes one received source (RFC 3550 6.4.1, A.3); m.mu is held.
func (m *Media) receptionReport(src *sourceState, now time.Time) rtcp.ReceptionReport {
	expected := src.max - src.base + 1
	received := int64(len(src.seen))
	lost := min(max(expected-received, 0), 1<<23-1)
	expectedInterval, receivedInterval := expected-src.priorExpect, received-src.priorRecv
	src.priorExpect, src.priorRecv = expected, received
	var fraction uint8
	if lostInterval := expectedInterval - receivedInterval; expectedInterval > 0 && lostInterval > 0 {
		fraction = uint8(lostInterval << 8 / expectedInterval)
	}
	rr := rtcp.ReceptionReport{
		SSRC:               src.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost),
		LastSequenceNumber: uint32(src.max),
		Jitter:             uint32(min(src.jitter, math.MaxUint32)),
	}
	if sr, ok := m.senderInfo[src.ssrc]; ok {
		rr.LastSenderReport = sr.lsr
		rr.Delay = uint32(now.Sub(sr.arrival).Seconds() * 65536)
	}
	return rr
}

// receiveRTCP reads the peer's RTCP: sender reports (kept for LSR/DLSR) and the reception
// reports about our stream.
func (m *Media) receiveRTCP() {
	defer m.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := m.rtcpConn.ReadFrom(buf)
		if err != nil {
			return
		}
		now := time.Now()
		packets, err := rtcp.Unmarshal(buf[:n])
		m.mu.Lock()
		if err != nil {
			m.stats.Invalid++
			m.mu.Unlock()
			continue
		}
		m.stats.RTCPReceived++
		for _, pkt := range packets {
			var reports []rtcp.ReceptionReport
			switch r := pkt.(type) {
			case *rtcp.SenderReport:
				m.senderInfo[r.SSRC] = senderInfo{lsr: uint32(r.NTPTime >> 16), arrival: now}
				reports = r.Reports
			case *rtcp.ReceiverReport:
				reports = r.Reports
			}
			for _, rr := range reports {
				if rr.SSRC == m.ssrc {
					m.stats.PeerReport = rr
					m.stats.PeerReports++
				}
			}
		}
		m.mu.Unlock()
	}
}

// ntpTime is t as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
