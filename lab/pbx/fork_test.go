package pbx_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// forkRig is user 1000 registered from two phones (two contacts) and a caller, 1001, on
// loopback: `bridge user/1000@...` forks to both phones.
type forkRig struct {
	p      *pbx.Embedded
	caller *sipphone.Phone
	ph     [2]*sipphone.Phone
}

func newForkRig(ctx context.Context, t *testing.T) *forkRig {
	t.Helper()
	p := startLoopbackPBX(ctx, t, pbx.EmbeddedConfig{})
	lo, ip := loopbackNet(t), netip.MustParseAddr("127.0.0.1")
	r := &forkRig{p: p}
	for i := range r.ph {
		r.ph[i] = startPhone(ctx, t, p, lo, ip, "1000", true)
	}
	if n := len(p.Registrations()); n != 2 {
		t.Fatalf("%d registrations of 1000, want 2 (one per phone)", n)
	}
	r.caller = startPhone(ctx, t, p, lo, ip, "1001", false)
	return r
}

// wait fails the test unless ch closes within d.
func wait(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// until blocks a phone's incoming-call handler until ch closes (true), or the call is cancelled
// or the test ends (false), so that a handler never outlives its test.
func until(ctx context.Context, in *sipphone.Incoming, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-in.Cancelled():
		return false
	case <-ctx.Done():
		return false
	}
}

// cancelledIn waits for the CANCEL of an incoming call (true), or the end of the test (false).
func cancelledIn(ctx context.Context, in *sipphone.Incoming) bool {
	select {
	case <-in.Cancelled():
		return true
	case <-ctx.Done():
		return false
	}
}

func statusOf(err error) int {
	var se *sipphone.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestForkRingsEveryRegistration: with 1000 registered twice, both phones ring; the one that
// answers is bridged, with audio both ways through the PBX, and the other is CANCELled (its
// INVITE ends with 487).
func TestForkRingsEveryRegistration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newForkRig(ctx, t)
	rang := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	cancelled := make(chan struct{})
	r.ph[0].OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		close(rang[0])
		if until(ctx, in, rang[1]) { // answer only once both ring
			_, _ = in.Answer()
		}
	})
	r.ph[1].OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		close(rang[1])
		if !cancelledIn(ctx, in) {
			return // the test fails waiting for cancelled
		}
		close(cancelled)
	})
	call, err := r.caller.Call(ctx, "1000")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, cancelled, 5*time.Second, "the CANCEL of the phone that did not answer")
	calls := r.ph[0].Calls()
	if len(calls) != 1 || len(r.ph[1].Calls()) != 0 {
		t.Fatalf("calls: %d on the answering phone, %d on the other; want 1 and 0", len(calls), len(r.ph[1].Calls()))
	}
	answered := calls[0]
	pbxIP := r.p.SIPAddr().Addr()
	if a, b := call.Media().Stats().RemoteAddr.Addr(), answered.Media().Stats().RemoteAddr.Addr(); a != pbxIP || b != pbxIP {
		t.Errorf("media remotes %v (caller) and %v (callee), want the PBX's %v on both", a, b, pbxIP)
	}
	time.Sleep(time.Second)
	for name, c := range map[string]*sipphone.Call{"caller": call, "callee": answered} {
		if st := c.Media().Stats(); st.PacketsReceived < 40 {
			t.Errorf("%s received %d RTP packets in 1 s, want about 50", name, st.PacketsReceived)
		}
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, answered.Done(), 5*time.Second, "the BYE to the answering phone")
	waitIdle(t, r.p)
}

// waitIdle waits until the PBX has no call left (every fork released) and holds no RTP port.
func waitIdle(t *testing.T, p *pbx.Embedded) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.ActiveCalls() > 0 || p.Stats().RTPPortsInUse > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still active, %d RTP port pairs held", p.ActiveCalls(), p.Stats().RTPPortsInUse)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestForkBusyAndAnswer: one registration busy (486), the other answers: the call connects.
func TestForkBusyAndAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newForkRig(ctx, t)
	busy := make(chan struct{})
	r.ph[0].OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Reject(486, "Busy Here")
		close(busy)
	})
	r.ph[1].OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		if until(ctx, in, busy) {
			_, _ = in.Answer()
		}
	})
	call, err := r.caller.Call(ctx, "1000")
	if err != nil {
		t.Fatalf("want the call connected by the phone that answered: %v", err)
	}
	if n := len(r.ph[1].Calls()); n != 1 {
		t.Fatalf("%d calls on the answering phone, want 1", n)
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, r.p)
}

