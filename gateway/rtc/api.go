package rtc

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// pion's ICE timeouts, used for the zero values of Config.
const (
	defaultICEDisconnected = 5 * time.Second
	defaultICEFailed       = 25 * time.Second
	defaultICEKeepalive    = 2 * time.Second
)

// Option adjusts NewAPI.
type Option func(*apiOptions)

type apiOptions struct {
	counters *RepairCounters
	audioRTX *audioRTXState        // Config.SendAudioRTX: the Peer's, shared with its interceptor
	bwe      func(*BWE)            // WithBWEHandler
	extra    []interceptor.Factory // WithInterceptor
}

// WithRepairCounters counts the repair machinery of the API's PeerConnections into c. The
// counters are per API, so build one API per call to get per-call counts (NewPeer does).
func WithRepairCounters(c *RepairCounters) Option {
	return func(o *apiOptions) { o.counters = c }
}

// NewAPI builds a pion API from cfg: the MediaEngine with the codecs of cfg (NACK feedback on
// audio and video, RTX on video and, unless Config.NoAudioRTX, on audio (negotiated only with
// a client that offers it: browsers do not, and keep NACK with retransmission in the audio
// stream itself), telephone-event at 8000 and 48000; red and flexfec-03
// only with Config.RED and Config.FlexFEC, see fec.go), the interceptors
// (NACK generator and responder, RTCP sender and receiver reports, TWCC feedback for what the
// client sends, and the repair counters when asked for) and the SettingEngine (network, public
// address, ICE-lite, ports or UDP mux, ICE timeouts, no mDNS).
func NewAPI(cfg Config, opts ...Option) (*webrtc.API, error) {
	var o apiOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o.counters = withRepairPeer(cfg, o.counters) // RED and FlexFEC state: fec.go
	m, err := newMediaEngine(cfg)
	if err != nil {
		return nil, err
	}
	ir, err := newInterceptors(cfg, m, o)
	if err != nil {
		return nil, err
	}
	s, err := newSettingEngine(cfg)
	if err != nil {
		return nil, err
	}
	tapRepair(s, o.counters) // FlexFEC reads the SRTP session's buffers: fec.go
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*s)), nil
}

// Peer is one call's PeerConnection with the counters of its repair machinery.
type Peer struct {
	*webrtc.PeerConnection
	Repair *RepairCounters
	// audioRTX holds the audio RTX SSRCs to signal (Config.SendAudioRTX), nil otherwise.
	audioRTX *audioRTXState
	// BWE is the send-side bandwidth estimator (nil unless Config.BWE is set).
	BWE *BWE
}

// NewPeer builds a PeerConnection on its own API (so its repair counters are its own).
func NewPeer(cfg Config, pcConfig webrtc.Configuration, opts ...Option) (*Peer, error) {
	counters := &RepairCounters{}
	var bwe *BWE
	var audioRTX *audioRTXState
	if cfg.SendAudioRTX {
		audioRTX = newAudioRTXState()
	}
	opts = append(opts[:len(opts):len(opts)], WithRepairCounters(counters), WithBWEHandler(func(b *BWE) { bwe = b }),
		func(o *apiOptions) { o.audioRTX = audioRTX })
	api, err := NewAPI(cfg, opts...)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(pcConfig)
	if err != nil {
		return nil, fmt.Errorf("rtc: new peer connection: %w", err)
	}
	return &Peer{PeerConnection: pc, Repair: counters, BWE: bwe, audioRTX: audioRTX}, nil
}

