package sipphone

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// codec is an audio codec the phone can send: G.711 (static payload types) and Opus (dynamic:
// 111 when the phone offers, the offer's payload type when it answers).
type codec struct {
	name     string
	pt       uint8
	rate     uint32
	channels int // in the rtpmap when above 1 (opus/48000/2, RFC 7587)
}

var codecs = []codec{{"PCMU", 0, 8000, 1}, {"PCMA", 8, 8000, 1}, {"opus", 111, 48000, 2}}

// rtpmap is the codec's a=rtpmap value.
func (c codec) rtpmap() string {
	if c.channels > 1 {
		return fmt.Sprintf("%d %s/%d/%d", c.pt, c.name, c.rate, c.channels)
	}
	return fmt.Sprintf("%d %s/%d", c.pt, c.name, c.rate)
}

// samplesPerFrame is one 20 ms frame at the codec's clock.
func (c codec) samplesPerFrame() uint32 { return c.rate / uint32(time.Second/frameDuration) }

func codecByName(name string) (codec, bool) {
	for _, c := range codecs {
		if strings.EqualFold(c.name, name) {
			return c, true
		}
	}
	return codec{}, false
}

// remoteAudio is what the phone uses of a peer's session description.
type remoteAudio struct {
	addr      netip.AddrPort // where to send RTP; unspecified address means on hold
	rtcpPort  uint16         // from a=rtcp (RFC 3605); 0 means the RTP port + 1
	codecs    []codec        // offered codecs in the peer's order, with the peer's payload types
	direction string         // sendrecv, sendonly (hold), recvonly or inactive
	video     *remoteVideo   // the first video m-line; nil when there is none
}

// answerDirection is the direction that answers an offer's (RFC 3264 6.1): a peer that puts the
// phone on hold with sendonly gets recvonly.
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

// sessionDescription builds the phone's offer (several codecs) or answer (the chosen one).
// video, when not nil, adds an m=video line with its codec (port 0 refuses the peer's video).
func sessionDescription(ip netip.Addr, port int, sessionID, version uint64, cs []codec, direction string, video *videoLine) ([]byte, error) {
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{
			Media:  "audio",
			Port:   sdp.RangedPort{Value: port},
			Protos: []string{"RTP", "AVP"},
		},
	}
	for _, c := range cs {
		pt := strconv.Itoa(int(c.pt))
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", c.rtpmap()))
	}
	md.Attributes = append(md.Attributes, sdp.NewAttribute("ptime", "20"), sdp.NewPropertyAttribute(direction))
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "-", SessionID: sessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: "IP4", UnicastAddress: ip.String(),
		},
		SessionName: "siprtc",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: "IP4", Address: &sdp.Address{Address: ip.String()},
		},
		TimeDescriptions:  []sdp.TimeDescription{{Timing: sdp.Timing{}}},
		MediaDescriptions: []*sdp.MediaDescription{md},
	}
	if video != nil {
		vd := &sdp.MediaDescription{
			MediaName: sdp.MediaName{
				Media:   "video",
				Port:    sdp.RangedPort{Value: video.port},
				Protos:  []string{"RTP", "AVP"},
				Formats: []string{strconv.Itoa(int(video.pt))},
			},
			Attributes: []sdp.Attribute{sdp.NewAttribute("rtpmap", video.rtpmap())},
		}
		if f := video.fmtp(); f != "" {
			vd.Attributes = append(vd.Attributes, sdp.NewAttribute("fmtp", f))
		}
		if video.port != 0 {
			vd.Attributes = append(vd.Attributes, sdp.NewAttribute("rtcp-fb", strconv.Itoa(int(video.pt))+" nack pli"), sdp.NewPropertyAttribute(direction))
		}
		sd.MediaDescriptions = append(sd.MediaDescriptions, vd)
	}
	return sd.Marshal()
}

