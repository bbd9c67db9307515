package call

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
)

var errBadSDP = errors.New("call: unusable SIP session description")

// sipMedia is one m-line of a SIP session description as the bridge needs it.
type sipMedia struct {
	kind      string         // "audio", "video", or anything else (rejected)
	rtp       netip.AddrPort // the connection address and port; unspecified address: on hold
	rtcp      netip.AddrPort // from a=rtcp (RFC 3605); invalid: the RTP port + 1
	rtcpMux   bool
	codecs    []rtc.Codec
	direction string // sendrecv, sendonly, recvonly, inactive
	formats   []string
}

// rejected reports whether the m-line is refused or unusable (port 0).
func (m sipMedia) rejected() bool { return m.rtp.Port() == 0 }

// onHold reports whether the peer does not want to receive: a=sendonly/inactive or the RFC 2543
// c=0.0.0.0 form.
func (m sipMedia) onHold() bool {
	return m.direction == "sendonly" || m.direction == "inactive" || (m.rtp.Addr().IsValid() && m.rtp.Addr().IsUnspecified())
}

// parseSIPSDP reads every m-line of a SIP offer or answer.
func parseSIPSDP(body []byte) ([]sipMedia, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSDP, err)
	}
	sessionDir := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			sessionDir = a.Key
		}
	}
	var out []sipMedia
	for _, md := range sd.MediaDescriptions {
		m := sipMedia{kind: md.MediaName.Media, direction: sessionDir, formats: md.MediaName.Formats}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		port := md.MediaName.Port.Value
		if ci != nil && ci.Address != nil && port > 0 && port <= 65535 {
			host, _, _ := strings.Cut(ci.Address.Address, "/")
			if ip, err := netip.ParseAddr(host); err == nil {
				m.rtp = netip.AddrPortFrom(ip.Unmap(), uint16(port))
			}
		}
		for _, a := range md.Attributes {
			switch {
			case isDirection(a.Key):
				m.direction = a.Key
			case a.Key == "rtcp-mux":
				m.rtcpMux = true
			case a.Key == "rtcp":
				f := strings.Fields(a.Value)
				if len(f) == 0 {
					break
				}
				p, err := strconv.ParseUint(f[0], 10, 16)
				if err != nil {
					break
				}
				ip := m.rtp.Addr()
				if len(f) >= 4 {
					if a, err := netip.ParseAddr(f[3]); err == nil {
						ip = a.Unmap()
					}
				}
				if ip.IsValid() {
					m.rtcp = netip.AddrPortFrom(ip, uint16(p))
				}
			}
		}
		m.codecs = rtc.CodecsOf(md)
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no media", errBadSDP)
	}
	return out, nil
}

// firstOf returns the first usable m-line of kind.
func firstOf(ms []sipMedia, kind webrtc.RTPCodecType) (sipMedia, bool) {
	for _, m := range ms {
		if m.kind == kind.String() && !m.rejected() {
			return m, true
		}
	}
	return sipMedia{}, false
}

// codecsOf lists the formats of the first usable audio and video m-lines: the SIP side of
// rtc.Match.
func codecsOf(ms []sipMedia) []rtc.Codec {
	var out []rtc.Codec
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if m, ok := firstOf(ms, kind); ok {
			out = append(out, m.codecs...)
		}
	}
	return out
}

func isDirection(attr string) bool {
	switch attr {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// answerDirection answers an offer's direction (RFC 3264 6.1).
func answerDirection(offer string) string {
	switch offer {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// sdpStream is one m-line the gateway writes toward the PBX.
type sdpStream struct {
	kind      string
	port      uint16 // 0 rejects the m-line
	codecs    []rtc.Codec
	formats   []string // for a rejected m-line: the offer's formats (one is needed)
	direction string
	ssrc      uint32
}

// sipSession is the gateway's side of one call's SIP session description: a stable o= line
// whose version grows with each new description (RFC 3264 8).
type sipSession struct {
	ip      netip.Addr
	id, ver uint64
	cname   string
}

// render writes the session description of streams.
func (s *sipSession) render(streams []sdpStream) []byte {
	s.ver++
	ip := s.ip.String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=siprtc %d %d IN IP4 %s\r\ns=siprtc\r\nc=IN IP4 %s\r\nt=0 0\r\n", s.id, s.ver, ip, ip)
	for _, st := range streams {
		if st.port == 0 {
			formats := st.formats
			if len(formats) == 0 {
				formats = []string{"0"}
			}
			fmt.Fprintf(&b, "m=%s 0 RTP/AVP %s\r\n", st.kind, strings.Join(formats, " "))
			continue
		}
		pts := make([]string, 0, len(st.codecs))
		for _, c := range st.codecs {
			pts = append(pts, strconv.Itoa(int(c.PayloadType)))
		}
		fmt.Fprintf(&b, "m=%s %d RTP/AVP %s\r\n", st.kind, st.port, strings.Join(pts, " "))
		for _, c := range st.codecs {
			fmt.Fprintf(&b, "a=rtpmap:%s\r\n", rtpmap(c))
			if c.Fmtp != "" {
				fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", c.PayloadType, c.Fmtp)
			}
		}
		fmt.Fprintf(&b, "a=rtcp:%d\r\n", st.port+1)
		if st.kind == "audio" {
			b.WriteString("a=ptime:20\r\n")
		}
		if st.ssrc != 0 && s.cname != "" {
			fmt.Fprintf(&b, "a=ssrc:%d cname:%s\r\n", st.ssrc, s.cname)
		}
		dir := st.direction
		if dir == "" {
			dir = "sendrecv"
		}
		fmt.Fprintf(&b, "a=%s\r\n", dir)
	}
	return []byte(b.String())
}

// rtpmap is the a=rtpmap value of c: "0 PCMU/8000", "111 opus/48000/2".
func rtpmap(c rtc.Codec) string {
	s := fmt.Sprintf("%d %s/%d", c.PayloadType, c.Name, c.ClockRate)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(int(c.Channels))
	}
	return s
}

// sipCodecs are the SIP side's formats of pairs, in order (a client-only telephone-event has
// none).
func sipCodecs(pairs []rtc.Pair) []rtc.Codec {
	out := make([]rtc.Codec, 0, len(pairs))
	for _, p := range pairs {
		if !p.WebRTCOnly() {
			out = append(out, p.SIP)
		}
	}
	return out
}

// webrtcCodecsOf lists the formats of a WebRTC description's first audio and video m-lines.
func webrtcCodecsOf(d webrtc.SessionDescription) ([]rtc.Codec, error) {
	parsed, err := d.Unmarshal()
	if err != nil {
		return nil, err
	}
	var out []rtc.Codec
	seen := map[string]bool{}
	for _, m := range parsed.MediaDescriptions {
		kind := m.MediaName.Media
		if seen[kind] || (kind != "audio" && kind != "video") || m.MediaName.Port.Value == 0 {
			continue
		}
		seen[kind] = true
		out = append(out, rtc.CodecsOf(m)...)
	}
	return out, nil
}
