package rtprelay

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/pion/sdp/v3"
)

// Media describes one m-line of a session description as the PBX needs it.
type Media struct {
	Kind  string // audio, video, application, ...
	Port  int    // 0: rejected m-line
	Proto string // RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, ...
	// Addr is the connection address, media-level c= over session-level c=.
	// 0.0.0.0 (or ::) is hold in the RFC 2543 style.
	Addr netip.Addr
	// RTCP is where the leg receives RTCP: the RTP address under rtcp-mux,
	// else a=rtcp (RFC 3605), else RTP port + 1.
	RTCP    netip.AddrPort
	RTCPMux bool
	// ICE is set when the description carries ICE (a=ice-ufrag or
	// a=candidate). Its c=IN IP4 0.0.0.0 is then JSEP's placeholder for an
	// address not known yet (RFC 8829 §5.2.1), not hold.
	ICE       bool
	Payloads  []uint8 // m= formats that are payload types, in order
	Direction string  // sendrecv, sendonly, recvonly, inactive (media over session level)
	Codecs    []Codec // one per payload type, in m= order
}

// Codec is one payload type of an m-line, from a=rtpmap and a=fmtp or the
// static table of RFC 3551.
type Codec struct {
	PT        uint8
	Name      string // empty for a dynamic type without a=rtpmap
	ClockRate uint32
	Channels  int // audio: 1 unless a=rtpmap says otherwise; other media: 0
	Fmtp      string
}

// RTPAddr is where the leg receives RTP; the zero AddrPort when the SDP
// does not say (no c=, or JSEP's 0.0.0.0 placeholder), in which case latching
// learns it from the leg's first packet.
func (m Media) RTPAddr() netip.AddrPort {
	if !m.Addr.IsValid() || m.placeholder() {
		return netip.AddrPort{}
	}

	return netip.AddrPortFrom(m.Addr, uint16(m.Port)) //nolint:gosec // parsed as a port
}

// OnHold reports whether the leg asked not to be sent media: connection
// address 0.0.0.0 (outside ICE), or a=sendonly or a=inactive.
func (m Media) OnHold() bool {
	return (m.Addr.IsValid() && m.Addr.IsUnspecified() && !m.ICE) || m.Direction == "sendonly" || m.Direction == "inactive"
}

func (m Media) placeholder() bool { return m.ICE && m.Addr.IsUnspecified() }

// Rejected reports whether the m-line was refused (port 0).
func (m Media) Rejected() bool { return m.Port == 0 }

// ParseSDP parses a session description and describes each of its m-lines.
// The pion description is returned as is for anything else the caller needs.
func ParseSDP(b []byte) (*sdp.SessionDescription, []Media, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSDP, err)
	}
	sessionAddr, err := connectionAddr(sd.ConnectionInformation)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: session c=: %w", ErrSDP, err)
	}
	sessionDir := direction(sd.Attributes)
	ice := hasICE(&sd)

	media := make([]Media, 0, len(sd.MediaDescriptions))
	for i, md := range sd.MediaDescriptions {
		m, err := describe(md, sessionAddr, sessionDir, ice)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: m-line %d (%s): %w", ErrSDP, i, md.MediaName.Media, err)
		}
		media = append(media, m)
	}

	return &sd, media, nil
}

