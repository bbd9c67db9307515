package rtc

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// chromiumOffer is the shape of a current Chromium offer (audio and video, BUNDLE, rtcp-mux):
// opus 111, red 63, G722 9, PCMU 0, PCMA 8, CN 13, telephone-event 110 (48000) and 126 (8000);
// VP8 96 with rtx 97, H.264 (two profiles) with rtx, red/ulpfec.
const chromiumOffer = `v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS stream
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:chRm
a=ice-pwd:0123456789abcdefghijklmn
a=ice-options:trickle
a=fingerprint:sha-256 2C:6A:5C:7B:98:B2:34:6B:7C:3A:E6:1D:8F:2E:73:5E:AB:50:C1:94:21:84:03:2E:A3:27:36:83:6F:0D:C4:4D
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:stream audio0
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:1001 cname:chromium
a=ssrc:1001 msid:stream audio0
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107 116 117
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:chRm
a=ice-pwd:0123456789abcdefghijklmn
a=ice-options:trickle
a=fingerprint:sha-256 2C:6A:5C:7B:98:B2:34:6B:7C:3A:E6:1D:8F:2E:73:5E:AB:50:C1:94:21:84:03:2E:A3:27:36:83:6F:0D:C4:4D
a=setup:actpass
a=mid:1
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:stream video0
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 transport-cc
a=rtcp-fb:102 ccm fir
a=rtcp-fb:102 nack
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:106 H264/90000
a=rtcp-fb:106 nack
a=rtcp-fb:106 nack pli
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:107 rtx/90000
a=fmtp:107 apt=106
a=rtpmap:116 red/90000
a=rtpmap:117 ulpfec/90000
a=ssrc-group:FID 2001 2002
a=ssrc:2001 cname:chromium
a=ssrc:2002 cname:chromium
`

func sdpText(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// answerFor plays the gateway: it takes the offer, selects against the SIP side, restricts the
// transceivers to the selection, adds its tracks and answers.
func answerFor(t *testing.T, cfg Config, offer string, sip []Codec) (*Selection, []Codec, []Codec) {
	sel, audio, video, _ := answerSDP(t, cfg, offer, sip)
	return sel, audio, video
}

func answerSDP(t *testing.T, cfg Config, offer string, sip []Codec) (*Selection, []Codec, []Codec, string) {
	t.Helper()
	peer, err := NewPeer(cfg, webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = peer.Close() }()
	desc := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText(offer)}
	sel, err := cfg.PickCodecs(desc, sip)
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.SetRemoteDescription(desc); err != nil {
		t.Fatal(err)
	}
	if err := PreferCodecs(peer.PeerConnection, sel); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if pairs := sel.Pairs(kind); len(pairs) > 0 {
			tr, err := webrtc.NewTrackLocalStaticRTP(pairs[0].WebRTC.WebRTC().RTPCodecCapability, kind.String(), "gw")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := peer.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	answer, err := peer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := answer.Unmarshal()
	if err != nil {
		t.Fatal(err)
	}
	var audio, video []Codec
	for _, m := range parsed.MediaDescriptions {
		switch m.MediaName.Media {
		case "audio":
			audio = CodecsOf(m)
		case "video":
			if m.MediaName.Port.Value != 0 {
				video = CodecsOf(m)
			}
		}
	}
	return sel, audio, video, answer.SDP
}

func rtpmaps(list []Codec) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.String())
	}
	return out
}

var sipPBX = []Codec{ // what a FreeSWITCH offer typically carries
	{Name: "PCMU", ClockRate: 8000, PayloadType: 0},
	{Name: "G722", ClockRate: 8000, PayloadType: 9},
	{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 102, Fmtp: "useinbandfec=1"},
	{Name: "PCMA", ClockRate: 8000, PayloadType: 8},
	{Name: "telephone-event", ClockRate: 8000, PayloadType: 101, Fmtp: "0-16"},
	{Name: "telephone-event", ClockRate: 48000, PayloadType: 100, Fmtp: "0-16"},
	{Name: "VP8", ClockRate: 90000, PayloadType: 120},
}

func TestChromiumOfferAnswerDeclinesRED(t *testing.T) {
	sel, audio, video, answer := answerSDP(t, Config{Video: true}, chromiumOffer, sipPBX)

	got := rtpmaps(audio)
	want := []string{"111 opus/48000/2", "9 G722/8000", "0 PCMU/8000", "8 PCMA/8000", "110 telephone-event/48000", "126 telephone-event/8000"}
	if !slices.Equal(got, want) {
		t.Errorf("audio answer %v, want %v", got, want)
	}
	for _, c := range audio {
		if strings.EqualFold(c.Name, "red") || strings.EqualFold(c.Name, "CN") {
			t.Errorf("answer keeps %s", c)
		}
	}
	if got := rtpmaps(video); !slices.Equal(got, []string{"96 VP8/90000", "97 rtx/90000"}) {
		t.Errorf("video answer %v, want VP8 with its RTX only (the SIP side has no H.264)", got)
	}
	// Feedback is what both offered: Chromium asks no NACK for opus (so the gateway cannot
	// NACK its audio), transport-cc yes; VP8 gets NACK, PLI, FIR.
	for _, want := range []string{"a=rtcp-fb:111 transport-cc", "a=rtcp-fb:96 nack\r\n", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 transport-cc"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q", want)
		}
	}
	if strings.Contains(answer, "a=rtcp-fb:111 nack") {
		t.Error("answer adds NACK to opus, which the offer did not have")
	}
	if p := sel.Audio[0]; p.WebRTC.PayloadType != 111 || p.SIP.PayloadType != 102 {
		t.Errorf("first audio pair %v -> %v, want opus 111 -> 102", p.WebRTC, p.SIP)
	}
	if len(sel.Events) != 2 || sel.Events[0].WebRTC.PayloadType != 110 || sel.Events[0].SIP.PayloadType != 100 {
		t.Errorf("events %+v, want 110->100 (48000, opus's clock) then 126->101 (8000)", sel.Events)
	}
}

