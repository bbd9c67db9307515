package sipua_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// callLab is the PBX, the gateway's user agent with the proxy account 1000 and the pool account
// 1005 registered, and a lab phone registered as 1001.
type callLab struct {
	p     *pbx.Embedded
	gw    host
	ua    *sipua.UA
	phone *sipphone.Phone
}

func newCallLab(t *testing.T, ctx context.Context, w *world) *callLab {
	t.Helper()
	hp, hg, hph := w.host("pbx"), w.host("gateway"), w.host("phone")
	w.start()
	l := &callLab{gw: hg}
	l.p = startPBX(t, ctx, hp, pbx.AnyPort)
	l.ua = startUA(t, ctx, hg, l.p, []string{"1000", "1005"}, nil)
	l.ua.KeepRegistered()
	eventually(t, 5*time.Second, "gateway accounts registered", func() bool { return allIn(l.ua, sipua.Registered) })
	l.phone = startPhone(t, ctx, hph, l.p, "1001")
	return l
}

// provisionals records the 1xx responses of an INVITE.
type provisionals struct {
	mu    sync.Mutex
	codes []int
	early []byte
}

func (p *provisionals) options() []sipua.InviteOption {
	return []sipua.InviteOption{
		sipua.OnProvisional(func(r *sip.Response) {
			p.mu.Lock()
			p.codes = append(p.codes, r.StatusCode)
			p.mu.Unlock()
		}),
		sipua.OnEarlyMedia(func(r *sip.Response) {
			p.mu.Lock()
			p.early = r.Body()
			p.mu.Unlock()
		}),
	}
}

func (p *provisionals) has(code int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.codes {
		if c == code {
			return true
		}
	}
	return false
}

// TestOutboundCallThroughPBX: a pool account calls the phone through the PBX: ringing and early
// media arrive reliably and are PRACKed, the call is answered, DTMF and a re-INVITE are
// accepted in the dialog, and BYE ends it from either side.
func TestOutboundCallThroughPBX(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		l := newCallLab(t, ctx, w)
		answered := make(chan *sipphone.Call, 1)
		l.phone.OnIncoming(func(in *sipphone.Incoming) {
			if err := in.Ring(); err != nil {
				t.Errorf("ring: %v", err)
			}
			if err := in.Progress(); err != nil {
				t.Errorf("183: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			c, err := in.Answer()
			if err != nil {
				t.Errorf("answer: %v", err)
				return
			}
			answered <- c
		})

		var prov provisionals
		offer := sdp(l.gw.ip, 40000, 1, "sendrecv")
		d, err := l.ua.Invite(ctx, "1005", "1001", offer, append(prov.options(), sipua.WithHeader("X-Test", "outbound"))...)
		must(t, err)
		callee := <-answered
		pbxIP := l.p.SIPAddr().Addr().String()
		if !prov.has(180) || !prov.has(183) || !strings.Contains(string(prov.early), "c=IN IP4 "+pbxIP) {
			t.Errorf("provisionals %v, early media %q: want 180 and 183 with the PBX's SDP", prov.codes, prov.early)
		}
		if pr := d.PRACKs(); len(pr) < 2 || pr[0].StatusCode != 200 {
			t.Errorf("PRACK answers %v: want the PBX's reliable 180 and 183 PRACKed", pr)
		}
		if got := callee.Invite().From().Address.User; got != "1005" {
			t.Errorf("the phone sees the call from %q, want 1005", got)
		}
		if !strings.Contains(string(d.RemoteSDP()), "c=IN IP4 "+pbxIP) || d.Account() != "1005" || !d.Outgoing() {
			t.Errorf("dialog: account %s, answer %q", d.Account(), d.RemoteSDP())
		}

		must(t, d.SendDTMF(ctx, sipua.DTMF{Digit: '5', Duration: 160 * time.Millisecond}))
		answer, err := d.Reinvite(ctx, sdp(l.gw.ip, 40000, 2, "sendonly"))
		if err != nil || len(answer) == 0 {
			t.Errorf("re-INVITE to the PBX: %v, answer %q", err, answer)
		}

		must(t, d.Hangup(ctx))
		eventually(t, 5*time.Second, "BYE through the PBX", func() bool { return closed(callee.Done()) })
		if d.Reason() != sipua.EndedLocally {
			t.Errorf("reason %v", d.Reason())
		}

		// The callee hangs up this time.
		d, err = l.ua.Invite(ctx, "1005", "1001", offer)
		must(t, err)
		callee = <-answered
		must(t, callee.Hangup(ctx))
		eventually(t, 5*time.Second, "the PBX's BYE", func() bool { return closed(d.Done()) })
		if d.Reason() != sipua.EndedByPeer {
			t.Errorf("reason %v, want remote hangup", d.Reason())
		}
		eventually(t, 5*time.Second, "no calls in the PBX", func() bool { return l.p.ActiveCalls() == 0 })
	})
}

