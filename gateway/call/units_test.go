package call

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/rtc"
)

func TestPoolMapping(t *testing.T) {
	p := newAccountPool([]string{"1005", "1006", "1007"})
	registered := func(a string) bool { return a != "1005" }

	if a, _ := p.acquire("1006", registered); a != "1006" {
		t.Errorf("a user named like a pool account calls from it, got %s", a)
	}
	a, err := p.acquire("alice", registered)
	if err != nil || a != "1006" {
		t.Fatalf("alice: %s %v, want 1006 (1005 is not registered)", a, err)
	}
	if again, _ := p.acquire("alice", registered); again != a {
		t.Errorf("alice keeps her account: got %s, then %s", a, again)
	}
	b, _ := p.acquire("bob", registered)
	if b != "1007" {
		t.Errorf("bob: %s, want 1007 (the least recently used registered free account)", b)
	}
	c, _ := p.acquire("carol", registered)
	if c != "1005" {
		t.Errorf("carol: %s, want 1005 (unregistered accounts come last, not never)", c)
	}
	if _, err := p.acquire("dave", registered); err != ErrNoAccount {
		t.Errorf("dave: %v, want ErrNoAccount", err)
	}
	if h := p.holderOf("1007"); h != "bob" {
		t.Errorf("calls to 1007 go to %s, want bob", h)
	}
	p.release("bob")
	if h := p.holderOf("1007"); h != "1007" {
		t.Errorf("a free account's calls go to the user named like it, got %s", h)
	}
	if d, _ := p.acquire("dave", registered); d != "1007" {
		t.Errorf("dave: %s, want the account bob released", d)
	}
}

func TestIsPSTN(t *testing.T) {
	for content, want := range map[string]bool{
		`{"pstn":true}`: true, `{"pstn": false}`: false, `{"video":true}`: false, `pstn`: false, ``: false,
	} {
		if got := isPSTN(content); got != want {
			t.Errorf("isPSTN(%q) = %v, want %v", content, got, want)
		}
	}
}

const pbxOffer = "v=0\r\no=FreeSWITCH 1 2 IN IP4 10.0.0.1\r\ns=FreeSWITCH\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
	"m=audio 16384 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp:16389\r\na=sendonly\r\n" +
	"m=video 0 RTP/AVP 96\r\n"

func TestParseSIPSDP(t *testing.T) {
	ms, err := parseSIPSDP([]byte(pbxOffer))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || !ms[1].rejected() {
		t.Fatalf("m-lines %+v", ms)
	}
	a := ms[0]
	if a.rtp != netip.MustParseAddrPort("10.0.0.1:16384") || a.rtcp != netip.MustParseAddrPort("10.0.0.1:16389") {
		t.Errorf("addresses %v %v", a.rtp, a.rtcp)
	}
	if !a.onHold() || answerDirection(a.direction) != "recvonly" {
		t.Errorf("sendonly is hold, answered recvonly: %q", a.direction)
	}
	if len(a.codecs) != 3 || a.codecs[0].Name != "PCMA" || !a.codecs[2].IsTelephoneEvent() {
		t.Errorf("codecs %v", a.codecs)
	}
	if _, err := parseSIPSDP([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestRenderSIPSDP(t *testing.T) {
	s := &sipSession{ip: netip.MustParseAddr("192.0.2.5"), id: 42, cname: "x"}
	pcmu := rtc.Codec{Name: "PCMU", ClockRate: 8000, PayloadType: 0}
	te := rtc.Codec{Name: "telephone-event", ClockRate: 8000, PayloadType: 101, Fmtp: "0-16"}
	out := string(s.render([]sdpStream{
		{kind: "audio", port: 10000, codecs: []rtc.Codec{pcmu, te}, direction: "recvonly", ssrc: 7},
		{kind: "video", formats: []string{"96"}},
	}))
	for _, want := range []string{"o=siprtc 42 1 IN IP4 192.0.2.5", "c=IN IP4 192.0.2.5", "m=audio 10000 RTP/AVP 0 101",
		"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=rtcp:10001", "a=ssrc:7 cname:x", "a=recvonly", "m=video 0 RTP/AVP 96"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if again := string(s.render(nil)); !strings.Contains(again, "o=siprtc 42 2 ") {
		t.Errorf("the version must grow: %s", again)
	}
	ms, err := parseSIPSDP([]byte(out))
	if err != nil || len(ms) != 2 || len(ms[0].codecs) != 2 {
		t.Errorf("the gateway's own description does not parse back: %v %+v", err, ms)
	}
}

func TestThrottle(t *testing.T) {
	var th throttle
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {600 * time.Millisecond, false}, {2 * time.Second, true}}
	for _, s := range steps {
		if got := th.allow(t0.Add(s.at), 500*time.Millisecond); got != s.want {
			t.Errorf("at %v: allow = %v, want %v", s.at, got, s.want)
		}
	}
}
