package rtc

import (
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RepairStats counts what one PeerConnection's repair and feedback machinery did. pion's NACK
// interceptors export no counters, so a counting interceptor sits innermost in the chain (next
// to SRTP) and sees everything they send and receive.
type RepairStats struct {
	// NACKsSent are the generator's NACK packets (for what the client sends), NACKedSent the
	// sequence numbers they asked for.
	NACKsSent, NACKedSent uint64
	// NACKsReceived are the client's NACK packets (for what the gateway sends), NACKedReceived
	// the sequence numbers they asked for.
	NACKsReceived, NACKedReceived uint64
	// Retransmissions are packets the responder sent again, RTXSent those of them on an RTX
	// stream: video, and audio with Config.SendAudioRTX once audio RTX is negotiated; other
	// audio is resent on its own SSRC.
	Retransmissions, RTXSent uint64
	// RTXReceived are RTX packets from the client, video or audio (pion unwraps them into the
	// track).
	RTXReceived uint64
	// PLIsSent, FIRsSent, PLIsReceived and FIRsReceived count key-frame requests each way.
	PLIsSent, FIRsSent, PLIsReceived, FIRsReceived uint64
	// TWCCFeedbackSent counts transport-wide congestion control feedback packets.
	TWCCFeedbackSent uint64
	// SRsSent and RRsSent count the report interceptors' sender and receiver reports.
	SRsSent, RRsSent uint64
	// REDSent are Opus packets sent RED-framed (Config.RED, once the client negotiated red),
	// REDReceived the client's RED packets decoded, REDRecovered the audio packets rebuilt
	// from their redundant blocks (lost on the way, and not seen before).
	REDSent, REDReceived, REDRecovered uint64
	// FlexFECSent are FlexFEC-03 packets sent (Config.FlexFEC, negotiated), FlexFECReceived
	// the client's FEC packets taken, FlexFECRecovered the video packets they rebuilt, and
	// FlexFECUnrecoverable the FEC packets given up with two or more of their protected
	// packets missing.
	FlexFECSent, FlexFECReceived, FlexFECRecovered, FlexFECUnrecoverable uint64
}

// RepairCounters is the live form of RepairStats; one per PeerConnection (see NewPeer).
type RepairCounters struct {
	nacksSent, nackedSent, nacksReceived, nackedReceived atomic.Uint64
	retransmissions, rtxSent, rtxReceived                atomic.Uint64
	plisSent, firsSent, plisReceived, firsReceived       atomic.Uint64
	twccSent, srsSent, rrsSent                           atomic.Uint64

	redSent, redReceived, redRecovered                                   atomic.Uint64
	flexfecSent, flexfecReceived, flexfecRecovered, flexfecUnrecoverable atomic.Uint64
	// repair is the RED/FlexFEC state of the API these counters belong to (fec.go), nil
	// without Config.RED and Config.FlexFEC.
	repair *repairPeer
}

// Snapshot returns the current counts.
func (c *RepairCounters) Snapshot() RepairStats {
	if c == nil {
		return RepairStats{}
	}
	return RepairStats{
		NACKsSent: c.nacksSent.Load(), NACKedSent: c.nackedSent.Load(),
		NACKsReceived: c.nacksReceived.Load(), NACKedReceived: c.nackedReceived.Load(),
		Retransmissions: c.retransmissions.Load(), RTXSent: c.rtxSent.Load(), RTXReceived: c.rtxReceived.Load(),
		PLIsSent: c.plisSent.Load(), FIRsSent: c.firsSent.Load(),
		PLIsReceived: c.plisReceived.Load(), FIRsReceived: c.firsReceived.Load(),
		TWCCFeedbackSent: c.twccSent.Load(), SRsSent: c.srsSent.Load(), RRsSent: c.rrsSent.Load(),
		REDSent: c.redSent.Load(), REDReceived: c.redReceived.Load(), REDRecovered: c.redRecovered.Load(),
		FlexFECSent: c.flexfecSent.Load(), FlexFECReceived: c.flexfecReceived.Load(),
		FlexFECRecovered: c.flexfecRecovered.Load(), FlexFECUnrecoverable: c.flexfecUnrecoverable.Load(),
	}
}

// repairCounterFactory hands the same counters to the one interceptor of a per-call API.
type repairCounterFactory struct{ c *RepairCounters }

func (f repairCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &repairCounter{c: f.c}, nil
}

// repairCounter observes; it changes nothing.
type repairCounter struct {
	interceptor.NoOp
	c *RepairCounters
}

func nackedCount(n *rtcp.TransportLayerNack) uint64 {
	var k uint64
	for _, p := range n.Nacks {
		k += uint64(len(p.PacketList()))
	}
	return k
}

// BindRTCPWriter counts the feedback and reports leaving toward the client.
func (r *repairCounter) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attr interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				r.c.nacksSent.Add(1)
				r.c.nackedSent.Add(nackedCount(p))
			case *rtcp.PictureLossIndication:
				r.c.plisSent.Add(1)
			case *rtcp.FullIntraRequest:
				r.c.firsSent.Add(1)
			case *rtcp.TransportLayerCC:
				r.c.twccSent.Add(1)
			case *rtcp.SenderReport:
				r.c.srsSent.Add(1)
			case *rtcp.ReceiverReport:
				r.c.rrsSent.Add(1)
			}
		}
		return writer.Write(pkts, attr)
	})
}

// BindRTCPReader counts the client's feedback. It parses through the attributes, so the
// responder above it reuses the parsed packets.
func (r *repairCounter) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		if attr == nil {
			attr = make(interceptor.Attributes)
		}
		pkts, err := attr.GetRTCPPackets(b[:n])
		if err != nil {
			return n, attr, nil //nolint:nilerr // malformed RTCP is pion's to report, not ours
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				r.c.nacksReceived.Add(1)
				r.c.nackedReceived.Add(nackedCount(p))
			case *rtcp.PictureLossIndication:
				r.c.plisReceived.Add(1)
			case *rtcp.FullIntraRequest:
				r.c.firsReceived.Add(1)
			}
		}
		return n, attr, nil
	})
}

// BindLocalStream tells retransmissions from first transmissions: an RTX packet, or a packet
// whose sequence number is not newer than the highest one already sent on the stream. It
// also counts the FlexFEC packets pion's encoder adds.
func (r *repairCounter) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	var highest atomic.Uint32 // seq | 1<<16 once a packet has been sent
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, attr interceptor.Attributes) (int, error) {
		switch {
		case info.SSRCRetransmission != 0 && h.SSRC == info.SSRCRetransmission:
			r.c.retransmissions.Add(1)
			r.c.rtxSent.Add(1)
		case info.SSRCForwardErrorCorrection != 0 && h.SSRC == info.SSRCForwardErrorCorrection:
			r.c.flexfecSent.Add(1)
		case h.SSRC == info.SSRC:
			last := highest.Load()
			if last != 0 && int16(h.SequenceNumber-uint16(last)) <= 0 {
				r.c.retransmissions.Add(1)
			} else {
				highest.Store(uint32(h.SequenceNumber) | 1<<16)
			}
		}
		return writer.Write(h, payload, attr)
	})
}

// BindRemoteStream counts the RTX packets of the client's repair streams.
func (r *repairCounter) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if info.MimeType != webrtc.MimeTypeRTX {
		return reader
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err == nil {
			r.c.rtxReceived.Add(1)
		}
		return n, attr, err
	})
}