// TestOutboundCallOutcomes: busy, unavailable and a CANCEL while ringing come back as the status
// codes the gateway maps to invitation outcomes.
func TestOutboundCallOutcomes(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		l := newCallLab(t, ctx, w)
		offer := sdp(l.gw.ip, 40000, 1, "sendrecv")

		l.phone.OnIncoming(func(in *sipphone.Incoming) { _ = in.Reject(486, "Busy Here") })
		_, err := l.ua.Invite(ctx, "1005", "1001", offer)
		if sipua.StatusCode(err) != 486 {
			t.Errorf("busy callee: %v, want 486", err)
		}

		_, err = l.ua.Invite(ctx, "1005", "1002", offer)
		if sipua.StatusCode(err) != 480 {
			t.Errorf("unregistered callee: %v, want 480", err)
		}

		cancelled := make(chan struct{})
		l.phone.OnIncoming(func(in *sipphone.Incoming) {
			_ = in.Ring()
			<-in.Cancelled()
			close(cancelled)
		})
		cctx, hangUp := context.WithCancel(ctx)
		defer hangUp()
		_, err = l.ua.Invite(cctx, "1005", "1001", offer, sipua.OnProvisional(func(r *sip.Response) {
			if r.StatusCode == 180 {
				hangUp()
			}
		}))
		if sipua.StatusCode(err) != 487 || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call: %v, want 487 and context.Canceled", err)
		}
		eventually(t, 5*time.Second, "the callee sees the CANCEL", func() bool { return closed(cancelled) })
		eventually(t, 5*time.Second, "no calls in the PBX", func() bool { return l.p.ActiveCalls() == 0 })
		if n := len(l.ua.Dialogs()); n != 0 {
			t.Errorf("%d dialogs left", n)
		}
	})
}