func newMediaEngine(cfg Config) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	audioFB := []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBNACK}}
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	}
	register := func(c Codec, kind webrtc.RTPCodecType, fb []webrtc.RTCPFeedback) error {
		p := c.WebRTC()
		p.RTCPFeedback = fb
		if err := m.RegisterCodec(p, kind); err != nil {
			return fmt.Errorf("rtc: register %s: %w", c, err)
		}
		return nil
	}
	for _, name := range cfg.preference() {
		known := codecTable[name]
		switch {
		case known.kind == webrtc.RTPCodecTypeAudio:
			if err := register(known.codec, known.kind, audioFB); err != nil {
				return nil, err
			}
			if !cfg.NoAudioRTX {
				if err := registerRTX(m, known); err != nil {
					return nil, err
				}
			}
		case cfg.Video:
			if err := register(known.codec, known.kind, videoFB); err != nil {
				return nil, err
			}
			if err := registerRTX(m, known); err != nil {
				return nil, err
			}
		}
	}
	for _, te := range telephoneEvents {
		if err := register(te, webrtc.RTPCodecTypeAudio, nil); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// registerRTX registers the RTX format of a known codec at the codec's clock rate (RFC 4588
// 8.1). Audio RTX is named audio/rtx, as pion reads it from a client's audio m-line: a
// video/rtx entry would never match it.
func registerRTX(m *webrtc.MediaEngine, known knownCodec) error {
	p := rtxParams(known.kind, known.codec.ClockRate, known.rtx, known.codec.PayloadType)
	if err := m.RegisterCodec(p, known.kind); err != nil {
		return fmt.Errorf("rtc: register rtx for %s: %w", known.codec, err)
	}
	return nil
}

// newInterceptors registers, innermost first: the repair counters (they see every packet the
// others send and receive), the WithInterceptor ones, RED and FlexFEC (fec.go), the RTX NACK
// filter (rtxnack.go), with Config.BWE the bandwidth estimator and its pacer (RED and FlexFEC
// then come outside it, and the transport-wide sequence numbers outside them: addBWE), the
// NACK responder and generator, the RTCP reports, and TWCC feedback (after the codecs: it adds
// its feedback and header extension to them).
func newInterceptors(cfg Config, m *webrtc.MediaEngine, o apiOptions) (*interceptor.Registry, error) {
	counters := o.counters
	ir := &interceptor.Registry{}
	if counters != nil {
		ir.Add(repairCounterFactory{c: counters})
	}
	for _, f := range o.extra { // WithInterceptor: they see what leaves, FEC and RED included
		ir.Add(f)
	}
	if cfg.BWE == nil { // with BWE, addBWE puts them outside the pacer
		if err := addRepair(ir, m, counters); err != nil { // RED and FlexFEC, inside the rest: fec.go
			return nil, err
		}
	}
	ir.Add(rtxNACKFilterFactory{}) // pion's NACK generator does not see RTX: see rtxnack.go
	if cfg.SendAudioRTX {          // before the responder binds: it gives it the audio RTX stream
		if o.audioRTX == nil {
			o.audioRTX = newAudioRTXState()
		}
		ir.Add(audioRTXFactory{s: o.audioRTX})
	}
	// The estimator, then RED and FlexFEC, then the transport-wide sequence numbers, all inside
	// the NACK responder: see addBWE.
	if cfg.BWE != nil {
		if err := addBWE(ir, m, cfg, counters, o.bwe); err != nil {
			return nil, err
		}
	}
	var respOpts []nack.ResponderOption
	var genOpts []nack.GeneratorOption
	if cfg.NACKBufferSize != 0 {
		respOpts = append(respOpts, nack.ResponderSize(cfg.NACKBufferSize))
		genOpts = append(genOpts, nack.GeneratorSize(cfg.NACKBufferSize))
	}
	if cfg.LoggerFactory != nil {
		respOpts = append(respOpts, nack.WithResponderLoggerFactory(cfg.LoggerFactory))
		genOpts = append(genOpts, nack.WithGeneratorLoggerFactory(cfg.LoggerFactory))
	}
	genOpts = append(genOpts, cfg.nackGeneratorOptions()...)
	responder, err := nack.NewResponderInterceptor(respOpts...)
	if err != nil {
		return nil, fmt.Errorf("rtc: nack responder: %w", err)
	}
	generator, err := nack.NewGeneratorInterceptor(genOpts...)
	if err != nil {
		return nil, fmt.Errorf("rtc: nack generator: %w", err)
	}
	ir.Add(responder)
	ir.Add(generator)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("rtc: rtcp reports: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, fmt.Errorf("rtc: twcc: %w", err)
	}
	if cfg.SendTWCC && cfg.BWE == nil { // addBWE has added it
		ext, err := twcc.NewHeaderExtensionInterceptor()
		if err != nil {
			return nil, fmt.Errorf("rtc: twcc header extension: %w", err)
		}
		ir.Add(ext)
	}
	return ir, nil
}

func newSettingEngine(cfg Config) (*webrtc.SettingEngine, error) {
	s := &webrtc.SettingEngine{}
	if cfg.LoggerFactory != nil {
		s.LoggerFactory = cfg.LoggerFactory
	}
	if cfg.Net != nil {
		s.SetNet(cfg.Net)
	}
	types := cfg.NetworkTypes
	if types == nil {
		types = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	s.SetNetworkTypes(types)
	if f := cfg.IPFilter; f != nil {
		s.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && f(a.Unmap())
		})
	}
	s.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// The gateway has an address: mDNS would only hide it, and vnet has no multicast.
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetLite(cfg.ICELite)
	if cfg.PublicIP.IsValid() {
		if err := s.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        []string{cfg.PublicIP.String()},
			AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			return nil, fmt.Errorf("rtc: public IP: %w", err)
		}
	}
	switch {
	case cfg.UDPMux != nil:
		s.SetICEUDPMux(cfg.UDPMux)
	case cfg.PortMin != 0:
		if err := s.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("%w: %w", errPortRange, err)
		}
	}
	s.SetICETimeouts(
		orDuration(cfg.ICEDisconnectedTimeout, defaultICEDisconnected),
		orDuration(cfg.ICEFailedTimeout, defaultICEFailed),
		orDuration(cfg.ICEKeepaliveInterval, defaultICEKeepalive),
	)
	return s, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// NewUDPMux opens one UDP socket at addr through n (nil: the standard network) and serves ICE
// for every PeerConnection on it: pass it as Config.UDPMux, close it after the last call.
func NewUDPMux(n transport.Net, addr netip.AddrPort, lf logging.LoggerFactory) (ice.UDPMux, error) {
	if n == nil {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("rtc: udp mux: %w", err)
		}
		n = std
	}
	if lf == nil {
		lf = logging.NewDefaultLoggerFactory()
	}
	conn, err := n.ListenPacket("udp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("rtc: udp mux on %s: %w", addr, err)
	}
	return ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn, Net: n, Logger: lf.NewLogger("udpmux")}), nil
}
