package pbx_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// rawUA is a bare sipgo stack for the requests and responses a phone would never send (a bad
// RAck, a retransmitted reliable 1xx, a Contact: * REGISTER). Register handlers before serve.
type rawUA struct {
	*sipnet.Stack
	t *testing.T
}

func newRawUA(t *testing.T, n transport.Net, ip netip.Addr) *rawUA {
	t.Helper()
	st, err := sipnet.Listen(sipnet.Config{Net: n, Bind: netip.AddrPortFrom(ip, 0), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &rawUA{Stack: st, t: t}
}

func (u *rawUA) serve(ctx context.Context) {
	u.t.Helper()
	if err := u.Serve(ctx); err != nil {
		u.t.Fatal(err)
	}
}

func loopbackNet(t *testing.T) transport.Net {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func startLoopbackPBX(ctx context.Context, t *testing.T, cfg pbx.EmbeddedConfig) *pbx.Embedded {
	t.Helper()
	if cfg.ConfDir == "" {
		cfg.ConfDir = confDir
	}
	cfg.IP, cfg.SIPPort = netip.MustParseAddr("127.0.0.1"), pbx.AnyPort
	p, err := pbx.StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// startPhone starts (and registers, unless register is false) a phone of user on n.
func startPhone(ctx context.Context, t *testing.T, p *pbx.Embedded, n transport.Net, ip netip.Addr, user string, register bool, opts ...sipphone.Option) *sipphone.Phone {
	t.Helper()
	pw, _ := p.Password(user)
	ph, err := sipphone.New(sipphone.Config{Net: n, LocalIP: ip, User: user, Password: pw, Domain: p.Domain(),
		Registrar: p.SIPAddr(), Support100rel: true}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ph.Close() })
	if register {
		if _, err := ph.Register(ctx, time.Hour); err != nil {
			t.Fatalf("register %s: %v", user, err)
		}
	}
	return ph
}

// register sends a REGISTER for user with the given Contact headers and Expires ("" for none),
// answering the digest challenge; it returns the final status.
func (u *rawUA) register(ctx context.Context, p *pbx.Embedded, user, expires string, contacts ...*sip.ContactHeader) int {
	u.t.Helper()
	reg := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: p.SIPAddr().Addr().String(), Port: int(p.SIPAddr().Port())})
	aor := sip.Uri{Scheme: "sip", User: user, Host: p.Domain()}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", "reg1")
	reg.AppendHeader(from)
	reg.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	for _, c := range contacts {
		reg.AppendHeader(c)
	}
	if expires != "" {
		reg.AppendHeader(sip.NewHeader("Expires", expires))
	}
	res, err := u.Client.Do(ctx, reg, sipnet.BuildRequest)
	if err == nil && res.StatusCode == 401 {
		pw, _ := p.Password(user)
		res, err = u.Client.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: user, Password: pw})
	}
	if err != nil {
		u.t.Fatalf("REGISTER %s: %v", user, err)
	}
	return res.StatusCode
}

func contactAt(user string, at netip.AddrPort) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: at.Addr().String(), Port: int(at.Port())}, Params: sip.NewParams()}
}

const rawSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40010 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// TestRegisterWildcardRules: a "*" Contact with an Expires other than 0, without Expires, or
// next to another contact is refused with 400 and changes no binding (RFC 3261 10.3 step 6);
// "*" with Expires: 0 removes them all.
func TestRegisterWildcardRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := startLoopbackPBX(ctx, t, pbx.EmbeddedConfig{})
	u := newRawUA(t, loopbackNet(t), netip.MustParseAddr("127.0.0.1"))
	u.serve(ctx)
	phone := contactAt("1001", netip.MustParseAddrPort("127.0.0.1:5999"))
	if code := u.register(ctx, p, "1001", "60", phone); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	star := func() *sip.ContactHeader { return &sip.ContactHeader{Address: sip.Uri{Wildcard: true}} }
	for _, tc := range []struct {
		name     string
		expires  string
		contacts []*sip.ContactHeader
	}{
		{"Expires: 60", "60", []*sip.ContactHeader{star()}},
		{"no Expires", "", []*sip.ContactHeader{star()}},
		{"another contact", "0", []*sip.ContactHeader{star(), contactAt("1001", netip.MustParseAddrPort("127.0.0.1:5998"))}},
	} {
		if code := u.register(ctx, p, "1001", tc.expires, tc.contacts...); code != 400 {
			t.Errorf("Contact: * with %s: %d, want 400", tc.name, code)
		}
		if n := len(p.Registrations()); n != 1 {
			t.Errorf("Contact: * with %s: %d bindings after the 400, want the 1 there was", tc.name, n)
		}
	}
	if code := u.register(ctx, p, "1001", "0", star()); code != 200 {
		t.Fatalf("Contact: * with Expires: 0: %d, want 200", code)
	}
	if n := len(p.Registrations()); n != 0 {
		t.Errorf("%d bindings after Contact: * with Expires: 0, want none", n)
	}
}

