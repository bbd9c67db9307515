package sipua

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func mustParse(t *testing.T, raw string) sip.Message {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDialogRequestsFollowTheRouteSet(t *testing.T) {
	invite := mustParse(t, "INVITE sip:bob@lab SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 10.77.0.2:5060;branch=z9hG4bK.1\r\n"+
		"From: <sip:alice@lab>;tag=a\r\nTo: <sip:bob@lab>\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"+
		"Contact: <sip:alice@10.77.0.2:5060>\r\nContent-Length: 0\r\n\r\n").(*sip.Request)
	ok := mustParse(t, "SIP/2.0 200 OK\r\n"+
		"Via: SIP/2.0/UDP 10.77.0.2:5060;branch=z9hG4bK.1\r\n"+
		"Record-Route: <sip:10.77.0.9:5070;lr>, <sip:10.77.0.8;lr;transport=tcp>\r\n"+
		"From: <sip:alice@lab>;tag=a\r\nTo: <sip:bob@lab>;tag=b\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"+
		"Contact: <sip:bob@10.77.0.3:5062>\r\nContent-Length: 0\r\n\r\n").(*sip.Response)

	seq := new(atomic.Uint32)
	seq.Store(10)
	d := uacDialog(invite, ok, seq, hop{})
	if d.key() != dialogKey("c1", "a", "b") {
		t.Errorf("key %s", d.key())
	}
	bye := d.request(sip.BYE, 0)
	routes := bye.GetHeaders("Route")
	if bye.Recipient.String() != "sip:bob@10.77.0.3:5062" || len(routes) != 2 ||
		routes[0].Value() != "<sip:10.77.0.8;lr;transport=tcp>" || routes[1].Value() != "<sip:10.77.0.9:5070;lr>" {
		t.Errorf("BYE %s with routes %v: want the remote target and the Record-Route reversed", bye.Recipient.String(), routes)
	}
	if bye.Destination() != "10.77.0.8:5060" || bye.Transport() != "TCP" || bye.CSeq().SeqNo != 11 {
		t.Errorf("BYE to %s over %s with CSeq %d, want the first route over its transport and 11", bye.Destination(), bye.Transport(), bye.CSeq().SeqNo)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "b" {
		t.Errorf("BYE To tag %q", tag)
	}
	if ack := d.request(sip.ACK, 10); ack.CSeq().SeqNo != 10 || ack.CSeq().MethodName != sip.ACK {
		t.Errorf("ACK CSeq %v, want the INVITE's number", ack.CSeq())
	}

	// The callee's side of the same INVITE, after it passed a proxy that recorded its route.
	invite.PrependHeader(&sip.RecordRouteHeader{Address: sip.Uri{Host: "10.77.0.9", Port: 5070}}) // strict
	uas := uasDialog(invite, "b", 500, hop{addr: "10.77.0.2:5060", transport: "udp"})
	req := uas.request(sip.BYE, 0)
	routes = req.GetHeaders("Route")
	if req.Recipient.String() != "sip:10.77.0.9:5070" || len(routes) != 1 || routes[0].Value() != "<sip:alice@10.77.0.2:5060>" {
		t.Errorf("strict routing: BYE %s, routes %v", req.Recipient.String(), routes)
	}
	if req.Destination() != "10.77.0.9:5070" || req.CSeq().SeqNo != 501 {
		t.Errorf("callee's BYE to %s, CSeq %d", req.Destination(), req.CSeq().SeqNo)
	}
	if from, _ := req.From().Params.Get("tag"); from != "b" {
		t.Errorf("callee's BYE From tag %q", from)
	}

	// A dialog set up over TCP keeps TCP when its target says nothing.
	tcp := uasDialog(invite, "c", 1, hop{addr: "10.77.0.2:40000", transport: "tcp"})
	tcp.routeSet = nil
	if r := tcp.request(sip.BYE, 0); r.Transport() != "TCP" || r.Destination() != "10.77.0.2:5060" {
		t.Errorf("BYE of a TCP dialog: %s to %s", r.Transport(), r.Destination())
	}
}

func TestDTMFBodies(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     DTMF
	}{
		{DTMFRelay, "Signal=5\r\nDuration=160\r\n", DTMF{'5', 160 * time.Millisecond}},
		{DTMFRelay, "signal= #\nduration=250", DTMF{'#', 250 * time.Millisecond}},
		{DTMFRelay, "Signal=10\r\nDuration=100\r\n", DTMF{'*', 100 * time.Millisecond}},
		{DTMFPlain, "9", DTMF{'9', 0}},
		{DTMFPlain, "d\r\n", DTMF{'D', 0}},
	} {
		got, err := parseDTMF(tc.ct, []byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("%s %q: %+v %v, want %+v", tc.ct, tc.body, got, err, tc.want)
		}
	}
	for _, bad := range []string{"Signal=x", "Duration=100", "", "55"} {
		if _, err := parseDTMF(DTMFRelay, []byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if b, err := (DTMF{'5', 160 * time.Millisecond}).body(DTMFRelay); err != nil || string(b) != "Signal=5\r\nDuration=160\r\n" {
		t.Errorf("dtmf-relay body %q %v", b, err)
	}
	if b, err := (DTMF{Digit: '#'}).body(DTMFPlain); err != nil || string(b) != "#" {
		t.Errorf("dtmf body %q %v", b, err)
	}
	if _, err := (DTMF{Digit: 'x'}).body(DTMFPlain); err == nil {
		t.Error("x rendered")
	}
}

func TestBackoffDoublesToTheCapWithJitter(t *testing.T) {
	u := &UA{cfg: Config{RetryMin: time.Second, RetryMax: 30 * time.Second}}
	for failures, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		lo, hi := base*8/10, base*12/10
		seen := map[time.Duration]bool{}
		for range 50 {
			d := u.backoff(failures)
			if d < lo || d > hi {
				t.Fatalf("backoff(%d) = %v, want %v ± 20%%", failures, d, base)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff(%d): %d distinct values in 50, want jitter", failures, len(seen))
		}
	}
	for g, want := range map[time.Duration]time.Duration{3600 * time.Second: 1800 * time.Second, 120 * time.Second: 60 * time.Second,
		8 * time.Second: 3 * time.Second, 4 * time.Second: 2 * time.Second} {
		if got := refreshDelay(g); got != want {
			t.Errorf("refreshDelay(%v) = %v, want %v", g, got, want)
		}
	}
}

func TestSessionTimerNegotiation(t *testing.T) {
	u := &UA{cfg: Config{SessionExpires: 1800 * time.Second, MinSE: 90 * time.Second}}
	req := func(headers ...string) *sip.Request {
		raw := "INVITE sip:bob@lab SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.2:5060;branch=z9hG4bK.1\r\n" +
			"From: <sip:alice@lab>;tag=a\r\nTo: <sip:bob@lab>\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"
		for _, h := range headers {
			raw += h + "\r\n"
		}
		return mustParse(t, raw+"Content-Length: 0\r\n\r\n").(*sip.Request)
	}
	for name, tc := range map[string]struct {
		req      *sip.Request
		interval time.Duration
		refresh  bool
		header   string
	}{
		"UAC supports, asks 600":    {req("Supported: timer", "Session-Expires: 600"), 600 * time.Second, false, "600;refresher=uac"},
		"UAC asks to be refreshed":  {req("Supported: timer", "Session-Expires: 600;refresher=uas"), 600 * time.Second, true, "600;refresher=uas"},
		"UAC without timers":        {req(), 1800 * time.Second, true, "1800;refresher=uas"},
		"compact form, Min-SE high": {req("k: timer", "Min-SE: 2000"), 2000 * time.Second, false, "2000;refresher=uac"},
	} {
		got, ok := u.negotiateTimer(tc.req, nil)
		res := sip.NewResponseFromRequest(tc.req, 200, "OK", nil)
		got.apply(res)
		h := res.GetHeader("Session-Expires")
		if !ok || got.interval != tc.interval || got.weRefresh != tc.refresh || h == nil || h.Value() != tc.header {
			t.Errorf("%s: %+v %v, Session-Expires %v; want %v refresh %v %q", name, got, ok, h, tc.interval, tc.refresh, tc.header)
		}
		if got.require != (tc.header[len(tc.header)-3:] == "uac") || (res.GetHeader("Require") != nil) != got.require {
			t.Errorf("%s: Require %v", name, res.GetHeader("Require"))
		}
	}
}
