package media

import (
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Leg names one side of a bridge.
type Leg int

// The two legs of a call.
const (
	// LegWebRTC is the client's PeerConnection (ICE, DTLS-SRTP, RTCP feedback).
	LegWebRTC Leg = iota
	// LegSIP is the plain RTP/RTCP socket pair toward the PBX.
	LegSIP
)

func (l Leg) String() string {
	if l == LegSIP {
		return "sip"
	}
	return "webrtc"
}

// Other is the opposite leg.
func (l Leg) Other() Leg { return 1 - l }

// Packet is one RTP packet on its way through a pipeline. Handlers may change the header in
// place; the payload is passed through untouched (the bridge never transcodes).
type Packet struct {
	Header  rtp.Header
	Payload []byte
	// Arrival is when the packet was read from its leg.
	Arrival time.Time
	// Source is the sender's address (SIP leg only).
	Source netip.AddrPort
	// Repaired: the packet came through the client's RTX stream (pion unwrapped it).
	Repaired bool
	// Recovered: gateway/rtc rebuilt the packet from the client's RED or FlexFEC (it never
	// arrived itself).
	Recovered bool
	// Generated: the bridge made this packet (an injected DTMF event), it has no source.
	Generated bool

	codec codecEntry // set by classify
}

// Writer takes a packet on to the next step; an error drops it (the reader counts it).
type Writer interface {
	Write(p *Packet) error
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(p *Packet) error

// Write calls f.
func (f WriterFunc) Write(p *Packet) error { return f(p) }

// Path describes one direction of one stream to the handlers bound on it.
type Path struct {
	Kind     webrtc.RTPCodecType
	From, To Leg
}

func (p Path) String() string { return p.Kind.String() + " " + p.From.String() + "->" + p.To.String() }

// Handler is one step of a media path, in pion's interceptor shape: Bind is called once per
// path with the step after it and returns the per-packet Writer of this step.
type Handler interface {
	Bind(path Path, next Writer) Writer
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(path Path, next Writer) Writer

// Bind calls f.
func (f HandlerFunc) Bind(path Path, next Writer) Writer { return f(path, next) }

// Filter is the common handler shape: inspect or change the packet, then return an error to
// drop it (the reason, for the counters) or nil to pass it on.
func Filter(f func(p *Packet) error) Handler {
	return HandlerFunc(func(_ Path, next Writer) Writer {
		return WriterFunc(func(p *Packet) error {
			if err := f(p); err != nil {
				return err
			}
			return next.Write(p)
		})
	})
}

// Chain binds handlers in reading order, the first one seeing the packet first, in front of
// sink.
func Chain(path Path, sink Writer, handlers ...Handler) Writer {
	w := sink
	for i := len(handlers) - 1; i >= 0; i-- {
		w = handlers[i].Bind(path, w)
	}
	return w
}
