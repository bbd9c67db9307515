package sipua_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// peer is one side of a direct call between two user agents: it answers offers with the
// direction that matches (hold with sendonly gets recvonly) and records what it was sent.
type peer struct {
	h  host
	ua *sipua.UA

	mu     sync.Mutex
	ver    int
	offers []string // directions of the offers received
	dtmf   []sipua.DTMF
	infos  []string
}

func newPeer(t *testing.T, ctx context.Context, h host, user string, tune func(*sipua.Config)) *peer {
	return &peer{h: h, ua: startUA(t, ctx, h, nil, []string{user}, tune), ver: 1}
}

func (p *peer) handler() sipua.DialogHandler {
	return sipua.DialogHandler{
		Offer: func(offer []byte) ([]byte, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.offers = append(p.offers, direction(offer))
			p.ver++
			answer := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[direction(offer)]
			if answer == "" {
				answer = "sendrecv"
			}
			return sdp(p.h.ip, 41000, p.ver, answer), nil
		},
		DTMF: func(ev sipua.DTMF) {
			p.mu.Lock()
			p.dtmf = append(p.dtmf, ev)
			p.mu.Unlock()
		},
		Info: func(contentType string, body []byte) {
			p.mu.Lock()
			p.infos = append(p.infos, contentType+" "+string(body))
			p.mu.Unlock()
		},
	}
}

func (p *peer) received() ([]string, []sipua.DTMF, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.offers...), append([]sipua.DTMF(nil), p.dtmf...), append([]string(nil), p.infos...)
}

// dial calls b from a directly (no PBX): b answers at once.
func dial(t *testing.T, ctx context.Context, a, b *peer, from, to string) (*sipua.Dialog, *sipua.Dialog) {
	t.Helper()
	answered := make(chan *sipua.Dialog, 1)
	b.ua.OnIncoming(func(in *sipua.Incoming) {
		d, err := in.Answer(sdp(b.h.ip, 41000, 1, "sendrecv"), b.handler())
		if err != nil {
			t.Errorf("answer: %v", err)
		}
		answered <- d
	})
	da, err := a.ua.Invite(ctx, from, b.ua.Contact(to).String(), sdp(a.h.ip, 40000, 1, "sendrecv"), sipua.WithHandler(a.handler()))
	must(t, err)
	db := <-answered
	if db == nil {
		t.FailNow()
	}
	<-db.Confirmed()
	return da, db
}

