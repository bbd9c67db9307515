package pbx

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

var errNoCommonCodec = errors.New("no common codec")

// setRemote points a PBX endpoint at the media address a leg's SDP gave (hold and ICE
// placeholders handled by rtprelay).
func setRemote(e *rtprelay.Endpoint, m rtprelay.Media) { e.SetRemoteMedia(m) }

// answerSDP answers an offer with the PBX terminating media: for the first audio m-line, the
// first codec in prefs that the offer has (plus telephone-event if offered); every other m-line
// is rejected with port 0, as FreeSWITCH does for media it does not take.
func answerSDP(p *Embedded, offer []rtprelay.Media, prefs []string) ([]*rtprelay.Endpoint, []byte, error) {
	eps := make([]*rtprelay.Endpoint, len(offer))
	var b strings.Builder
	ip := p.addr.Addr().String()
	sess := rand.Uint64N(1 << 40)
	fmt.Fprintf(&b, "v=0\r\no=FreeSWITCH %d %d IN IP4 %s\r\ns=FreeSWITCH\r\nc=IN IP4 %s\r\nt=0 0\r\n", sess, sess+1, ip, ip)
	took := false
	for i, m := range offer {
		if took || m.Kind != "audio" || m.Port == 0 {
			fmt.Fprintf(&b, "m=%s 0 RTP/AVP %d\r\n", m.Kind, firstPT(m))
			continue
		}
		codec, ok := pickCodec(m.Codecs, prefs)
		if !ok {
			continue
		}
		e, err := p.alloc.Allocate()
		if err != nil {
			closeAll(eps)
			return nil, nil, err
		}
		eps[i] = e
		took = true
		pts := fmt.Sprint(codec.PT)
		var te *rtprelay.Codec
		for _, c := range m.Codecs {
			if strings.EqualFold(c.Name, "telephone-event") && c.ClockRate == codec.ClockRate {
				te = &c
				pts += fmt.Sprintf(" %d", c.PT)
				break
			}
		}
		fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", e.RTPAddr().Port(), pts)
		writeRtpmap(&b, codec)
		if te != nil {
			writeRtpmap(&b, *te)
		}
		b.WriteString("a=ptime:20\r\na=sendrecv\r\n")
	}
	if !took {
		closeAll(eps)
		return nil, nil, errNoCommonCodec
	}
	return eps, []byte(b.String()), nil
}

func writeRtpmap(b *strings.Builder, c rtprelay.Codec) {
	fmt.Fprintf(b, "a=rtpmap:%d %s/%d", c.PT, c.Name, c.ClockRate)
	if c.Channels > 1 {
		fmt.Fprintf(b, "/%d", c.Channels)
	}
	b.WriteString("\r\n")
	if c.Fmtp != "" {
		fmt.Fprintf(b, "a=fmtp:%d %s\r\n", c.PT, c.Fmtp)
	}
}

func firstPT(m rtprelay.Media) uint8 {
	if len(m.Payloads) > 0 {
		return m.Payloads[0]
	}
	return 0
}

// pickCodec returns the first codec in prefs (FreeSWITCH names: PCMU, PCMA, G722, OPUS) that
// the offer lists.
func pickCodec(offered []rtprelay.Codec, prefs []string) (rtprelay.Codec, bool) {
	for _, pref := range prefs {
		name, _, _ := strings.Cut(strings.TrimSpace(pref), "@")
		for _, c := range offered {
			if strings.EqualFold(c.Name, name) {
				return c, true
			}
		}
	}
	return rtprelay.Codec{}, false
}

func closeAll(eps []*rtprelay.Endpoint) {
	for _, e := range eps {
		if e != nil {
			e.Close()
		}
	}
}
