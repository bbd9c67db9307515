package rtprelay

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// crlf turns a readable sample into SDP's CRLF form.
func crlf(s string) string {
	return strings.ReplaceAll(strings.TrimPrefix(s, "\n"), "\n", "\r\n")
}

var pbxAddr = netip.MustParseAddr("203.0.113.5")

func pbxPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(pbxAddr, port) }

// A pion offer as the gateway's WebRTC side makes it: ICE and DTLS, rtcp-mux,
// and JSEP's c=IN IP4 0.0.0.0 placeholder with port 9.
const pionOffer = `
v=0
o=- 4215775240449105457 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 101
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:ZCMQRVhWmyIabcde
a=ice-pwd:SxMFwRvDbrEbnXJmPjfHjRdPgWJtSkHq
a=fingerprint:sha-256 8C:1E:D5:66:2B:7D:95:7C:3A:3D:D1:C2:1A:86:7E:A4:92:3F:6C:48:AC:DE:22:CE:9D:2B:3F:03:2C:9A:E4:1F
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=ssrc:2845106312 cname:pion
a=candidate:1390596646 1 udp 2130706431 192.0.2.44 51842 typ host
a=end-of-candidates
`

// An answer as FreeSWITCH writes it: session c=, explicit a=rtcp.
const freeswitchAnswer = `
v=0
o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.20
s=FreeSWITCH
c=IN IP4 198.51.100.20
t=0 0
m=audio 24600 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
a=rtcp:24601 IN IP4 198.51.100.20
`

// A softphone offer with audio and video.
const audioVideoOffer = `
v=0
o=baresip 1234 5678 IN IP4 198.51.100.7
s=-
c=IN IP4 198.51.100.7
t=0 0
m=audio 10000 RTP/AVP 96 0 101
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=sendrecv
m=video 10002 RTP/AVP 97
b=AS:2000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=1;profile-level-id=42e01f
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=sendrecv
`

// An answer that rejects the video m-line.
const rejectedVideoAnswer = `
v=0
o=linphone 2001 2002 IN IP4 198.51.100.9
s=Talk
c=IN IP4 198.51.100.9
t=0 0
m=audio 7078 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
m=video 0 RTP/AVP 96
a=rtpmap:96 VP8/90000
`

// A hold re-INVITE in the RFC 2543 style (0.0.0.0) with a=sendonly.
const holdOffer = `
v=0
o=- 3001 3002 IN IP4 198.51.100.30
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 30000 RTP/AVP 0
a=rtcp:30001
a=sendonly
`

// A music-on-hold re-INVITE: real address, a=sendonly.
const sendonlyOffer = `
v=0
o=- 3001 3003 IN IP4 198.51.100.30
s=-
c=IN IP4 198.51.100.30
t=0 0
m=audio 30000 RTP/AVP 0
a=sendonly
`

// Connection data at media level only.
const mediaLevelConnection = `
v=0
o=- 1 1 IN IP4 198.51.100.40
s=-
t=0 0
m=audio 40000 RTP/AVP 0
c=IN IP4 198.51.100.40
`

