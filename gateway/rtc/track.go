package rtc

import (
	"errors"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ErrTrackNotBound: the track has no negotiated sender yet (or any more); the packet is dropped.
var ErrTrackNotBound = errors.New("rtc: track not bound")

// TrackLocal is a local RTP track that sends each packet with the payload type it carries.
// pion's TrackLocalStaticRTP rewrites every packet to the bound codec's payload type, which
// would turn RFC 4733 telephone-events (and a second negotiated codec) into the first codec;
// a gateway that passes payloads through needs the packet's own. The SSRC is always the
// binding's.
type TrackLocal struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	prefer       []Codec

	binding atomic.Pointer[trackBinding]
}

type trackBinding struct {
	id     string
	ssrc   uint32
	codec  webrtc.RTPCodecParameters
	writer webrtc.TrackLocalWriter
}

// NewTrackLocal is a track of kind whose sender is bound to the first of prefer (in order)
// that the negotiation kept.
func NewTrackLocal(kind webrtc.RTPCodecType, prefer []Codec, id, streamID string) *TrackLocal {
	return &TrackLocal{id: id, streamID: streamID, kind: kind, prefer: prefer}
}

// Bind is called by pion when the sender starts.
func (t *TrackLocal) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, want := range t.prefer {
		for _, c := range ctx.CodecParameters() {
			if FromWebRTC(c).Same(want) {
				t.binding.Store(&trackBinding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), codec: c, writer: ctx.WriteStream()})
				return c, nil
			}
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind is called by pion when the sender stops.
func (t *TrackLocal) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := t.binding.Load(); b != nil && b.id == ctx.ID() {
		t.binding.CompareAndSwap(b, nil)
	}
	return nil
}

// ID is the track id.
func (t *TrackLocal) ID() string { return t.id }

// RID is empty: no simulcast.
func (t *TrackLocal) RID() string { return "" }

// StreamID is the media stream id (msid).
func (t *TrackLocal) StreamID() string { return t.streamID }

// Kind is audio or video.
func (t *TrackLocal) Kind() webrtc.RTPCodecType { return t.kind }

// SSRC is the bound sender's SSRC, 0 before binding.
func (t *TrackLocal) SSRC() uint32 {
	if b := t.binding.Load(); b != nil {
		return b.ssrc
	}
	return 0
}

// Codec is the codec the sender was bound to, and false before binding.
func (t *TrackLocal) Codec() (Codec, bool) {
	if b := t.binding.Load(); b != nil {
		return FromWebRTC(b.codec), true
	}
	return Codec{}, false
}

// WriteRTP sends one packet: header.SSRC is set to the sender's, everything else is kept.
func (t *TrackLocal) WriteRTP(header *rtp.Header, payload []byte) error {
	b := t.binding.Load()
	if b == nil {
		return ErrTrackNotBound
	}
	header.SSRC = b.ssrc
	_, err := b.writer.WriteRTP(header, payload)
	return err
}