// TestHoldAndResumeBothWays: re-INVITE and UPDATE offers go both ways, each answered with the
// matching direction; the lab phone follows a hold too, and stops sending while held.
func TestHoldAndResumeBothWays(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		ha, hb, hph := w.host("alice"), w.host("bob"), w.host("phone")
		w.start()
		a, b := newPeer(t, ctx, ha, "alice", nil), newPeer(t, ctx, hb, "bob", nil)
		da, db := dial(t, ctx, a, b, "alice", "bob")

		step := func(who string, d *sipua.Dialog, offer, want string, update bool) {
			t.Helper()
			var answer []byte
			var err error
			if update {
				answer, err = d.Update(ctx, sdp(ha.ip, 40000, 9, offer))
			} else {
				answer, err = d.Reinvite(ctx, sdp(ha.ip, 40000, 9, offer))
			}
			if err != nil || direction(answer) != want {
				t.Errorf("%s offers %s: answer %s, %v; want %s", who, offer, direction(answer), err, want)
			}
			if direction(d.LocalSDP()) != offer || direction(d.RemoteSDP()) != want {
				t.Errorf("%s after offering %s: local %s remote %s", who, offer, direction(d.LocalSDP()), direction(d.RemoteSDP()))
			}
		}
		step("alice", da, "sendonly", "recvonly", false) // alice holds bob
		step("alice", da, "sendrecv", "sendrecv", false) // and resumes
		step("bob", db, "sendonly", "recvonly", false)   // bob holds alice
		step("bob", db, "sendrecv", "sendrecv", false)
		step("alice", da, "inactive", "inactive", true) // UPDATE
		if offers, _, _ := b.received(); len(offers) != 3 || offers[0] != "sendonly" || offers[2] != "inactive" {
			t.Errorf("bob was offered %v", offers)
		}
		if offers, _, _ := a.received(); len(offers) != 2 || offers[0] != "sendonly" {
			t.Errorf("alice was offered %v", offers)
		}
		must(t, db.Hangup(ctx))
		<-da.Done()

		// The lab phone as the held party.
		ph, err := sipphone.New(sipphone.Config{Net: hph.net, LocalIP: hph.ip, User: "phone", Logger: testLogger()})
		must(t, err)
		t.Cleanup(func() { _ = ph.Close() })
		must(t, ph.Start(ctx))
		d, err := a.ua.Invite(ctx, "alice", ph.Contact().String(), sdp(ha.ip, 40000, 1, "sendrecv"))
		must(t, err)
		eventually(t, 5*time.Second, "the phone's call", func() bool { return len(ph.Calls()) == 1 })
		media := ph.Calls()[0].Media()
		sent := func() uint64 { return media.Stats().PacketsSent }
		answer, err := d.Reinvite(ctx, sdp(ha.ip, 40000, 2, "sendonly"))
		if err != nil || direction(answer) != "recvonly" {
			t.Fatalf("phone on hold: %s %v, want recvonly", direction(answer), err)
		}
		time.Sleep(100 * time.Millisecond)
		held := sent()
		time.Sleep(300 * time.Millisecond)
		if sent() != held {
			t.Errorf("the phone sent %d packets while held", sent()-held)
		}
		answer, err = d.Reinvite(ctx, sdp(ha.ip, 40000, 3, "sendrecv"))
		if err != nil || direction(answer) != "sendrecv" {
			t.Fatalf("phone resumed: %s %v", direction(answer), err)
		}
		eventually(t, 2*time.Second, "the phone sends again", func() bool { return sent() > held+5 })
		must(t, d.Hangup(ctx))
	})
}

// TestInfoDTMFBothWays: DTMF with SIP INFO as application/dtmf-relay one way and
// application/dtmf the other; other INFO bodies reach the handler, or get 415 without one.
func TestInfoDTMFBothWays(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		ha, hb := w.host("alice"), w.host("bob")
		w.start()
		a := newPeer(t, ctx, ha, "alice", nil)
		b := newPeer(t, ctx, hb, "bob", func(c *sipua.Config) { c.DTMFType = sipua.DTMFPlain })
		da, db := dial(t, ctx, a, b, "alice", "bob")

		for _, digit := range "159#" {
			must(t, da.SendDTMF(ctx, sipua.DTMF{Digit: digit, Duration: 160 * time.Millisecond}))
		}
		for _, digit := range "*0" {
			must(t, db.SendDTMF(ctx, sipua.DTMF{Digit: digit}))
		}
		if _, got, _ := b.received(); len(got) != 4 || got[0] != (sipua.DTMF{Digit: '1', Duration: 160 * time.Millisecond}) || got[3].Digit != '#' {
			t.Errorf("bob got %v, want 1 5 9 # of 160 ms", got)
		}
		if _, got, _ := a.received(); len(got) != 2 || got[0] != (sipua.DTMF{Digit: '*'}) || got[1].Digit != '0' {
			t.Errorf("alice got %v, want * 0", got)
		}
		if err := da.SendDTMF(ctx, sipua.DTMF{Digit: 'x'}); err == nil {
			t.Error("digit x sent")
		}
		fpu := `<?xml version="1.0" encoding="utf-8"?><media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>`
		must(t, da.SendInfo(ctx, "application/media_control+xml", []byte(fpu)))
		if _, _, infos := b.received(); len(infos) != 1 || infos[0] != "application/media_control+xml "+fpu {
			t.Errorf("bob's INFO handler got %q", infos)
		}
		must(t, db.Hangup(ctx))

		// A dialog without an Info handler refuses other bodies.
		b.ua.OnIncoming(func(in *sipua.Incoming) { _, _ = in.Answer(sdp(hb.ip, 41000, 1, "sendrecv"), sipua.DialogHandler{}) })
		d, err := a.ua.Invite(ctx, "alice", b.ua.Contact("bob").String(), sdp(ha.ip, 40000, 1, "sendrecv"))
		must(t, err)
		if err := d.SendInfo(ctx, "application/x-unknown", []byte("?")); sipua.StatusCode(err) != 415 {
			t.Errorf("unknown INFO: %v, want 415", err)
		}
		must(t, d.Hangup(ctx))
	})
}