func TestAnswerFollowsPreference(t *testing.T) {
	cases := []struct {
		name   string
		prefs  []string
		sip    []Codec
		wantFn []string
	}{
		{"g722 first", []string{"g722", "pcmu", "opus"}, sipPBX, []string{"G722", "PCMU", "opus"}},
		{"pcmu only on SIP", nil, sipPBX[:1], []string{"PCMU"}},
		{"video off, the SIP side has VP8", nil, sipPBX, []string{"opus", "G722", "PCMU", "PCMA"}},
		{"pcma preferred", []string{"pcma", "pcmu"}, sipPBX, []string{"PCMA", "PCMU"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, audio, _ := answerFor(t, Config{Codecs: c.prefs}, chromiumOffer, c.sip)
			var media []string
			for _, a := range audio {
				if !a.IsTelephoneEvent() {
					media = append(media, a.Name)
				}
			}
			if !slices.Equal(media, c.wantFn) {
				t.Errorf("answer audio %v, want %v", rtpmaps(audio), c.wantFn)
			}
		})
	}
}

func TestNoCommonCodec(t *testing.T) {
	g729 := []Codec{{Name: "G729", ClockRate: 8000, PayloadType: 18}, {Name: "telephone-event", ClockRate: 8000, PayloadType: 101}}
	_, err := PickCodecs(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText(chromiumOffer)}, g729, nil)
	if !errors.Is(err, ErrNoCommonCodec) {
		t.Fatalf("got %v, want ErrNoCommonCodec", err)
	}
	if !strings.Contains(err.Error(), "G729/8000") {
		t.Errorf("error %q does not say what the SIP side had", err)
	}
	// A codec the configuration leaves out counts as absent.
	_, err = Match([]Codec{{Name: "PCMU", ClockRate: 8000}}, []Codec{{Name: "PCMU", ClockRate: 8000}}, []string{"opus"})
	if !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("got %v, want ErrNoCommonCodec with pcmu not configured", err)
	}
}

func TestCodecSame(t *testing.T) {
	h := func(fmtp string) Codec { return Codec{Name: "H264", ClockRate: 90000, Fmtp: fmtp} }
	cases := []struct {
		a, b Codec
		want bool
	}{
		{Codec{Name: "pcmu", ClockRate: 8000}, Codec{Name: "PCMU", ClockRate: 8000, Channels: 1}, true},
		{Codec{Name: "opus", ClockRate: 48000, Channels: 2}, Codec{Name: "opus", ClockRate: 48000}, false},
		{h("packetization-mode=1;profile-level-id=42e01f"), h("profile-level-id=42001f;packetization-mode=1"), true},
		{h("packetization-mode=1;profile-level-id=42e01f"), h("profile-level-id=42e01f"), false},
		{h("packetization-mode=1;profile-level-id=640032"), h("packetization-mode=1;profile-level-id=42e01f"), false},
	}
	for _, c := range cases {
		if got := c.a.Same(c.b); got != c.want {
			t.Errorf("%v Same %v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Codecs: []string{"g729"}},
		{Codecs: []string{"vp8"}},
		{PortMin: 20000, PortMax: 10000},
		{PortMin: 10000},
	} {
		if _, err := NewAPI(cfg); err == nil {
			t.Errorf("NewAPI(%+v) accepted", cfg)
		}
	}
}

// TestClientEventsWithoutSIPTelephoneEvent: the client keeps its telephone-event when the SIP
// side has none at that clock (a pair without SIP side, after the others in Pairs).
func TestClientEventsWithoutSIPTelephoneEvent(t *testing.T) {
	client := []Codec{{Name: "PCMU", ClockRate: 8000, PayloadType: 0}, {Name: "telephone-event", ClockRate: 8000, PayloadType: 126}}
	sel, err := Match(client, []Codec{{Name: "PCMU", ClockRate: 8000, PayloadType: 0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Events) != 0 || len(sel.ClientEvents) != 1 || sel.ClientEvents[0].WebRTC.PayloadType != 126 || !sel.ClientEvents[0].WebRTCOnly() {
		t.Errorf("events %+v, client events %+v, want none and 126 without SIP side", sel.Events, sel.ClientEvents)
	}
	if pairs := sel.Pairs(webrtc.RTPCodecTypeAudio); len(pairs) != 2 || !pairs[1].WebRTCOnly() {
		t.Errorf("audio pairs %+v, want PCMU then the client-only event", pairs)
	}
	// With telephone-event on both sides nothing is client-only.
	sel, err = Match(client, client, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Events) != 1 || len(sel.ClientEvents) != 0 {
		t.Errorf("events %+v, client events %+v, want one pair and none", sel.Events, sel.ClientEvents)
	}
}