// TestInboundCallViaProxyAccount: the phone dials 0 + a number; the PBX bridges it to the proxy
// account 1000 with X-Number. The UA rings reliably (the PBX PRACKs), sends early media, and
// answers only when told; the caller's CANCEL, a refusal and "nobody there" reach the phone as
// 487, 486 and 480.
func TestInboundCallViaProxyAccount(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		l := newCallLab(t, ctx, w)
		var mu sync.Mutex
		var decide func(*sipua.Incoming)
		l.ua.OnIncoming(func(in *sipua.Incoming) {
			mu.Lock()
			f := decide
			mu.Unlock()
			f(in)
		})
		setDecide := func(f func(*sipua.Incoming)) {
			mu.Lock()
			decide = f
			mu.Unlock()
		}

		dtmf := make(chan sipua.DTMF, 4)
		dialogs := make(chan *sipua.Dialog, 1)
		setDecide(func(in *sipua.Incoming) {
			if in.Account() != "1000" || in.Header("X-Number") != "<sip:5551234@"+l.p.Domain()+">" || !in.Reliable() {
				t.Errorf("incoming for %s, X-Number %q, reliable %v", in.Account(), in.Header("X-Number"), in.Reliable())
			}
			if err := in.Ring(); err != nil {
				t.Errorf("ring: %v", err)
			}
			answer := sdp(l.gw.ip, 40002, 1, "sendrecv")
			if err := in.Progress(answer); err != nil {
				t.Errorf("183: %v", err)
			}
			if n := len(in.PRACKs()); n != 2 {
				t.Errorf("%d PRACKs from the PBX, want 2 (180 and 183)", n)
			}
			time.Sleep(300 * time.Millisecond) // the WebRTC user takes a moment to accept
			d, err := in.Answer(answer, sipua.DialogHandler{DTMF: func(ev sipua.DTMF) { dtmf <- ev }})
			if err != nil {
				t.Errorf("answer: %v", err)
				return
			}
			dialogs <- d
		})
		var early []byte
		start := time.Now()
		call, err := l.phone.Call(ctx, "05551234", sipphone.WithEarlyMediaHandler(func(r *sip.Response) { early = r.Body() }))
		must(t, err)
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("answered after %v: before the user accepted", took)
		}
		d := <-dialogs
		if len(early) == 0 || d.Outgoing() || d.Account() != "1000" {
			t.Errorf("early media %q, dialog outgoing %v account %s", early, d.Outgoing(), d.Account())
		}
		must(t, d.Hangup(ctx))
		eventually(t, 5*time.Second, "the caller's call ends", func() bool { return closed(call.Done()) })

		// The caller cancels while it rings.
		cancelled := make(chan struct{})
		setDecide(func(in *sipua.Incoming) {
			_ = in.Ring()
			<-in.Cancelled()
			close(cancelled)
		})
		cctx, hangUp := context.WithCancel(ctx)
		_, err = l.phone.Call(cctx, "05551234", sipphone.WithProvisionalHandler(func(r *sip.Response) {
			if r.StatusCode == 180 {
				hangUp()
			}
		}))
		hangUp()
		if sipua.StatusCode(err) != 487 {
			t.Errorf("caller cancel: %v, want 487", err)
		}
		eventually(t, 5*time.Second, "the UA sees the CANCEL", func() bool { return closed(cancelled) })

		for _, code := range []int{486, 480, 603} {
			setDecide(func(in *sipua.Incoming) { must(t, in.Reject(code, "")) })
			if _, err := l.phone.Call(ctx, "05551234"); sipua.StatusCode(err) != code {
				t.Errorf("rejected with %d: the caller got %v", code, err)
			}
		}
		// No handler at all: 480, the WebRTC user is offline.
		l.ua.OnIncoming(nil)
		if _, err := l.phone.Call(ctx, "05551234"); sipua.StatusCode(err) != 480 {
			t.Errorf("no handler: the caller got %v, want 480", err)
		}
		eventually(t, 5*time.Second, "no calls in the PBX", func() bool { return l.p.ActiveCalls() == 0 })
	})
}

// TestProxyAuthenticationFromOutsideTheACL: an INVITE from an address the PBX's ACL does not
// list gets 407 and is sent again with digest credentials.
func TestProxyAuthenticationFromOutsideTheACL(t *testing.T) {
	run(t, "vnet", func(t *testing.T, ctx context.Context, w *world) {
		hp, hg, hph := w.host("pbx"), w.host("gateway", "10.99.0.10"), w.host("phone")
		w.start()
		p := startPBX(t, ctx, hp, pbx.AnyPort)
		ua := startUA(t, ctx, hg, p, []string{"1005"}, nil)
		phone := startPhone(t, ctx, hph, p, "1001")
		phone.OnIncoming(func(in *sipphone.Incoming) { _, _ = in.Answer() })
		before := p.Stats().Challenges
		d, err := ua.Invite(ctx, "1005", "1001", sdp(hg.ip, 40000, 1, "sendrecv"))
		must(t, err)
		if p.Stats().Challenges != before+1 {
			t.Errorf("challenges %d -> %d, want one 407", before, p.Stats().Challenges)
		}
		if h := d.Invite().GetHeader("Proxy-Authorization"); h == nil {
			t.Error("the INVITE that got through has no Proxy-Authorization")
		}
		must(t, d.Hangup(ctx))
	})
}