func describe(md *sdp.MediaDescription, sessionAddr netip.Addr, sessionDir string, ice bool) (Media, error) {
	m := Media{
		ICE:       ice,
		Kind:      md.MediaName.Media,
		Port:      md.MediaName.Port.Value,
		Proto:     strings.Join(md.MediaName.Protos, "/"),
		Addr:      sessionAddr,
		Direction: direction(md.Attributes),
	}
	if m.Direction == "" {
		m.Direction = sessionDir
	}
	if m.Direction == "" {
		m.Direction = "sendrecv"
	}
	if md.ConnectionInformation != nil {
		addr, err := connectionAddr(md.ConnectionInformation)
		if err != nil {
			return m, fmt.Errorf("c=: %w", err)
		}
		m.Addr = addr
	}
	if !m.Addr.IsValid() && m.Port != 0 {
		return m, fmt.Errorf("%w: no c= at session or media level", ErrAddress)
	}

	rtpmap := map[uint8]Codec{}
	fmtp := map[uint8]string{}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtcp-mux":
			m.RTCPMux = true
		case "rtcp":
			rtcp, err := parseRTCPAttr(a.Value, m.Addr)
			if err != nil {
				return m, err
			}
			m.RTCP = rtcp
		case "rtpmap":
			if c, ok := parseRTPMap(a.Value, m.Kind); ok {
				rtpmap[c.PT] = c
			}
		case "fmtp":
			pt, params, ok := strings.Cut(a.Value, " ")
			if n, err := strconv.ParseUint(pt, 10, 8); ok && err == nil {
				fmtp[uint8(n)] = strings.TrimSpace(params)
			}
		}
	}
	switch {
	case m.RTCPMux, m.placeholder():
		m.RTCP = m.RTPAddr()
	case !m.RTCP.IsValid() && m.Addr.IsValid() && m.Port != 0:
		m.RTCP = netip.AddrPortFrom(m.Addr, uint16(m.Port+1)) //nolint:gosec // port < 65535 checked by the parser
	}

	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			continue // not RTP: webrtc-datachannel, t38, ...
		}
		pt := uint8(n)
		m.Payloads = append(m.Payloads, pt)
		c, ok := rtpmap[pt]
		if !ok {
			c = staticCodec(pt, m.Kind)
		}
		c.Fmtp = fmtp[pt]
		m.Codecs = append(m.Codecs, c)
	}

	return m, nil
}

func connectionAddr(ci *sdp.ConnectionInformation) (netip.Addr, error) {
	if ci == nil || ci.Address == nil {
		return netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %q is not an IP address", ErrAddress, ci.Address.Address)
	}

	return addr.Unmap(), nil
}

// hasICE reports whether the description carries ICE anywhere.
func hasICE(sd *sdp.SessionDescription) bool {
	is := func(attrs []sdp.Attribute) bool {
		for _, a := range attrs {
			if a.Key == "ice-ufrag" || a.IsICECandidate() {
				return true
			}
		}

		return false
	}
	if is(sd.Attributes) {
		return true
	}
	for _, md := range sd.MediaDescriptions {
		if is(md.Attributes) {
			return true
		}
	}

	return false
}

func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}

	return ""
}

// parseRTCPAttr reads a=rtcp:<port> [IN IP4 <addr>] (RFC 3605).
func parseRTCPAttr(v string, mediaAddr netip.Addr) (netip.AddrPort, error) {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: empty a=rtcp", ErrSDP)
	}
	port, err := strconv.ParseUint(fields[0], 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: a=rtcp port %q", ErrSDP, fields[0])
	}
	addr := mediaAddr
	if len(fields) >= 4 {
		if addr, err = netip.ParseAddr(fields[3]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: a=rtcp address %q", ErrAddress, fields[3])
		}
	}
	if !addr.IsValid() {
		return netip.AddrPort{}, nil
	}

	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// parseRTPMap reads a=rtpmap:<pt> <name>/<clock rate>[/<channels>].
func parseRTPMap(v, kind string) (Codec, bool) {
	pt, enc, ok := strings.Cut(v, " ")
	n, err := strconv.ParseUint(pt, 10, 8)
	if !ok || err != nil {
		return Codec{}, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	c := Codec{PT: uint8(n), Name: parts[0], Channels: defaultChannels(kind)}
	if len(parts) > 1 {
		rate, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			return Codec{}, false
		}
		c.ClockRate = uint32(rate)
	}
	if len(parts) > 2 {
		ch, err := strconv.Atoi(parts[2])
		if err != nil {
			return Codec{}, false
		}
		c.Channels = ch
	}

	return c, true
}

func defaultChannels(kind string) int {
	if kind == "audio" {
		return 1
	}

	return 0
}

