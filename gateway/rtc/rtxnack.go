package rtc

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// rtxRepairedMax bounds the sequence numbers remembered per stream as repaired over RTX.
const rtxRepairedMax = 2048

// rtxNACKFilter works around pion's NACK generator not seeing retransmissions that arrive on an
// RTX stream (pion/interceptor#320, still so in v0.1.51): its receive log is fed by the media
// stream only, so it asks again, every interval, for a packet RTX has already repaired, until
// the packet leaves its log (hundreds of retransmissions for a few losses). The filter sits
// inside the generator: it reads the original sequence number of every RTX packet that arrives
// and takes those sequence numbers out of the NACKs that leave.
type rtxNACKFilter struct {
	interceptor.NoOp

	mu       sync.Mutex
	media    map[string]uint32  // codec (mediaKey) -> the remote media SSRC bound last with it
	repaired map[uint32]*seqSet // remote media SSRC -> sequence numbers repaired over RTX
}

type rtxNACKFilterFactory struct{}

func (rtxNACKFilterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtxNACKFilter{media: map[string]uint32{}, repaired: map[uint32]*seqSet{}}, nil
}

// seqSet is a bounded set of sequence numbers, oldest forgotten first.
type seqSet struct {
	has   map[uint16]struct{}
	order []uint16
}

func (s *seqSet) add(seq uint16) {
	if _, ok := s.has[seq]; ok {
		return
	}
	if len(s.order) >= rtxRepairedMax {
		delete(s.has, s.order[0])
		s.order = s.order[1:]
	}
	s.has[seq] = struct{}{}
	s.order = append(s.order, seq)
}

// mediaKey identifies a remote stream's codec. pion binds a remote RTX stream with neither its
// payload types nor its media SSRC, right after its media stream and with a copy of that
// stream's codec (MIME type aside): the media stream bound last with the same clock rate,
// channels and fmtp is the RTX stream's (exact with one audio and one video stream per
// PeerConnection, the gateway's case: the two never share a clock rate). Audio RTX, which a
// client may offer, is bound the same way.
func mediaKey(info *interceptor.StreamInfo) string {
	return strconv.Itoa(int(info.ClockRate)) + "/" + strconv.Itoa(int(info.Channels)) + "/" + info.SDPFmtpLine
}

// BindRemoteStream learns the media streams and reads the original sequence number of each RTX
// packet (the first two bytes of its payload, RFC 4588 4).
func (f *rtxNACKFilter) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	key := mediaKey(info)
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeRTX) {
		if mime := strings.ToLower(info.MimeType); strings.HasPrefix(mime, "video/") || strings.HasPrefix(mime, "audio/") {
			f.mu.Lock()
			f.media[key] = info.SSRC
			f.mu.Unlock()
		}
		return reader
	}
	f.mu.Lock()
	media, ok := f.media[key]
	f.mu.Unlock()
	if !ok {
		return reader
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		var h rtp.Header
		hl, herr := h.Unmarshal(b[:n])
		if herr != nil || n-hl < 2 {
			return n, attr, nil //nolint:nilerr // not ours to judge: pion drops it
		}
		osn := binary.BigEndian.Uint16(b[hl:])
		f.mu.Lock()
		set := f.repaired[media]
		if set == nil {
			set = &seqSet{has: map[uint16]struct{}{}}
			f.repaired[media] = set
		}
		set.add(osn)
		f.mu.Unlock()
		return n, attr, nil
	})
}

// BindRTCPWriter drops from the NACKs leaving what RTX has repaired (a NACK left empty is not
// sent).
func (f *rtxNACKFilter) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attr interceptor.Attributes) (int, error) {
		out := pkts[:0:0]
		changed := false
		for _, p := range pkts {
			n, ok := p.(*rtcp.TransportLayerNack)
			if !ok {
				out = append(out, p)
				continue
			}
			f.mu.Lock()
			set := f.repaired[n.MediaSSRC]
			var keep []uint16
			dropped := false
			for _, pair := range n.Nacks {
				for _, seq := range pair.PacketList() {
					if _, done := set.lookup(seq); done {
						dropped = true
						continue
					}
					keep = append(keep, seq)
				}
			}
			f.mu.Unlock()
			if !dropped {
				out = append(out, p)
				continue
			}
			changed = true
			if len(keep) > 0 {
				out = append(out, &rtcp.TransportLayerNack{SenderSSRC: n.SenderSSRC, MediaSSRC: n.MediaSSRC, Nacks: rtcp.NackPairsFromSequenceNumbers(keep)})
			}
		}
		if !changed {
			return writer.Write(pkts, attr)
		}
		if len(out) == 0 {
			return 0, nil
		}
		return writer.Write(out, attr)
	})
}

func (s *seqSet) lookup(seq uint16) (struct{}, bool) {
	if s == nil {
		return struct{}{}, false
	}
	v, ok := s.has[seq]
	return v, ok
}