// parseAudio reads the first audio stream of a session description.
func parseAudio(body []byte) (remoteAudio, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return remoteAudio{}, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	video, err := parseVideo(&sd)
	if err != nil {
		return remoteAudio{}, err
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return remoteAudio{}, fmt.Errorf("%w: no connection address", ErrBadSDP)
		}
		ip, err := netip.ParseAddr(ci.Address.Address)
		if err != nil {
			return remoteAudio{}, fmt.Errorf("%w: connection address %q", ErrBadSDP, ci.Address.Address)
		}
		if md.MediaName.Port.Value < 0 || md.MediaName.Port.Value > 65535 {
			return remoteAudio{}, fmt.Errorf("%w: port %d", ErrBadSDP, md.MediaName.Port.Value)
		}
		ra := remoteAudio{addr: netip.AddrPortFrom(ip.Unmap(), uint16(md.MediaName.Port.Value)), direction: "sendrecv", video: video}
		for _, a := range sd.Attributes { // a session-level direction, overridden by the stream's
			if isDirection(a.Key) {
				ra.direction = a.Key
			}
		}
		rtpmaps := map[string]string{}
		for _, a := range md.Attributes {
			if isDirection(a.Key) {
				ra.direction = a.Key
			}
			if a.Key == "rtcp" {
				port, _, _ := strings.Cut(a.Value, " ")
				if v, err := strconv.ParseUint(port, 10, 16); err == nil {
					ra.rtcpPort = uint16(v)
				}
			}
			if a.Key != "rtpmap" {
				continue
			}
			pt, enc, ok := strings.Cut(a.Value, " ")
			if ok {
				name, _, _ := strings.Cut(enc, "/")
				rtpmaps[pt] = name
			}
		}
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				continue
			}
			name, mapped := rtpmaps[f]
			var c codec
			var ok bool
			if mapped {
				c, ok = codecByName(name)
				c.pt = uint8(pt)
			} else {
				for _, known := range codecs {
					if int(known.pt) == pt {
						c, ok = known, true
					}
				}
			}
			if ok {
				ra.codecs = append(ra.codecs, c)
			}
		}
		return ra, nil
	}
	return remoteAudio{}, fmt.Errorf("%w: no audio stream", ErrBadSDP)
}

// negotiate picks the first codec of the offer the phone also supports (RFC 3264 6.1: the
// answerer keeps the offerer's preference).
func negotiate(local []codec, offered []codec) (codec, bool) {
	for _, o := range offered {
		for _, l := range local {
			if l.name == o.name {
				return o, true
			}
		}
	}
	return codec{}, false
}

func isDirection(attr string) bool {
	switch attr {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// parseVideo reads the first video m-line of a session description: nil when there is none.
func parseVideo(sd *sdp.SessionDescription) (*remoteVideo, error) {
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "video" {
			continue
		}
		rv := &remoteVideo{}
		if md.MediaName.Port.Value <= 0 || md.MediaName.Port.Value > 65535 {
			return rv, nil // refused (port 0), or unusable
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return nil, fmt.Errorf("%w: no connection address for video", ErrBadSDP)
		}
		ip, err := netip.ParseAddr(ci.Address.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: connection address %q", ErrBadSDP, ci.Address.Address)
		}
		rv.addr = netip.AddrPortFrom(ip.Unmap(), uint16(md.MediaName.Port.Value))
		for _, f := range md.MediaName.Formats { // in the peer's order
			v, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				continue
			}
			vf := videoFormat{pt: uint8(v)}
			for _, a := range md.Attributes {
				pt, rest, ok := strings.Cut(a.Value, " ")
				if !ok || pt != f {
					continue
				}
				switch a.Key {
				case "rtpmap":
					vf.name, _, _ = strings.Cut(rest, "/")
				case "fmtp":
					vf.fmtp = rest
				}
			}
			if vf.name != "" {
				rv.formats = append(rv.formats, vf)
			}
		}
		return rv, nil
	}
	return nil, nil
}
