package webclient

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Repair kinds of PacketRecord.Repaired.
const (
	RepairNone = ""
	// RepairNACK is a retransmission on the media's own SSRC (audio: RFC 4585 NACK without RTX).
	RepairNACK = "nack"
	// RepairRTX is a retransmission on the RTX stream (RFC 4588): video, and audio when both
	// sides negotiated audio RTX (WithAudioRTX).
	RepairRTX = "rtx"
	// RepairFEC is a packet recovered from FlexFEC (or, in the sent log, a FlexFEC packet).
	RepairFEC = "fec"
	// RepairRED is a packet recovered from a RED redundant block (RFC 2198).
	RepairRED = "red"
)

// maxNacked bounds the sequence numbers remembered as NACKed per stream.
const maxNacked = 4096

// tap is the client's own interceptor, innermost in its PeerConnection's chain
// (rtc.WithInterceptor): it logs every RTP packet as it leaves (after the pacer; retransmissions,
// RTX and FEC included), counts the bytes sent for the sending rate, and remembers the sequence
// numbers the client NACKed, so that a late arrival of one of them is known to be a
// retransmission rather than reordering.
type tap struct {
	logLimit  int
	sentBytes atomic.Uint64 // RTP header and payload of every packet sent

	mu            sync.Mutex
	sent          []PacketRecord
	retransmitted map[string]uint64              // by kind
	fecSent       map[string]uint64              // by kind
	nacked        map[uint32]map[uint16]struct{} // media SSRC -> NACKed sequence numbers
}

func newTap(logLimit int) *tap {
	return &tap{
		logLimit: logLimit, nacked: map[uint32]map[uint16]struct{}{},
		retransmitted: map[string]uint64{}, fecSent: map[string]uint64{},
	}
}

// NewInterceptor makes tap an interceptor.Factory (one PeerConnection per call).
func (t *tap) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tapInterceptor{t: t}, nil
}

// packets returns the sent log.
func (t *tap) packets() []PacketRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]PacketRecord(nil), t.sent...)
}

// counts are the retransmissions and FEC packets sent, audio and video.
func (t *tap) counts() (audioRetx, audioFEC, videoRetx, videoFEC uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retransmitted["audio"], t.fecSent["audio"], t.retransmitted["video"], t.fecSent["video"]
}

// wasNacked reports (and forgets) whether the client asked for seq of ssrc.
func (t *tap) wasNacked(ssrc uint32, seq uint16) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.nacked[ssrc]
	if _, ok := set[seq]; ok {
		delete(set, seq)
		return true
	}
	return false
}

type tapInterceptor struct {
	interceptor.NoOp
	t *tap
}

func kindOf(mime string) string {
	kind, _, _ := strings.Cut(strings.ToLower(mime), "/")
	return kind
}

// BindLocalStream logs what leaves on one stream: first transmissions, retransmissions on the
// same SSRC (a sequence number not newer than the highest sent), RTX packets (logged with the
// original sequence number they carry) and FEC packets.
func (i *tapInterceptor) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	t := i.t
	kind := kindOf(info.MimeType)
	var highest uint32 // seq | 1<<16 once a packet has been sent; the writer is not concurrent per stream
	var mu sync.Mutex
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, attr interceptor.Attributes) (int, error) {
		rec := PacketRecord{
			Kind: kind, SSRC: h.SSRC, Seq: h.SequenceNumber, Timestamp: h.Timestamp,
			PayloadType: h.PayloadType, Marker: h.Marker, Size: h.MarshalSize() + len(payload),
		}
		switch {
		case info.SSRCRetransmission != 0 && h.SSRC == info.SSRCRetransmission:
			rec.Repaired, rec.Retransmission = RepairRTX, true
			if len(payload) >= 2 {
				rec.Seq = binary.BigEndian.Uint16(payload)
			}
		case info.SSRCForwardErrorCorrection != 0 && h.SSRC == info.SSRCForwardErrorCorrection:
			rec.Repaired = RepairFEC
		case h.SSRC == info.SSRC:
			mu.Lock()
			if highest != 0 && int16(h.SequenceNumber-uint16(highest)) <= 0 {
				rec.Repaired, rec.Retransmission = RepairNACK, true
			} else {
				highest = uint32(h.SequenceNumber) | 1<<16
			}
			mu.Unlock()
		}
		n, err := writer.Write(h, payload, attr)
		if err != nil {
			return n, err
		}
		rec.At = time.Now()
		t.sentBytes.Add(uint64(rec.Size))
		t.mu.Lock()
		if rec.Retransmission {
			t.retransmitted[kind]++
		}
		if rec.Repaired == RepairFEC {
			t.fecSent[kind]++
		}
		if len(t.sent) < t.logLimit {
			t.sent = append(t.sent, rec)
		}
		t.mu.Unlock()
		return n, nil
	})
}

// BindRTCPWriter remembers the sequence numbers the client's NACKs ask for.
func (i *tapInterceptor) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	t := i.t
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attr interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			n, ok := p.(*rtcp.TransportLayerNack)
			if !ok {
				continue
			}
			t.mu.Lock()
			set := t.nacked[n.MediaSSRC]
			if set == nil || len(set) > maxNacked {
				set = map[uint16]struct{}{}
				t.nacked[n.MediaSSRC] = set
			}
			for _, pair := range n.Nacks {
				for _, seq := range pair.PacketList() {
					set[seq] = struct{}{}
				}
			}
			t.mu.Unlock()
		}
		return writer.Write(pkts, attr)
	})
}

// viaRTX reports whether pion delivered a packet from the track's RTX stream.
func viaRTX(attr interceptor.Attributes) bool {
	if attr == nil {
		return false
	}
	_, ok := attr.Get(webrtc.AttributeRtxSsrc).(uint32)
	return ok
}
