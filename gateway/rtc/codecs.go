package rtc

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ErrNoCommonCodec: the two sides share no audio codec. The gateway answers the SIP side with
// 488 Not Acceptable Here, or refuses the WebRTC side's offer.
var ErrNoCommonCodec = errors.New("rtc: no common codec")

var (
	errUnknownCodec = errors.New("rtc: unknown codec")
	errBadOffer     = errors.New("rtc: bad offer")
)

// Codec is one RTP payload format as one side of a call negotiated it (an a=rtpmap line and its
// a=fmtp).
type Codec struct {
	// Name is the encoding name as written in a=rtpmap: "opus", "PCMU", "telephone-event", ...
	Name      string
	ClockRate uint32
	// Channels is 0 or 1 for mono.
	Channels    uint16
	PayloadType uint8
	Fmtp        string
}

// Kind is audio or video, from the encoding name (0 for a format the gateway does not know).
// rtx is video here: an RTX format's kind is its m-line's, which the name does not tell (see
// rtxParams for audio RTX).
func (c Codec) Kind() webrtc.RTPCodecType {
	switch {
	case strings.EqualFold(c.Name, "rtx") || isFlexFEC(c.Name):
		return webrtc.RTPCodecTypeVideo
	case isRED(c.Name):
		return webrtc.RTPCodecTypeAudio
	}
	if known, ok := codecTable[strings.ToLower(c.Name)]; ok {
		return known.kind
	}
	return 0
}

// MimeType is "audio/opus", "video/VP8", ...
func (c Codec) MimeType() string {
	return c.Kind().String() + "/" + c.Name
}

// IsTelephoneEvent reports whether c is RFC 4733 telephone-event.
func (c Codec) IsTelephoneEvent() bool { return strings.EqualFold(c.Name, "telephone-event") }

// String is the rtpmap form: "111 opus/48000/2".
func (c Codec) String() string {
	s := fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(int(c.Channels))
	}
	return s
}

// Same reports whether a and b are the same payload format, whatever their payload types: the
// bridge can pass one side's packets to the other unchanged. Names compare without case,
// channels 0 and 1 are both mono; H.264 also needs the same packetization-mode and profile.
func (c Codec) Same(o Codec) bool {
	if !strings.EqualFold(c.Name, o.Name) || c.ClockRate != o.ClockRate || max(c.Channels, 1) != max(o.Channels, 1) {
		return false
	}
	if strings.EqualFold(c.Name, "h264") {
		a, b := parseFmtp(c.Fmtp), parseFmtp(o.Fmtp)
		pm := func(f map[string]string) string { return orDefault(f["packetization-mode"], "0") }
		// profile_idc only: constrained baseline (42e0..) and baseline (4200..) both decode
		// as baseline, and the level may differ between the two sides.
		profile := func(f map[string]string) string {
			id := strings.ToLower(f["profile-level-id"])
			if len(id) < 2 {
				id = "42" // RFC 6184 default: 420010
			}
			return id[:2]
		}
		return pm(a) == pm(b) && profile(a) == profile(b)
	}
	return true
}

// WebRTC is c as pion's codec parameters (feedback comes from the MediaEngine when negotiated).
func (c Codec) WebRTC() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.MimeType(), ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.Fmtp},
		PayloadType:        webrtc.PayloadType(c.PayloadType),
	}
}