// TestSessionTimers runs in virtual time: the UAC refreshes a 90 s session (UPDATE) so it lasts;
// when its link goes down both sides end the dialog as expired; a 422 raises the interval to the
// callee's Min-SE.
func TestSessionTimers(t *testing.T) {
	run(t, "vnet", func(t *testing.T, ctx context.Context, w *world) {
		ha, hb, hc := w.host("alice"), w.host("bob"), w.host("carol")
		w.start()
		timers := func(se, minSE time.Duration) func(*sipua.Config) {
			return func(c *sipua.Config) { c.SessionExpires, c.MinSE = se, minSE }
		}
		a := newPeer(t, ctx, ha, "alice", timers(90*time.Second, 90*time.Second))
		b := newPeer(t, ctx, hb, "bob", timers(sipua.DefaultSessionExpires, 0))
		c := newPeer(t, ctx, hc, "carol", timers(sipua.DefaultSessionExpires, 120*time.Second))

		da, db := dial(t, ctx, a, b, "alice", "bob")
		if iv, refresh := da.SessionTimer(); iv != 90*time.Second || !refresh {
			t.Errorf("caller's timer %v refresher %v, want 90 s, refreshing", iv, refresh)
		}
		if iv, refresh := db.SessionTimer(); iv != 90*time.Second || refresh {
			t.Errorf("callee's timer %v refresher %v, want 90 s, refreshed", iv, refresh)
		}
		if h := da.Answer().GetHeader("Require"); h == nil || h.Value() != "timer" {
			t.Errorf("2xx Require %v, want timer", h)
		}
		// Without refreshes the callee would end the call 60 s in.
		time.Sleep(200 * time.Second)
		if closed(da.Done()) || closed(db.Done()) {
			t.Fatalf("the refreshed session ended: %v / %v", da.Reason(), db.Reason())
		}

		// Alice's link goes down both ways: her refresh fails and she hangs up; bob, no longer
		// refreshed, ends the session at its expiry. Neither BYE gets through.
		down := time.Now()
		outage := netem.LinkConfig{Outages: []netem.Outage{{Start: w.sinceStart(), Duration: 10 * time.Minute}}}
		must(t, ha.link.Up.Set(outage))
		must(t, ha.link.Down.Set(outage))
		<-db.Done()
		<-da.Done()
		if da.Reason() != sipua.EndedSessionExpired || db.Reason() != sipua.EndedSessionExpired {
			t.Errorf("reasons %v / %v, want session expired on both sides", da.Reason(), db.Reason())
		}
		if took := time.Since(down); took > 60*time.Second {
			t.Errorf("the callee noticed after %v, want within the 60 s its timer allows", took)
		}
		must(t, ha.link.Up.Set(netem.LinkConfig{}))
		must(t, ha.link.Down.Set(netem.LinkConfig{}))

		// Carol wants at least 120 s: 422, then the call goes through with 120 s.
		dc, _ := dial(t, ctx, a, c, "alice", "carol")
		if iv, _ := dc.SessionTimer(); iv != 120*time.Second {
			t.Errorf("after the 422: %v, want 120 s", iv)
		}
		if h := dc.Invite().GetHeader("Min-SE"); h == nil || h.Value() != "120" {
			t.Errorf("the INVITE after the 422 has Min-SE %v", h)
		}
		must(t, dc.Hangup(ctx))
	})
}
