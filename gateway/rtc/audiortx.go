package rtc

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Audio RTX on the sending side (Config.SendAudioRTX).
//
// pion v4.2.26 negotiates an audio rtx format (it matches "audio/rtx") but gives a sender an
// RTX stream only when one of its formats is MimeTypeRTX, "video/rtx"
// (MediaEngine.isRTXEnabled): an audio sender never has one, its NACK responder resends in the
// audio stream, and its descriptions carry no a=ssrc-group:FID. Receiving needs nothing: pion
// unwraps an RTX stream that the remote description groups with FID whatever the kind.
//
// The fix has two halves sharing one audioRTXState per Peer: the audioRTX interceptor, bound
// before the NACK responder, gives an audio stream whose RTX format is negotiated
// (StreamInfo.PayloadTypeRetransmission, which pion fills in by apt for audio too) an RTX
// SSRC, so that the responder resends over RTX (it reads StreamInfo per packet); and
// Peer.LocalDescription writes the FID group that announces that SSRC. Either half may come
// first (an answerer binds its streams before its answer is read), so both take the SSRC from
// rtxSSRC.

// audioRTXState maps each local audio stream's SSRC to its RTX SSRC.
type audioRTXState struct {
	mu   sync.Mutex
	ssrc map[uint32]uint32
}

func newAudioRTXState() *audioRTXState {
	return &audioRTXState{ssrc: map[uint32]uint32{}}
}

// rtxSSRC is media's RTX SSRC, chosen at the first call.
func (s *audioRTXState) rtxSSRC(media uint32) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.ssrc[media]; ok {
		return r
	}
	r := rand.Uint32() //nolint:gosec // an SSRC, not a secret
	for r == 0 || r == media {
		r = rand.Uint32() //nolint:gosec // an SSRC, not a secret
	}
	s.ssrc[media] = r
	return r
}

type audioRTXFactory struct{ s *audioRTXState }

func (f audioRTXFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &audioRTX{s: f.s}, nil
}

// audioRTX gives negotiated audio RTX to the NACK responder bound after it.
type audioRTX struct {
	interceptor.NoOp
	s *audioRTXState
}

// sentPTs remembers the payload type of the last packets sent, by sequence number.
const sentPTs = 1024

// BindLocalStream sets the stream's RTX SSRC when audio RTX is negotiated and pion left it
// unset. The returned writer resends as before (in the audio stream) what is not of the
// stream's primary format: RTX carries one format per payload type (apt), and the responder
// puts every retransmission on the primary's, telephone-events included.
func (a *audioRTX) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(strings.ToLower(info.MimeType), "audio/") || info.PayloadTypeRetransmission == 0 || info.SSRCRetransmission != 0 {
		return writer
	}
	info.SSRCRetransmission = a.s.rtxSSRC(info.SSRC)
	rtxSSRC, media, primary := info.SSRCRetransmission, info.SSRC, info.PayloadType
	var (
		mu  sync.Mutex
		pts [sentPTs]struct {
			seq uint16
			pt  uint8
			ok  bool
		}
	)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, attr interceptor.Attributes) (int, error) {
		switch {
		case h.SSRC == media:
			mu.Lock()
			pts[h.SequenceNumber%sentPTs] = struct {
				seq uint16
				pt  uint8
				ok  bool
			}{h.SequenceNumber, h.PayloadType, true}
			mu.Unlock()
		case h.SSRC == rtxSSRC && len(payload) >= 2:
			osn := binary.BigEndian.Uint16(payload)
			mu.Lock()
			e := pts[osn%sentPTs]
			mu.Unlock()
			if e.ok && e.seq == osn && e.pt != primary {
				plain := h.Clone()
				plain.SSRC, plain.SequenceNumber, plain.PayloadType = media, osn, e.pt
				return writer.Write(&plain, payload[2:], attr)
			}
		}
		return writer.Write(h, payload, attr)
	})
}

// LocalDescription is the PeerConnection's, with Config.SendAudioRTX the audio RTX SSRCs
// signalled: an a=ssrc-group:FID line and a=ssrc lines for each audio m-line that has an rtx
// format and a sending stream. pion refuses a modified description in SetLocalDescription, so
// the lines go only into what the other side is sent: send this description, not the
// embedded PeerConnection's.
func (p *Peer) LocalDescription() *webrtc.SessionDescription {
	d := p.PeerConnection.LocalDescription()
	if d == nil || p.audioRTX == nil {
		return d
	}
	out, err := withAudioRTX(*d, p.audioRTX)
	if err != nil {
		return d // pion's own description: it parses
	}
	return &out
}

// withAudioRTX adds the FID groups of audio RTX to d.
func withAudioRTX(d webrtc.SessionDescription, s *audioRTXState) (webrtc.SessionDescription, error) {
	parsed := &sdp.SessionDescription{}
	if err := parsed.UnmarshalString(d.SDP); err != nil {
		return d, fmt.Errorf("rtc: audio rtx: %w", err)
	}
	changed := false
	for _, m := range parsed.MediaDescriptions {
		if m.MediaName.Media == "audio" && hasRTX(m) {
			changed = addFID(m, s) || changed
		}
	}
	if !changed {
		return d, nil
	}
	raw, err := parsed.Marshal()
	if err != nil {
		return d, fmt.Errorf("rtc: audio rtx: %w", err)
	}
	return webrtc.SessionDescription{Type: d.Type, SDP: string(raw)}, nil
}

func hasRTX(m *sdp.MediaDescription) bool {
	for _, c := range CodecsOf(m) {
		if strings.EqualFold(c.Name, "rtx") {
			return true
		}
	}
	return false
}

// addFID groups the m-line's first SSRC with its RTX SSRC, which gets the same a=ssrc
// attributes (cname, msid). An m-line with no SSRC (nothing sent) or already grouped is left
// alone.
func addFID(m *sdp.MediaDescription, s *audioRTXState) bool {
	var media uint32
	var ssrcAttrs []string // "cname:...", "msid:..."
	for _, a := range m.Attributes {
		switch a.Key {
		case sdp.AttrKeySSRCGroup:
			if strings.HasPrefix(a.Value, sdp.SemanticTokenFlowIdentification+" ") {
				return false
			}
		case sdp.AttrKeySSRC:
			id, rest, _ := strings.Cut(a.Value, " ")
			v, err := strconv.ParseUint(id, 10, 32)
			if err != nil {
				continue
			}
			if media == 0 {
				media = uint32(v)
			}
			if uint32(v) == media && rest != "" {
				ssrcAttrs = append(ssrcAttrs, rest)
			}
		}
	}
	if media == 0 {
		return false
	}
	rtxSSRC := strconv.FormatUint(uint64(s.rtxSSRC(media)), 10)
	m.Attributes = append(m.Attributes, sdp.Attribute{
		Key: sdp.AttrKeySSRCGroup, Value: sdp.SemanticTokenFlowIdentification + " " + strconv.FormatUint(uint64(media), 10) + " " + rtxSSRC,
	})
	for _, rest := range ssrcAttrs {
		m.Attributes = append(m.Attributes, sdp.Attribute{Key: sdp.AttrKeySSRC, Value: rtxSSRC + " " + rest})
	}
	return true
}