// FromWebRTC is the Codec of pion's codec parameters.
func FromWebRTC(p webrtc.RTPCodecParameters) Codec {
	_, name, _ := strings.Cut(p.MimeType, "/")
	return Codec{Name: name, ClockRate: p.ClockRate, Channels: p.Channels, PayloadType: uint8(p.PayloadType), Fmtp: p.SDPFmtpLine}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func parseFmtp(line string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if k != "" {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// knownCodec is one entry of the gateway's codec table.
type knownCodec struct {
	kind  webrtc.RTPCodecType
	codec Codec // as the gateway registers it with pion
	rtx   uint8 // payload type of its RTX stream (RFC 4588, at the codec's clock rate), 0 for none
	fb    []webrtc.RTCPFeedback
}

// The payload formats the gateway registers. RED (red/48000/2, which Chromium offers) and
// flexfec-03 are not codecs the bridge passes through: they are registered only with
// Config.RED and Config.FlexFEC (fec.go), and otherwise simply left out of the answer. CN and
// the rest of what browsers offer are declined the same way.
//
// Every codec has an RTX format (RFC 4588). Audio RTX (112-115, clear of the telephone-events'
// 101 and 110, red's 63 and flexfec-03's 49) is what no browser offers: the gateway answers it
// only to a client that offers it and offers it itself (a browser drops it from its answer),
// unless Config.NoAudioRTX.
var codecTable = map[string]knownCodec{
	"opus":            {kind: webrtc.RTPCodecTypeAudio, rtx: 112, codec: Codec{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 111, Fmtp: "minptime=10;useinbandfec=1"}},
	"g722":            {kind: webrtc.RTPCodecTypeAudio, rtx: 113, codec: Codec{Name: "G722", ClockRate: 8000, Channels: 1, PayloadType: 9}},
	"pcmu":            {kind: webrtc.RTPCodecTypeAudio, rtx: 114, codec: Codec{Name: "PCMU", ClockRate: 8000, Channels: 1, PayloadType: 0}},
	"pcma":            {kind: webrtc.RTPCodecTypeAudio, rtx: 115, codec: Codec{Name: "PCMA", ClockRate: 8000, Channels: 1, PayloadType: 8}},
	"telephone-event": {kind: webrtc.RTPCodecTypeAudio},
	"vp8": {
		kind: webrtc.RTPCodecTypeVideo, rtx: 97,
		codec: Codec{Name: "VP8", ClockRate: 90000, PayloadType: 96},
	},
	"h264": {
		kind: webrtc.RTPCodecTypeVideo, rtx: 103,
		codec: Codec{Name: "H264", ClockRate: 90000, PayloadType: 102, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
	},
}

// telephoneEvents are RFC 4733 events at both clock rates a call can need: 8000 for G.711 and
// G.722, 48000 for Opus (an event's timestamps run at its audio codec's clock).
var telephoneEvents = []Codec{
	{Name: "telephone-event", ClockRate: 8000, PayloadType: 101, Fmtp: "0-16"},
	{Name: "telephone-event", ClockRate: 48000, PayloadType: 110, Fmtp: "0-16"},
}

// DefaultCodecs is the preference order when Config.Codecs is empty (gateway/config's default).
var DefaultCodecs = []string{"opus", "g722", "pcmu", "pcma", "vp8", "h264"}

// Pair is one payload format both sides negotiated, with each side's payload type. A pair
// whose SIP side is the zero Codec exists on the WebRTC side only (ClientEvents).
type Pair struct {
	WebRTC, SIP Codec
}

// WebRTCOnly reports whether the format has no SIP side (a client-only telephone-event).
func (p Pair) WebRTCOnly() bool { return p.SIP.Name == "" }

// Selection is what a call can carry: the formats both sides have, in the gateway's order of
// preference (the first one is what each side should send).
type Selection struct {
	Audio []Pair
	// Events are the telephone-event formats whose clock rate matches one of Audio.
	Events []Pair
	// ClientEvents are the client's telephone-event formats at the clock of one of Audio for
	// which the SIP side has none (their SIP side is the zero Codec): the client is still
	// offered them, the bridge consumes the events and the call layer sends the digits as SIP
	// INFO.
	ClientEvents []Pair
	// Video is empty when the call has no video (not offered, disabled, or nothing common).
	Video []Pair
	// RED and FlexFEC are the WebRTC side's red and flexfec-03 formats when Config.RED or
	// Config.FlexFEC is on and the call can use them (Opus first in Audio; video), the zero
	// Codec otherwise. PreferCodecs adds them to the transceivers (red ahead of Opus: Chrome
	// sends RED only then); the bridge never sees them (gateway/rtc decodes and encodes both).
	RED, FlexFEC Codec
}

// Pairs returns the audio pairs followed by the events and the client-only events (kind
// audio), or the video pairs.
func (s *Selection) Pairs(kind webrtc.RTPCodecType) []Pair {
	if kind == webrtc.RTPCodecTypeVideo {
		return s.Video
	}
	return append(append(slices.Clip(s.Audio), s.Events...), s.ClientEvents...)
}

// Match selects the formats present on both sides among those the gateway supports, ordered by
// preference (lower-case names: opus, g722, pcmu, pcma, vp8, h264; nil means DefaultCodecs).
// A side's list is what it offered or answered, in any order. With no audio format in common
// it returns ErrNoCommonCodec; video without a common format is dropped, not an error.
func Match(webrtcSide, sipSide []Codec, preference []string) (*Selection, error) {
	if preference == nil {
		preference = DefaultCodecs
	}
	sel := &Selection{}
	for _, name := range preference {
		known, ok := codecTable[name]
		if !ok || name == "telephone-event" {
			return nil, fmt.Errorf("%w %q", errUnknownCodec, name)
		}
		w, okW := findSame(webrtcSide, known.codec)
		s, okS := findSame(sipSide, known.codec)
		if !okW || !okS {
			continue
		}
		if known.kind == webrtc.RTPCodecTypeAudio {
			sel.Audio = append(sel.Audio, Pair{WebRTC: w, SIP: s})
		} else {
			sel.Video = append(sel.Video, Pair{WebRTC: w, SIP: s})
		}
	}
	if len(sel.Audio) == 0 {
		return nil, fmt.Errorf("%w: WebRTC side has %s, SIP side has %s", ErrNoCommonCodec, names(webrtcSide), names(sipSide))
	}
	// Events in the order of the audio codecs whose clock they share.
	for _, a := range sel.Audio {
		sameClock := func(p Pair) bool { return p.WebRTC.ClockRate == a.WebRTC.ClockRate }
		if slices.ContainsFunc(sel.Events, sameClock) || slices.ContainsFunc(sel.ClientEvents, sameClock) {
			continue
		}
		te := Codec{Name: "telephone-event", ClockRate: a.WebRTC.ClockRate}
		w, okW := findSame(webrtcSide, te)
		s, okS := findSame(sipSide, te)
		switch {
		case okW && okS:
			sel.Events = append(sel.Events, Pair{WebRTC: w, SIP: s})
		case okW:
			sel.ClientEvents = append(sel.ClientEvents, Pair{WebRTC: w})
		}
	}
	return sel, nil
}

// PickCodecs is Match for a WebRTC client's offer: the formats of its first audio and first
// video m-line against the SIP side's.
func PickCodecs(offer webrtc.SessionDescription, sipSide []Codec, preference []string) (*Selection, error) {
	parsed, err := offer.Unmarshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadOffer, err)
	}
	var offered []Codec
	seen := map[string]bool{}
	for _, m := range parsed.MediaDescriptions {
		kind := m.MediaName.Media
		if seen[kind] || (kind != "audio" && kind != "video") || m.MediaName.Port.Value == 0 {
			continue
		}
		seen[kind] = true
		offered = append(offered, CodecsOf(m)...)
	}
	return Match(offered, sipSide, preference)
}

// CodecsOf lists the payload formats of one SDP m-line (static payload types without rtpmap
// included), in the m-line's order.
func CodecsOf(m *sdp.MediaDescription) []Codec {
	var out []Codec
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		c := Codec{PayloadType: uint8(pt)}
		for _, a := range m.Attributes {
			v, ok := strings.CutPrefix(a.Value, f+" ")
			if !ok {
				continue
			}
			switch a.Key {
			case "rtpmap":
				parts := strings.Split(v, "/")
				c.Name = parts[0]
				if len(parts) > 1 {
					r, _ := strconv.ParseUint(parts[1], 10, 32)
					c.ClockRate = uint32(r)
				}
				if len(parts) > 2 {
					ch, _ := strconv.ParseUint(parts[2], 10, 16)
					c.Channels = uint16(ch)
				}
			case "fmtp":
				c.Fmtp = v
			}
		}
		if c.Name == "" {
			c = staticPayloadType(c.PayloadType)
		}
		if c.Name != "" {
			out = append(out, c)
		}
	}
	return out
}

// staticPayloadType is the RFC 3551 format of a payload type that needs no rtpmap.
func staticPayloadType(pt uint8) Codec {
	switch pt {
	case 0:
		return Codec{Name: "PCMU", ClockRate: 8000, PayloadType: 0}
	case 8:
		return Codec{Name: "PCMA", ClockRate: 8000, PayloadType: 8}
	case 9:
		return Codec{Name: "G722", ClockRate: 8000, PayloadType: 9}
	}
	return Codec{}
}

func findSame(list []Codec, want Codec) (Codec, bool) {
	for _, c := range list {
		if c.Same(want) {
			return c, true
		}
	}
	return Codec{}, false
}

func names(list []Codec) string {
	if len(list) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for i, c := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s/%d", c.Name, c.ClockRate)
	}
	return b.String()
}