// TestForkAllBusy: both registrations answer 486: the caller gets 486.
func TestForkAllBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newForkRig(ctx, t)
	for _, ph := range r.ph {
		ph.OnIncoming(func(in *sipphone.Incoming) {
			_ = in.Ring()
			_ = in.Reject(486, "Busy Here")
		})
	}
	_, err := r.caller.Call(ctx, "1000")
	if got := statusOf(err); got != 486 {
		t.Fatalf("caller got %v, want 486", err)
	}
	waitIdle(t, r.p)
}

// TestFork6xxEndsAtOnce: one registration declines with 603 while the other rings: the caller
// gets 603 at once (not after the ringing phone's timeout) and the ringing phone is cancelled.
func TestFork6xxEndsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newForkRig(ctx, t)
	rang, cancelled := make(chan struct{}), make(chan struct{})
	r.ph[0].OnIncoming(func(in *sipphone.Incoming) {
		if until(ctx, in, rang) {
			_ = in.Reject(603, "Decline")
		}
	})
	r.ph[1].OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		close(rang)
		if !cancelledIn(ctx, in) {
			return // the test fails waiting for cancelled
		}
		close(cancelled)
	})
	start := time.Now()
	_, err := r.caller.Call(ctx, "1000")
	if got := statusOf(err); got != 603 {
		t.Fatalf("caller got %v, want 603", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("603 took %v, want it at once", d)
	}
	wait(t, cancelled, 5*time.Second, "the CANCEL of the ringing phone")
	waitIdle(t, r.p)
}

// TestForkLate2xxIsAckedAndHungUp: a second registration that answers after the first one won
// (its 200 crossing the PBX's CANCEL) gets its 2xx ACKed and then a BYE. The late device is a
// bare UDP socket so the crossing is certain: it answers its INVITE with 200 only when the
// CANCEL arrives.
func TestForkLate2xxIsAckedAndHungUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startLoopbackPBX(ctx, t, pbx.EmbeddedConfig{})
	lo, ip := loopbackNet(t), netip.MustParseAddr("127.0.0.1")
	conn, err := lo.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	late := &lateUAS{conn: conn, t: t, rang: make(chan struct{}), acked: make(chan struct{}), byed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); late.serve() }()
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	reg := newRawUA(t, lo, ip)
	reg.serve(ctx)
	lateAddr := netip.MustParseAddrPort(conn.LocalAddr().String())
	if code := reg.register(ctx, p, "1000", "60", contactAt("1000", lateAddr)); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	winner := startPhone(ctx, t, p, lo, ip, "1000", true)
	winner.OnIncoming(func(in *sipphone.Incoming) {
		_ = in.Ring()
		if until(ctx, in, late.rang) {
			_, _ = in.Answer()
		}
	})
	caller := startPhone(ctx, t, p, lo, ip, "1001", false)
	call, err := caller.Call(ctx, "1000")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, late.acked, 5*time.Second, "the ACK of the late 2xx")
	wait(t, late.byed, 5*time.Second, "the BYE of the late 2xx")
	if n := len(winner.Calls()); n != 1 {
		t.Fatalf("%d calls on the phone that answered first, want 1", n)
	}
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p)
}

// lateUAS is a device that rings (180) and answers (200) only when its INVITE is cancelled, as a
// phone whose answer crossed the CANCEL; it answers the CANCEL and a BYE with 200.
type lateUAS struct {
	conn              net.PacketConn
	t                 *testing.T
	invite            *sip.Request
	rang, acked, byed chan struct{}
	rangOnce, ackOnce sync.Once
	byeOnce           sync.Once
}

func (u *lateUAS) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, err := u.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		if req, ok := msg.(*sip.Request); ok {
			u.handle(req, from)
		}
	}
}

func (u *lateUAS) handle(req *sip.Request, from net.Addr) {
	switch req.Method {
	case sip.INVITE:
		u.invite = req
		u.send(u.answer(180, "Ringing", nil), from)
		u.rangOnce.Do(func() { close(u.rang) })
	case sip.CANCEL:
		u.send(sip.NewResponseFromRequest(req, 200, "OK", nil), from)
		if u.invite != nil {
			u.send(u.answer(200, "OK", []byte(rawSDP)), from)
		}
	case sip.ACK:
		u.ackOnce.Do(func() { close(u.acked) })
	case sip.BYE:
		u.send(sip.NewResponseFromRequest(req, 200, "OK", nil), from)
		u.byeOnce.Do(func() { close(u.byed) })
	}
}

func (u *lateUAS) answer(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(u.invite, code, reason, nil)
	res.To().Params.Add("tag", "late1")
	at := netip.MustParseAddrPort(u.conn.LocalAddr().String())
	res.AppendHeader(contactAt("1000", at))
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}

func (u *lateUAS) send(res *sip.Response, to net.Addr) {
	if _, err := u.conn.WriteTo([]byte(res.String()), to); err != nil {
		u.t.Logf("late UAS: send %d: %v", res.StatusCode, err)
	}
}