// TestPrackValidation calls through the PBX from a bare user agent that supports 100rel while
// the callee rings, then progresses with early media. It checks that the PBX keeps its 183 back
// until the 180 is PRACKed (RFC 3262 section 3), and answers PRACKs: 400 for a malformed RAck
// (an empty one used to panic the process), 481 for one that matches no unacknowledged
// provisional, 200 for the right one.
func TestPrackValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startLoopbackPBX(ctx, t, pbx.EmbeddedConfig{})
	lo, ip := loopbackNet(t), netip.MustParseAddr("127.0.0.1")
	callee := startPhone(ctx, t, p, lo, ip, "1000", true)
	callee.OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		_ = in.Progress()
		<-in.Cancelled()
	})
	u := newRawUA(t, lo, ip)
	u.serve(ctx)

	inv := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1000", Host: "127.0.0.1", Port: int(p.SIPAddr().Port())})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "1001", Host: p.Domain()}, Params: sip.NewParams()}
	from.Params.Add("tag", "caller1")
	inv.AppendHeader(from)
	inv.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "1000", Host: p.Domain()}, Params: sip.NewParams()})
	inv.AppendHeader(contactAt("1001", u.Addr))
	inv.AppendHeader(sip.NewHeader("Supported", "100rel"))
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody([]byte(rawSDP))
	tx, err := u.Client.TransactionRequest(ctx, inv, sipnet.BuildRequest)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()

	// next returns the next reliable provisional whose RSeq is not seen yet.
	seen := map[string]bool{}
	next := func(wait time.Duration) *sip.Response {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			select {
			case res := <-tx.Responses():
				if h := res.GetHeader("RSeq"); h != nil && !seen[h.Value()] {
					seen[h.Value()] = true
					return res
				}
				if res.StatusCode >= 200 {
					t.Fatalf("final response %d while ringing", res.StatusCode)
				}
			case <-timer.C:
				return nil
			}
		}
	}
	first := next(5 * time.Second)
	if first == nil || first.StatusCode != 180 {
		t.Fatalf("first reliable provisional: %v, want a 180", first)
	}
	if early := next(800 * time.Millisecond); early != nil {
		t.Fatalf("got reliable %d (RSeq %s) before PRACKing the 180 (RSeq %s)", early.StatusCode,
			early.GetHeader("RSeq").Value(), first.GetHeader("RSeq").Value())
	}

	rseq := first.GetHeader("RSeq").Value()
	cseq := "1"
	if c := inv.CSeq(); c != nil {
		cseq = strings.TrimSpace(strings.Fields(c.Value())[0])
	}
	prack := func(rack string) int {
		t.Helper()
		pr := sip.NewRequest(sip.PRACK, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(p.SIPAddr().Port())})
		pr.AppendHeader(sip.HeaderClone(inv.From()))
		pr.AppendHeader(sip.HeaderClone(first.To()))
		pr.AppendHeader(sip.HeaderClone(inv.CallID()))
		pr.AppendHeader(sip.NewHeader("RAck", rack))
		res, err := u.Client.Do(ctx, pr, sipnet.BuildRequest)
		if err != nil {
			t.Fatalf("PRACK %q: %v", rack, err)
		}
		return res.StatusCode
	}
	for _, tc := range []struct {
		rack string
		want int
	}{
		{"", 400},
		{"   ", 400},
		{rseq + " " + cseq, 400},
		{"x " + cseq + " INVITE", 400},
		{rseq + " y INVITE", 400},
		{"0 " + cseq + " INVITE", 400},
		{rseq + " " + cseq + " INVITE extra", 400},
		{"99 " + cseq + " INVITE", 481},
		{rseq + " 77 INVITE", 481},
		{rseq + " " + cseq + " BYE", 481},
		{rseq + " " + cseq + " INVITE", 200},
		{rseq + " " + cseq + " INVITE", 481}, // already acknowledged
	} {
		if got := prack(tc.rack); got != tc.want {
			t.Errorf("PRACK with RAck %q: %d, want %d", tc.rack, got, tc.want)
		}
	}
	second := next(5 * time.Second)
	if second == nil || second.StatusCode != 183 {
		t.Fatalf("after the PRACK: %v, want the reliable 183", second)
	}
	if got, want := second.GetHeader("RSeq").Value(), "2"; rseq == "1" && got != want {
		t.Errorf("183 RSeq %s, want %s", got, want)
	}
}

// TestBLegPracksEachReliableProvisionalOnce: the PBX, as the UAC of the B leg, PRACKs a reliable
// 180 once; its retransmission (same RSeq) gets no second PRACK (RFC 3262 section 4), the next
// RSeq gets one.
func TestBLegPracksEachReliableProvisionalOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startLoopbackPBX(ctx, t, pbx.EmbeddedConfig{})
	lo, ip := loopbackNet(t), netip.MustParseAddr("127.0.0.1")
	callee := newRawUA(t, lo, ip)
	var mu sync.Mutex
	var racks []string
	callee.Server.OnPrack(func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		racks = append(racks, req.GetHeader("RAck").Value())
		mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	callee.Server.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		reliable := func(rseq string) {
			res := sip.NewResponseFromRequest(req, 180, "Ringing", nil)
			res.To().Params.Add("tag", "callee1")
			res.AppendHeader(contactAt("1000", callee.Addr))
			res.AppendHeader(sip.NewHeader("Require", "100rel"))
			res.AppendHeader(sip.NewHeader("RSeq", rseq))
			_ = tx.Respond(res)
			time.Sleep(100 * time.Millisecond)
		}
		reliable("7")
		reliable("7") // a retransmission
		reliable("8")
		reliable("8")
		res := sip.NewResponseFromRequest(req, 486, "Busy Here", nil)
		res.To().Params.Add("tag", "callee1")
		_ = tx.Respond(res)
	})
	callee.Server.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	callee.serve(ctx)
	if code := callee.register(ctx, p, "1000", "60", contactAt("1000", callee.Addr)); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	caller := startPhone(ctx, t, p, lo, ip, "1001", false, sipphone.ManualMedia())
	if _, err := caller.Call(ctx, "1000"); err == nil {
		t.Fatal("the call connected; want 486")
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(racks) != 2 || !strings.HasPrefix(racks[0], "7 ") || !strings.HasPrefix(racks[1], "8 ") {
		t.Errorf("PRACKs with RAck %q, want one for RSeq 7 and one for RSeq 8", racks)
	}
}