func TestParseSDP(t *testing.T) {
	ap := netip.MustParseAddrPort
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name       string
		sdp        string
		want       []Media
		rtp, rtcp  []netip.AddrPort // what SetRemoteMedia will use
		hold       []bool
		rejected   []bool
		originUser string
	}{
		{
			name: "pion offer", sdp: pionOffer, originUser: "-",
			want: []Media{{
				Kind: "audio", Port: 9, Proto: "UDP/TLS/RTP/SAVPF", Addr: ip("0.0.0.0"), RTCPMux: true, ICE: true,
				Payloads: []uint8{111, 9, 0, 8, 101}, Direction: "sendrecv",
				Codecs: []Codec{
					{PT: 111, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"},
					{PT: 9, Name: "G722", ClockRate: 8000, Channels: 1},
					{PT: 0, Name: "PCMU", ClockRate: 8000, Channels: 1},
					{PT: 8, Name: "PCMA", ClockRate: 8000, Channels: 1},
					{PT: 101, Name: "telephone-event", ClockRate: 8000, Channels: 1},
				},
			}},
			// JSEP's placeholder is "not known yet" (latching learns it), not hold.
			rtp: []netip.AddrPort{{}}, rtcp: []netip.AddrPort{{}}, hold: []bool{false}, rejected: []bool{false},
		},
		{
			name: "FreeSWITCH answer", sdp: freeswitchAnswer, originUser: "FreeSWITCH",
			want: []Media{{
				Kind: "audio", Port: 24600, Proto: "RTP/AVP", Addr: ip("198.51.100.20"), RTCP: ap("198.51.100.20:24601"),
				Payloads: []uint8{0, 101}, Direction: "sendrecv",
				Codecs: []Codec{
					{PT: 0, Name: "PCMU", ClockRate: 8000, Channels: 1},
					{PT: 101, Name: "telephone-event", ClockRate: 8000, Channels: 1, Fmtp: "0-16"},
				},
			}},
			rtp: []netip.AddrPort{ap("198.51.100.20:24600")}, rtcp: []netip.AddrPort{ap("198.51.100.20:24601")},
			hold: []bool{false}, rejected: []bool{false},
		},
		{
			name: "audio and video", sdp: audioVideoOffer, originUser: "baresip",
			want: []Media{{
				Kind: "audio", Port: 10000, Proto: "RTP/AVP", Addr: ip("198.51.100.7"), RTCP: ap("198.51.100.7:10001"),
				Payloads: []uint8{96, 0, 101}, Direction: "sendrecv",
				Codecs: []Codec{
					{PT: 96, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: "stereo=1;sprop-stereo=1"},
					{PT: 0, Name: "PCMU", ClockRate: 8000, Channels: 1},
					{PT: 101, Name: "telephone-event", ClockRate: 8000, Channels: 1},
				},
			}, {
				Kind: "video", Port: 10002, Proto: "RTP/AVP", Addr: ip("198.51.100.7"), RTCP: ap("198.51.100.7:10003"),
				Payloads: []uint8{97}, Direction: "sendrecv",
				Codecs: []Codec{{PT: 97, Name: "H264", ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"}},
			}},
			rtp:  []netip.AddrPort{ap("198.51.100.7:10000"), ap("198.51.100.7:10002")},
			rtcp: []netip.AddrPort{ap("198.51.100.7:10001"), ap("198.51.100.7:10003")},
			hold: []bool{false, false}, rejected: []bool{false, false},
		},
		{
			name: "rejected video", sdp: rejectedVideoAnswer, originUser: "linphone",
			want: []Media{{
				Kind: "audio", Port: 7078, Proto: "RTP/AVP", Addr: ip("198.51.100.9"), RTCP: ap("198.51.100.9:7079"),
				Payloads: []uint8{8, 101}, Direction: "sendrecv",
				Codecs: []Codec{
					{PT: 8, Name: "PCMA", ClockRate: 8000, Channels: 1},
					{PT: 101, Name: "telephone-event", ClockRate: 8000, Channels: 1},
				},
			}, {
				Kind: "video", Port: 0, Proto: "RTP/AVP", Addr: ip("198.51.100.9"),
				Payloads: []uint8{96}, Direction: "sendrecv",
				Codecs: []Codec{{PT: 96, Name: "VP8", ClockRate: 90000}},
			}},
			rtp:  []netip.AddrPort{ap("198.51.100.9:7078"), ap("198.51.100.9:0")},
			rtcp: []netip.AddrPort{ap("198.51.100.9:7079"), {}},
			hold: []bool{false, false}, rejected: []bool{false, true},
		},
		{
			name: "hold with 0.0.0.0 and sendonly", sdp: holdOffer, originUser: "-",
			want: []Media{{
				Kind: "audio", Port: 30000, Proto: "RTP/AVP", Addr: ip("0.0.0.0"), RTCP: ap("0.0.0.0:30001"),
				Payloads: []uint8{0}, Direction: "sendonly",
				Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000, Channels: 1}},
			}},
			rtp: []netip.AddrPort{ap("0.0.0.0:30000")}, rtcp: []netip.AddrPort{ap("0.0.0.0:30001")},
			hold: []bool{true}, rejected: []bool{false},
		},
		{
			name: "music on hold with sendonly", sdp: sendonlyOffer, originUser: "-",
			want: []Media{{
				Kind: "audio", Port: 30000, Proto: "RTP/AVP", Addr: ip("198.51.100.30"), RTCP: ap("198.51.100.30:30001"),
				Payloads: []uint8{0}, Direction: "sendonly",
				Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000, Channels: 1}},
			}},
			rtp: []netip.AddrPort{ap("198.51.100.30:30000")}, rtcp: []netip.AddrPort{ap("198.51.100.30:30001")},
			hold: []bool{true}, rejected: []bool{false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd, media, err := ParseSDP([]byte(crlf(tc.sdp)))
			if err != nil {
				t.Fatal(err)
			}
			if sd.Origin.Username != tc.originUser {
				t.Errorf("o= username %q, want %q", sd.Origin.Username, tc.originUser)
			}
			if !reflect.DeepEqual(media, tc.want) {
				t.Fatalf("media\n got %+v\nwant %+v", media, tc.want)
			}
			for i, m := range media {
				if m.RTPAddr() != tc.rtp[i] || m.RTCP != tc.rtcp[i] {
					t.Errorf("m-line %d: RTP %s RTCP %s, want %s %s", i, m.RTPAddr(), m.RTCP, tc.rtp[i], tc.rtcp[i])
				}
				if m.OnHold() != tc.hold[i] || m.Rejected() != tc.rejected[i] {
					t.Errorf("m-line %d: hold %v rejected %v, want %v %v", i, m.OnHold(), m.Rejected(), tc.hold[i], tc.rejected[i])
				}
			}
		})
	}
}