// PreferCodecs restricts every transceiver of pc to the selection, in its order, so that the
// answer (or offer) lists only what the bridge can pass through and the client sends the
// preferred format. Call it after SetRemoteDescription (answerer) or after adding the
// transceivers (offerer). Video transceivers are left alone when the selection has no video:
// the caller stops them. RTX formats of the selected codecs are kept: always for video, for
// audio when the PeerConnection can negotiate them (the client offered audio RTX, or the
// gateway offers with it registered; a browser offers none, so its answer stays without), and
// so are the selection's RED (first) and FlexFEC (last) formats.
func PreferCodecs(pc *webrtc.PeerConnection, sel *Selection) error {
	var remote *sdp.SessionDescription
	if rd := pc.RemoteDescription(); rd != nil {
		// A copy: Unmarshal caches into the description, which pion reads concurrently.
		parsed, err := (&webrtc.SessionDescription{Type: rd.Type, SDP: rd.SDP}).Unmarshal()
		if err != nil {
			return fmt.Errorf("rtc: remote description: %w", err)
		}
		remote = parsed
	}
	for _, tr := range pc.GetTransceivers() {
		kind := tr.Kind()
		pairs := sel.Pairs(kind)
		if len(pairs) == 0 {
			continue
		}
		var params []webrtc.RTPCodecParameters
		if kind == webrtc.RTPCodecTypeAudio && len(sel.Audio) > 0 {
			if red, ok := repairFor(remote, kind, sel.RED, sel.Audio[0].WebRTC.PayloadType); ok {
				red.RTCPFeedback = feedbackFor(remote, kind, uint8(red.PayloadType))
				params = append(params, red)
			}
		}
		for _, p := range pairs {
			c := p.WebRTC.WebRTC()
			// pion keeps the feedback both this list and the MediaEngine name: give it all
			// the remote offered (or all the gateway supports, when it offers).
			c.RTCPFeedback = feedbackFor(remote, kind, p.WebRTC.PayloadType)
			params = append(params, c)
			// Audio RTX only in an answer to a client that offered it: Chrome refuses an offer
			// whose audio m-line announces an RTX stream (a=ssrc-group:FID).
			if rtx, ok := rtxFor(remote, kind, p.WebRTC); ok && (kind == webrtc.RTPCodecTypeVideo || remote != nil && negotiable(tr, rtx)) {
				params = append(params, rtx)
			}
		}
		if kind == webrtc.RTPCodecTypeVideo {
			if ffec, ok := repairFor(remote, kind, sel.FlexFEC, 0); ok {
				params = append(params, ffec)
			}
		}
		if err := tr.SetCodecPreferences(params); err != nil {
			return fmt.Errorf("rtc: codec preferences for %s: %w", kind, err)
		}
	}
	return nil
}