// staticPayloadTypes is RFC 3551's table of payload types usable without
// a=rtpmap.
var staticPayloadTypes = map[uint8]Codec{
	0:  {Name: "PCMU", ClockRate: 8000},
	3:  {Name: "GSM", ClockRate: 8000},
	4:  {Name: "G723", ClockRate: 8000},
	5:  {Name: "DVI4", ClockRate: 8000},
	6:  {Name: "DVI4", ClockRate: 16000},
	7:  {Name: "LPC", ClockRate: 8000},
	8:  {Name: "PCMA", ClockRate: 8000},
	9:  {Name: "G722", ClockRate: 8000},
	10: {Name: "L16", ClockRate: 44100, Channels: 2},
	11: {Name: "L16", ClockRate: 44100},
	12: {Name: "QCELP", ClockRate: 8000},
	13: {Name: "CN", ClockRate: 8000},
	14: {Name: "MPA", ClockRate: 90000},
	15: {Name: "G728", ClockRate: 8000},
	16: {Name: "DVI4", ClockRate: 11025},
	17: {Name: "DVI4", ClockRate: 22050},
	18: {Name: "G729", ClockRate: 8000},
	25: {Name: "CelB", ClockRate: 90000},
	26: {Name: "JPEG", ClockRate: 90000},
	28: {Name: "nv", ClockRate: 90000},
	31: {Name: "H261", ClockRate: 90000},
	32: {Name: "MPV", ClockRate: 90000},
	33: {Name: "MP2T", ClockRate: 90000},
	34: {Name: "H263", ClockRate: 90000},
}

func staticCodec(pt uint8, kind string) Codec {
	c, ok := staticPayloadTypes[pt]
	if !ok {
		return Codec{PT: pt, Channels: defaultChannels(kind)}
	}
	c.PT = pt
	if c.Channels == 0 {
		c.Channels = defaultChannels(kind)
	}

	return c
}

// RewriteSDP makes a leg's session description name the PBX: addrs[i] is the
// PBX endpoint of m-line i (index-aligned; a zero AddrPort or port 0 rejects
// that m-line). It rewrites exactly these lines and keeps every other line as
// it was:
//
//   - o=: the address becomes the PBX's (that of the first valid entry of
//     addrs); username and session id are kept, and the version goes up by
//     one when sessionVersionBump is set. Use [Origin] to give a leg its own
//     stable o= across re-INVITEs.
//   - c= (session and media level): the PBX address, except an unspecified
//     one (0.0.0.0 or ::, RFC 2543 hold), which is kept so the other leg sees
//     the hold. In a description with ICE, 0.0.0.0 is JSEP's placeholder and
//     is rewritten like any other address.
//   - m=: the port of the PBX endpoint; a rejected m-line (port 0) stays 0.
//   - a=rtcp: the PBX's RTCP port (RTP + 1), or its RTP port when the line
//     named the RTP port (rtcp-mux style); an address in it becomes the PBX's.
//
// Kept unchanged: direction attributes (a=sendonly and a=inactive still mean
// hold), a=rtcp-mux, codecs (rtpmap, fmtp, rtcp-fb), ptime, ssrc, and ICE
// and DTLS attributes (ice-ufrag, candidate, fingerprint, setup). A PBX that
// anchors plain RTP between legs that both do ICE/DTLS end to end must strip
// those itself. The output is pion's canonical form, with CRLF line ends.
func RewriteSDP(b []byte, addrs []netip.AddrPort, sessionVersionBump bool) ([]byte, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSDP, err)
	}
	if len(addrs) != len(sd.MediaDescriptions) {
		return nil, fmt.Errorf("%w: %d addresses for %d m-lines", ErrMediaCount, len(addrs), len(sd.MediaDescriptions))
	}
	var pbx netip.Addr
	for _, ap := range addrs {
		if ap.IsValid() {
			pbx = ap.Addr().Unmap()

			break
		}
	}
	if !pbx.IsValid() {
		return nil, fmt.Errorf("%w: no valid PBX address among %d", ErrAddress, len(addrs))
	}

	sd.Origin.UnicastAddress = pbx.String()
	sd.Origin.AddressType = addrType(pbx)
	if sessionVersionBump {
		sd.Origin.SessionVersion++
	}
	// 0.0.0.0 is hold, and kept, unless it is JSEP's placeholder.
	keepHold := !hasICE(&sd)
	setConnection(sd.ConnectionInformation, pbx, keepHold)

	for i, md := range sd.MediaDescriptions {
		addr, port := pbx, 0
		if ap := addrs[i]; ap.IsValid() {
			addr, port = ap.Addr().Unmap(), int(ap.Port())
		}
		oldPort := md.MediaName.Port.Value
		if oldPort == 0 {
			port = 0
		}
		md.MediaName.Port.Value = port

		switch {
		case md.ConnectionInformation != nil:
			setConnection(md.ConnectionInformation, addr, keepHold)
		case sd.ConnectionInformation == nil || (addr != pbx && !(keepHold && isHold(sd.ConnectionInformation))):
			md.ConnectionInformation = &sdp.ConnectionInformation{
				NetworkType: "IN", AddressType: addrType(addr), Address: &sdp.Address{Address: addr.String()},
			}
		}

		if port == 0 {
			continue
		}
		for j, a := range md.Attributes {
			if a.Key == "rtcp" {
				md.Attributes[j].Value = rewriteRTCPAttr(a.Value, oldPort, port, addr, keepHold)
			}
		}
	}

	out, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rtprelay: marshal SDP: %w", err)
	}

	return out, nil
}

