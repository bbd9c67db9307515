package rtc

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

var (
	errPortRange = errors.New("rtc: bad UDP port range")
	errConflict  = errors.New("rtc: conflicting settings")
	errPublicIP  = errors.New("rtc: bad public IP")
)

// Config is how the gateway's PeerConnections are built. The zero value works: the standard
// network, host candidates on the interfaces' addresses, any UDP port, pion's ICE timeouts,
// DefaultCodecs without video.
type Config struct {
	// Net opens every socket (SettingEngine.SetNet); nil is the standard network. The lab passes
	// a netem host's Net.
	Net transport.Net
	// PublicIP, when valid, replaces the interface address in host candidates (1:1 NAT).
	PublicIP netip.Addr
	// ICELite makes the gateway an ICE-lite agent (RFC 8445 2.5): it answers checks, never
	// sends them. Fits a gateway on a public address.
	ICELite bool
	// PortMin and PortMax bound the UDP ports of ICE host candidates (0, 0: any).
	PortMin, PortMax uint16
	// UDPMux, when set, serves every PeerConnection on one UDP port (see NewUDPMux); the port
	// range is then unused.
	UDPMux ice.UDPMux
	// IPFilter, when set, keeps only the local addresses it accepts for candidates; with
	// IncludeLoopback, a filter for 127.0.0.1 keeps a test or the lab on loopback.
	IPFilter        func(netip.Addr) bool
	IncludeLoopback bool
	// NetworkTypes are the candidate networks; nil means UDP over IPv4.
	NetworkTypes []webrtc.NetworkType
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepaliveInterval; zero keeps pion's
	// value (5 s, 25 s, 2 s).
	ICEDisconnectedTimeout, ICEFailedTimeout, ICEKeepaliveInterval time.Duration
	// Codecs is the order of preference, lower case (opus, g722, pcmu, pcma, vp8, h264, as in
	// gateway/config); nil means DefaultCodecs. Only listed codecs are registered;
	// telephone-event (8000 and 48000) always is.
	Codecs []string
	// Video registers the video codecs of Codecs (each with RTX).
	Video bool
	// NoAudioRTX leaves RTX (RFC 4588) out for the audio codecs, as browsers do: the lab's
	// clients set it to behave like one. Without it the audio codecs are registered with RTX
	// too, so a client offering audio RTX gets it in the answer (and sends its audio
	// retransmissions over it). PreferCodecs keeps it out of offers: Chromium refuses an offered
	// audio RTX stream.
	NoAudioRTX bool
	// SendAudioRTX sends the audio retransmissions over RTX when audio RTX is negotiated. pion
	// (v4.2.26) gives only video senders an RTX stream: with this set, an interceptor gives
	// the audio sender one (audiortx.go), and Peer.LocalDescription signals its SSRC (an
	// a=ssrc-group:FID line pion does not write). Descriptions must then reach the other side
	// through Peer.LocalDescription, not the embedded PeerConnection's: without the SSRC the
	// other side could not use a single retransmission. Off, audio is resent in its own stream.
	SendAudioRTX bool
	// SendTWCC adds transport-wide sequence numbers to what this peer sends, so that the other
	// side returns TWCC feedback (what a browser does; the lab's pion client sets it). The
	// gateway itself only returns feedback for what it receives.
	SendTWCC bool
	// NACKBufferSize is how many sent packets per stream the NACK responder keeps (a power of
	// two; 0 means 1024).
	NACKBufferSize uint16
	// NACKInterval is how often the NACK generator reports missing packets (0: pion's 100 ms),
	// NACKMaxRetries how many times it asks for one packet (0: until it leaves the receive log
	// of NACKBufferSize packets; pion has no age limit), and NACKSkipLastN how many of the
	// newest missing packets it waits before asking for (0: none).
	NACKInterval                  time.Duration
	NACKMaxRetries, NACKSkipLastN uint16
	// BWE, when set, adds send-side bandwidth estimation (pion's gcc) with its pacer, and
	// implies SendTWCC (see BWEConfig).
	BWE *BWEConfig
	// RED registers audio/red (RFC 2198 redundant Opus, red/48000/2, what Chrome offers):
	// when the client negotiates it, the client's RED packets are decoded (primary and the
	// lost packets they repeat) before the bridge, and the Opus the gateway sends is
	// RED-framed with REDDistance earlier frames per packet (0: DefaultREDDistance; at most
	// MaxREDDistance). Needs opus in Codecs. See fec.go.
	RED         bool
	REDDistance int
	// FlexFEC registers video/flexfec-03: the client's FlexFEC stream repairs its lost video
	// packets before the bridge, and the video the gateway sends is protected by pion's
	// FlexFEC-03 encoder, FECPackets FEC packets for every FECMediaPackets media packets
	// (interleaved masks; 0: DefaultFECMediaPackets and DefaultFECPackets). Needs Video.
	FlexFEC                     bool
	FECMediaPackets, FECPackets int
	// LoggerFactory for pion; nil means pion's default.
	LoggerFactory logging.LoggerFactory
}