// rtxFor finds the RTX format whose apt is primary's payload type: in the remote description
// when there is one (its payload types are the ones to answer with), else the gateway's own
// table. Its clock rate is the primary's (RFC 4588 8.1: 48000 for Opus RTX, 90000 for video).
func rtxFor(remote *sdp.SessionDescription, kind webrtc.RTPCodecType, primary Codec) (webrtc.RTPCodecParameters, bool) {
	apt := "apt=" + strconv.Itoa(int(primary.PayloadType))
	if remote != nil {
		for _, m := range remote.MediaDescriptions {
			if m.MediaName.Media != kind.String() {
				continue
			}
			for _, c := range CodecsOf(m) {
				if strings.EqualFold(c.Name, "rtx") && c.Fmtp == apt {
					return rtxParams(kind, c.ClockRate, c.PayloadType, primary.PayloadType), true
				}
			}
		}
	}
	for _, known := range codecTable {
		if known.rtx != 0 && known.kind == kind && known.codec.PayloadType == primary.PayloadType {
			return rtxParams(kind, orClock(primary.ClockRate, known.codec.ClockRate), known.rtx, primary.PayloadType), true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// rtxParams is an RTX format as pion names it on an m-line of kind: "video/rtx" (pion's
// MimeTypeRTX) or "audio/rtx" (what pion reads from an audio m-line, so what it matches).
func rtxParams(kind webrtc.RTPCodecType, clock uint32, pt, apt uint8) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: kind.String() + "/rtx", ClockRate: clock, SDPFmtpLine: "apt=" + strconv.Itoa(int(apt))},
		PayloadType:        webrtc.PayloadType(pt),
	}
}