func addrType(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}

	return "IP6"
}

func isHold(ci *sdp.ConnectionInformation) bool {
	addr, err := connectionAddr(ci)

	return err == nil && addr.IsValid() && addr.IsUnspecified()
}

func setConnection(ci *sdp.ConnectionInformation, addr netip.Addr, keepHold bool) {
	if ci == nil || (keepHold && isHold(ci)) {
		return
	}
	ci.NetworkType = "IN"
	ci.AddressType = addrType(addr)
	ci.Address = &sdp.Address{Address: addr.String()}
}

func rewriteRTCPAttr(v string, oldRTP, newRTP int, addr netip.Addr, keepHold bool) string {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return v
	}
	port := newRTP + 1
	if old, err := strconv.Atoi(fields[0]); err == nil && old == oldRTP {
		port = newRTP
	}
	fields[0] = strconv.Itoa(port)
	if len(fields) >= 4 {
		if old, err := netip.ParseAddr(fields[3]); err != nil || !old.IsUnspecified() || !keepHold {
			fields[2], fields[3] = addrType(addr), addr.String()
		}
	}

	return strings.Join(fields, " ")
}

// Origin owns the o= line the PBX sends on one leg. RFC 3264 §8 wants one
// session id for the whole dialog and a version that goes up by one exactly
// when the description changes; a B2BUA that forwards what the other leg sent
// would leak that leg's o= (and lose it on transfer). Origin is safe for
// concurrent use.
type Origin struct {
	mu        sync.Mutex
	username  string
	sessionID uint64
	version   uint64
	last      []byte // the last description applied, o= blanked
}

// NewOrigin returns an Origin with a random session id; username "-" is
// what RFC 4566 suggests when there is none.
func NewOrigin(username string) *Origin {
	if username == "" {
		username = "-"
	}
	id := rand.Uint64N(1 << 62) //nolint:gosec // a session id, not a secret

	return &Origin{username: username, sessionID: id, version: id}
}

// SessionID is the o= session id of this leg.
func (o *Origin) SessionID() uint64 { return o.sessionID }

// Apply sets b's o= username, session id and version to this leg's, keeping
// its address. The version goes up by one when b differs from the previous
// description applied (other than in o=), and stays for a repeat such as a
// session-refresh re-INVITE.
func (o *Origin) Apply(b []byte) ([]byte, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSDP, err)
	}
	sd.Origin.Username, sd.Origin.SessionID, sd.Origin.SessionVersion = "", 0, 0
	key, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rtprelay: marshal SDP: %w", err)
	}

	o.mu.Lock()
	if o.last != nil && !bytes.Equal(key, o.last) {
		o.version++
	}
	o.last = key
	sd.Origin.Username, sd.Origin.SessionID, sd.Origin.SessionVersion = o.username, o.sessionID, o.version
	o.mu.Unlock()

	out, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rtprelay: marshal SDP: %w", err)
	}

	return out, nil
}