func TestParseSDPErrors(t *testing.T) {
	if _, _, err := ParseSDP([]byte("this is not SDP")); !errors.Is(err, ErrSDP) {
		t.Errorf("garbage: got %v, want ErrSDP", err)
	}
	noConn := crlf("\nv=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n")
	if _, _, err := ParseSDP([]byte(noConn)); !errors.Is(err, ErrSDP) || !strings.Contains(err.Error(), "no c=") {
		t.Errorf("m-line without c=: got %v, want ErrSDP naming the missing c=", err)
	}
}

func TestRewriteSDP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sdp   string
		addrs []netip.AddrPort
		bump  bool
		want  string
	}{
		{
			name: "pion offer: placeholder address and mux a=rtcp rewritten, ICE and DTLS kept",
			sdp:  pionOffer, addrs: []netip.AddrPort{pbxPort(16384)}, bump: true,
			want: `
v=0
o=- 4215775240449105457 3 IN IP4 203.0.113.5
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 16384 UDP/TLS/RTP/SAVPF 111 9 0 8 101
c=IN IP4 203.0.113.5
a=rtcp:16384 IN IP4 203.0.113.5
a=ice-ufrag:ZCMQRVhWmyIabcde
a=ice-pwd:SxMFwRvDbrEbnXJmPjfHjRdPgWJtSkHq
a=fingerprint:sha-256 8C:1E:D5:66:2B:7D:95:7C:3A:3D:D1:C2:1A:86:7E:A4:92:3F:6C:48:AC:DE:22:CE:9D:2B:3F:03:2C:9A:E4:1F
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=ssrc:2845106312 cname:pion
a=candidate:1390596646 1 udp 2130706431 192.0.2.44 51842 typ host
a=end-of-candidates
`,
		},
		{
			name: "FreeSWITCH answer: a=rtcp to port+1",
			sdp:  freeswitchAnswer, addrs: []netip.AddrPort{pbxPort(16384)}, bump: true,
			want: `
v=0
o=FreeSWITCH 1700000000 1700000002 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
a=rtcp:16385 IN IP4 203.0.113.5
`,
		},
		{
			name: "audio and video: one PBX port pair per m-line, version kept",
			sdp:  audioVideoOffer, addrs: []netip.AddrPort{pbxPort(16384), pbxPort(16386)},
			want: `
v=0
o=baresip 1234 5678 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/AVP 96 0 101
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=sendrecv
m=video 16386 RTP/AVP 97
b=AS:2000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=1;profile-level-id=42e01f
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=sendrecv
`,
		},
		{
			name: "rejected m-line stays 0",
			sdp:  rejectedVideoAnswer, addrs: []netip.AddrPort{pbxPort(16384), pbxPort(16386)},
			want: `
v=0
o=linphone 2001 2002 IN IP4 203.0.113.5
s=Talk
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
m=video 0 RTP/AVP 96
a=rtpmap:96 VP8/90000
`,
		},
		{
			name: "the PBX rejects video with a zero address",
			sdp:  audioVideoOffer, addrs: []netip.AddrPort{pbxPort(16384), {}},
			want: `
v=0
o=baresip 1234 5678 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/AVP 96 0 101
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=sendrecv
m=video 0 RTP/AVP 97
b=AS:2000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=1;profile-level-id=42e01f
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=sendrecv
`,
		},
		{
			name: "hold: 0.0.0.0 and a=sendonly kept so the other leg sees the hold",
			sdp:  holdOffer, addrs: []netip.AddrPort{pbxPort(16384)}, bump: true,
			want: `
v=0
o=- 3001 3003 IN IP4 203.0.113.5
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 16384 RTP/AVP 0
a=rtcp:16385
a=sendonly
`,
		},
		{
			name: "media-level c=",
			sdp:  mediaLevelConnection, addrs: []netip.AddrPort{pbxPort(20000)},
			want: `
v=0
o=- 1 1 IN IP4 203.0.113.5
s=-
t=0 0
m=audio 20000 RTP/AVP 0
c=IN IP4 203.0.113.5
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RewriteSDP([]byte(crlf(tc.sdp)), tc.addrs, tc.bump)
			if err != nil {
				t.Fatal(err)
			}
			gotLines := strings.Split(string(got), "\r\n")
			wantLines := strings.Split(crlf(tc.want), "\r\n")
			for i := range max(len(gotLines), len(wantLines)) {
				var g, w string
				if i < len(gotLines) {
					g = gotLines[i]
				}
				if i < len(wantLines) {
					w = wantLines[i]
				}
				if g != w {
					t.Errorf("line %d: got %q, want %q", i+1, g, w)
				}
			}
			// What the PBX wrote must parse back to its own endpoints.
			_, media, err := ParseSDP(got)
			if err != nil {
				t.Fatalf("rewritten SDP does not parse: %v", err)
			}
			for i, m := range media {
				if m.Port != 0 && m.Port != int(tc.addrs[i].Port()) {
					t.Errorf("m-line %d: port %d, want %d", i, m.Port, tc.addrs[i].Port())
				}
			}
		})
	}
}

func TestRewriteSDPErrors(t *testing.T) {
	_, err := RewriteSDP([]byte(crlf(audioVideoOffer)), []netip.AddrPort{pbxPort(16384)}, false)
	if !errors.Is(err, ErrMediaCount) || !strings.Contains(err.Error(), "1 addresses for 2 m-lines") {
		t.Errorf("count mismatch: got %v", err)
	}
	_, err = RewriteSDP([]byte(crlf(freeswitchAnswer)), []netip.AddrPort{{}}, false)
	if !errors.Is(err, ErrAddress) {
		t.Errorf("no PBX address: got %v, want ErrAddress", err)
	}
	if _, err := RewriteSDP([]byte("v=0\r\nnonsense"), nil, false); !errors.Is(err, ErrSDP) {
		t.Errorf("garbage: got %v, want ErrSDP", err)
	}
}

func TestOriginKeepsOneSessionPerLeg(t *testing.T) {
	leg := NewOrigin("siprtc")
	origin := func(b []byte) (user string, id, version uint64) {
		t.Helper()
		sd, _, err := ParseSDP(b)
		if err != nil {
			t.Fatal(err)
		}

		return sd.Origin.Username, sd.Origin.SessionID, sd.Origin.SessionVersion
	}
	apply := func(sdp string, addrs ...netip.AddrPort) []byte {
		t.Helper()
		rewritten, err := RewriteSDP([]byte(crlf(sdp)), addrs, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := leg.Apply(rewritten)
		if err != nil {
			t.Fatal(err)
		}

		return out
	}

	first := apply(freeswitchAnswer, pbxPort(16384))
	user, id, v1 := origin(first)
	if user != "siprtc" || id != leg.SessionID() {
		t.Fatalf("o= %s %d, want siprtc %d", user, id, leg.SessionID())
	}
	// A session refresh with the same media: same version.
	if _, id2, v2 := origin(apply(freeswitchAnswer, pbxPort(16384))); id2 != id || v2 != v1 {
		t.Fatalf("refresh: o= %d %d, want %d %d", id2, v2, id, v1)
	}
	// Different media (another leg's SDP after a transfer): same id, version + 1.
	if _, id3, v3 := origin(apply(sendonlyOffer, pbxPort(16388))); id3 != id || v3 != v1+1 {
		t.Fatalf("change: o= %d %d, want %d %d", id3, v3, id, v1+1)
	}
}

func TestSetRemoteMedia(t *testing.T) {
	l := newLab(t, 0, "10.77.0.2")
	ep := mustAllocate(t, mustAllocator(t, l.hosts["10.77.0.2"], pbxIP, 16384, 16389))
	for _, tc := range []struct {
		sdp       string
		rtp, rtcp string
	}{
		{freeswitchAnswer, "198.51.100.20:24600", "198.51.100.20:24601"},
		{audioVideoOffer, "198.51.100.7:10000", "198.51.100.7:10001"},
		{holdOffer, "", ""},
		{pionOffer, "", ""}, // learnt from the first packet
	} {
		_, media, err := ParseSDP([]byte(crlf(tc.sdp)))
		if err != nil {
			t.Fatal(err)
		}
		ep.SetRemoteMedia(media[0])
		rtp, rtcp := ep.Remote()
		if orNone(rtp) != tc.rtp || orNone(rtcp) != tc.rtcp {
			t.Errorf("remote %s / %s, want %q / %q", rtp, rtcp, tc.rtp, tc.rtcp)
		}
	}
}

func orNone(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}

	return ap.String()
}