func orClock(clock, def uint32) uint32 {
	if clock == 0 {
		return def
	}
	return clock
}

// negotiable reports whether tr can carry format c: pion refuses codec preferences outside
// what its MediaEngine registered (offerer) or negotiated (answerer), and audio RTX is in
// neither with Config.NoAudioRTX or when the client offered none.
func negotiable(tr *webrtc.RTPTransceiver, c webrtc.RTPCodecParameters) bool {
	var have []webrtc.RTPCodecParameters
	switch {
	case tr.Sender() != nil:
		have = tr.Sender().GetParameters().Codecs
	case tr.Receiver() != nil:
		have = tr.Receiver().GetParameters().Codecs
	}
	return slices.ContainsFunc(have, func(h webrtc.RTPCodecParameters) bool {
		return strings.EqualFold(h.MimeType, c.MimeType) && h.ClockRate == c.ClockRate && h.SDPFmtpLine == c.SDPFmtpLine
	})
}

// feedbackFor is the rtcp-fb the remote description states for pt (a=rtcp-fb:pt and
// a=rtcp-fb:*), or, without a remote description, every kind of feedback the gateway registers.
func feedbackFor(remote *sdp.SessionDescription, kind webrtc.RTPCodecType, pt uint8) []webrtc.RTCPFeedback {
	if remote == nil {
		return []webrtc.RTCPFeedback{
			{Type: webrtc.TypeRTCPFBNACK}, {Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
			{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"}, {Type: webrtc.TypeRTCPFBTransportCC},
		}
	}
	var out []webrtc.RTCPFeedback
	for _, m := range remote.MediaDescriptions {
		if m.MediaName.Media != kind.String() {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key != "rtcp-fb" {
				continue
			}
			target, fb, _ := strings.Cut(a.Value, " ")
			if target != "*" && target != strconv.Itoa(int(pt)) {
				continue
			}
			typ, param, _ := strings.Cut(fb, " ")
			out = append(out, webrtc.RTCPFeedback{Type: typ, Parameter: param})
		}
		break
	}
	return out
}