func (c Config) preference() []string {
	if c.Codecs == nil {
		return DefaultCodecs
	}
	return c.Codecs
}

// negotiable is the preference without the video codecs when video is off: what the
// PeerConnection actually registers.
func (c Config) negotiable() []string {
	var out []string
	for _, name := range c.preference() {
		if codecTable[name].kind == webrtc.RTPCodecTypeAudio || c.Video {
			out = append(out, name)
		}
	}
	return out
}

// Match is the package's Match with c's preference, and no video when c.Video is off.
// With RED or FlexFEC, the selection also names their formats (addRepairSelection).
func (c Config) Match(webrtcSide, sipSide []Codec) (*Selection, error) {
	sel, err := Match(webrtcSide, sipSide, c.negotiable())
	c.addRepairSelection(sel, webrtcSide)
	return sel, err
}

// PickCodecs is the package's PickCodecs with c's preference, and no video when c.Video is
// off. With RED or FlexFEC, the selection also names the client's formats of them.
func (c Config) PickCodecs(offer webrtc.SessionDescription, sipSide []Codec) (*Selection, error) {
	sel, err := PickCodecs(offer, sipSide, c.negotiable())
	if sel != nil && c.repairOn() {
		c.addRepairSelection(sel, offeredCodecs(offer))
	}
	return sel, err
}

// validate checks what pion would otherwise reject late or silently.
func (c Config) validate() error {
	for _, name := range c.preference() {
		if _, ok := codecTable[name]; !ok || name == "telephone-event" {
			return fmt.Errorf("%w %q: want opus, g722, pcmu, pcma, vp8 or h264", errUnknownCodec, name)
		}
	}
	if !slices.ContainsFunc(c.preference(), func(n string) bool { return codecTable[n].kind == webrtc.RTPCodecTypeAudio }) {
		return fmt.Errorf("%w: no audio codec in %v", errUnknownCodec, c.preference())
	}
	if c.PortMax < c.PortMin || (c.PortMin == 0) != (c.PortMax == 0) {
		return fmt.Errorf("%w: %d-%d", errPortRange, c.PortMin, c.PortMax)
	}
	if c.NoAudioRTX && c.SendAudioRTX {
		return fmt.Errorf("%w: SendAudioRTX without audio RTX (NoAudioRTX)", errConflict)
	}
	if c.UDPMux != nil && c.PortMin != 0 {
		return fmt.Errorf("%w: a UDP mux and a port range", errConflict)
	}
	if c.PublicIP.IsValid() && (c.PublicIP.IsUnspecified() || c.PublicIP.IsMulticast()) {
		return fmt.Errorf("%w %s", errPublicIP, c.PublicIP)
	}
	return c.validateRepair()
}

// SupportedCodecs lists the formats a PeerConnection built from c registers, in preference
// order: what the gateway offers to a WebRTC client when the SIP side is the offerer (pass the
// result to Match as the WebRTC side).
func (c Config) SupportedCodecs() []Codec {
	var out []Codec
	for _, name := range c.negotiable() {
		out = append(out, codecTable[name].codec)
	}
	return append(out, telephoneEvents...)
}
