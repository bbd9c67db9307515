package sipua_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
)

// events records the registration states each account went through.
type events struct {
	mu sync.Mutex
	by map[string][]sipua.RegistrationStatus
}

func (e *events) record(s sipua.RegistrationStatus) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[string][]sipua.RegistrationStatus{}
	}
	e.by[s.User] = append(e.by[s.User], s)
}

func (e *events) states(user string) []sipua.RegState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sipua.RegState
	for _, s := range e.by[user] {
		out = append(out, s.State)
	}
	return out
}

func (e *events) at(user string, state sipua.RegState) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.by[user] {
		if s.State == state {
			return s.Since
		}
	}
	return time.Time{}
}

func allIn(ua *sipua.UA, state sipua.RegState) bool {
	for _, s := range ua.Registrations() {
		if s.State != state {
			return false
		}
	}
	return true
}

// poolUsers is the proxy account 1000 and the pool 1005..1019 (acc_rule "1005;10[06-19]").
func poolUsers() []string {
	users := []string{"1000"}
	for n := 1005; n <= 1019; n++ {
		users = append(users, strconv.Itoa(n))
	}
	return users
}

func TestRegistersProxyAccountAndPoolStaggered(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		hp, hg := w.host("pbx"), w.host("gateway")
		w.start()
		p := startPBX(t, ctx, hp, pbx.AnyPort)
		var ev events
		const stagger = 50 * time.Millisecond
		ua := startUA(t, ctx, hg, p, poolUsers(), func(c *sipua.Config) {
			c.Stagger, c.OnRegistration = stagger, ev.record
		})
		start := time.Now()
		ua.KeepRegistered()
		eventually(t, 10*time.Second, "16 accounts registered", func() bool { return allIn(ua, sipua.Registered) })

		if n := len(p.Registrations()); n != 16 {
			t.Errorf("the PBX has %d bindings, want 16", n)
		}
		for i, user := range poolUsers() {
			st := ua.Registration(user).Status()
			if st.Code != 200 || time.Until(st.Expires) < 9*time.Minute || st.Failures != 0 {
				t.Errorf("%s: %+v, want 200 for 600 s", user, st)
			}
			if got := ev.states(user); len(got) != 2 || got[0] != sipua.Registering || got[1] != sipua.Registered {
				t.Errorf("%s went through %v, want [registering registered]", user, got)
			}
			// The first REGISTERs leave stagger apart: none before its slot.
			if at := ev.at(user, sipua.Registering); at.Sub(start) < time.Duration(i)*stagger-5*time.Millisecond {
				t.Errorf("%s started registering %v after KeepRegistered, before its slot %v", user, at.Sub(start), time.Duration(i)*stagger)
			}
		}
		if w.kind == "vnet" {
			// In virtual time the slots are exact: the pool took 15 staggers, not one burst.
			if d := ev.at("1019", sipua.Registered).Sub(ev.at("1000", sipua.Registered)); d != 15*stagger {
				t.Errorf("last registration %v after the first, want %v", d, 15*stagger)
			}
		}
	})
}

// TestRegistrationRefreshLossAndRecovery runs in virtual time on the emulated network: the
// bindings are refreshed at half their expiry, a 30 s outage of the PBX's link is noticed by the
// keepalive (failed), the UA retries with backoff, and re-registers once the link is back.
func TestRegistrationRefreshLossAndRecovery(t *testing.T) {
	run(t, "vnet", func(t *testing.T, ctx context.Context, w *world) {
		hp, hg := w.host("pbx"), w.host("gateway")
		w.start()
		p := startPBX(t, ctx, hp, pbx.AnyPort)
		var ev events
		users := []string{"1000", "1005", "1006"}
		ua := startUA(t, ctx, hg, p, users, func(c *sipua.Config) {
			c.RegisterExpires, c.KeepAlive, c.RequestTimeout = time.Minute, 5*time.Second, 2*time.Second
			c.RetryMin, c.RetryMax = time.Second, 8*time.Second
			c.OnRegistration = ev.record
		})
		ua.KeepRegistered()
		time.Sleep(time.Second)
		if !allIn(ua, sipua.Registered) {
			t.Fatalf("not registered: %+v", ua.Registrations())
		}
		first := ua.Registration("1000").Status().Expires

		By := func(s string) { t.Log(s) }
		By("refreshing at half the expiry")
		// Wake half a second before the refresh: in virtual time a sleep ending at the very
		// instant of the refresh timer races with it.
		time.Sleep(28*time.Second + 500*time.Millisecond)
		if got := ua.Registration("1000").Status().Expires; !got.Equal(first) {
			t.Errorf("refreshed before 30 s: expires %v, first %v", got, first)
		}
		time.Sleep(2 * time.Second)
		if got := ua.Registration("1000").Status().Expires; got.Sub(first) != 30*time.Second {
			t.Errorf("after 31 s the binding ends %v after the first one, want 30 s (a refresh at 30 s)", got.Sub(first))
		}

		By("losing the PBX for 30 s")
		lossStart := time.Now()
		must(t, hp.link.Down.Set(netem.LinkConfig{Outages: []netem.Outage{{Start: w.sinceStart(), Duration: 30 * time.Second}}}))
		eventually(t, 10*time.Second, "all failed", func() bool { return allIn(ua, sipua.RegistrationFailed) })
		if d := time.Since(lossStart); d > 7*time.Second {
			t.Errorf("loss noticed after %v, want within a keepalive interval and timeout (7 s)", d)
		}
		time.Sleep(lossStart.Add(29 * time.Second).Sub(time.Now()))
		for _, st := range ua.Registrations() {
			// 29 s of 2 s attempts with 1, 2, 4, 8, 8 s between them: about 5; without backoff,
			// about 10.
			if st.State != sipua.RegistrationFailed || st.Failures < 3 || st.Failures > 7 || st.Code != 0 {
				t.Errorf("%s during the outage: %+v, want failed 3 to 7 times with no answer", st.User, st)
			}
		}

		By("recovering when the link is back")
		eventually(t, 15*time.Second, "all registered again", func() bool { return allIn(ua, sipua.Registered) })
		if d := time.Since(lossStart.Add(30 * time.Second)); d > 10*time.Second {
			t.Errorf("recovered %v after the outage, want within 10 s", d)
		}
		for _, user := range users {
			got := ev.states(user)
			want := []sipua.RegState{sipua.Registering, sipua.Registered, sipua.RegistrationFailed, sipua.Registered}
			if len(got) != len(want) {
				t.Errorf("%s went through %v, want %v", user, got, want)
				continue
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s went through %v, want %v", user, got, want)
					break
				}
			}
		}
		must(t, ua.UnregisterAll(ctx))
		if n := len(p.Registrations()); n != 0 {
			t.Errorf("%d bindings left after UnregisterAll", n)
		}
	})
}

// TestReregistersAfterPBXRestart stops the PBX and starts a new one on the same port (it has
// lost every binding): the UA notices with its keepalive and registers again, over UDP and over
// TCP (where the old connection is gone and the new PBX must learn the new one).
func TestReregistersAfterPBXRestart(t *testing.T) {
	for _, transport := range []string{sipua.UDP, sipua.TCP} {
		t.Run(transport, func(t *testing.T) {
			run(t, "loopback", func(t *testing.T, ctx context.Context, w *world) {
				h := w.host("pbx")
				p := startPBX(t, ctx, h, pbx.AnyPort)
				var ev events
				ua := startUA(t, ctx, w.host("gateway"), p, []string{"1000", "1005"}, func(c *sipua.Config) {
					c.Transport = transport
					c.KeepAlive, c.RequestTimeout = 200*time.Millisecond, 300*time.Millisecond
					c.RetryMin, c.RetryMax = 100*time.Millisecond, 400*time.Millisecond
					c.OnRegistration = ev.record
				})
				ua.KeepRegistered()
				eventually(t, 5*time.Second, "registered", func() bool { return allIn(ua, sipua.Registered) })

				port := int(p.SIPAddr().Port())
				must(t, p.Close())
				eventually(t, 5*time.Second, "failed", func() bool { return allIn(ua, sipua.RegistrationFailed) })
				time.Sleep(500 * time.Millisecond)
				p2 := startPBX(t, ctx, h, port)
				eventually(t, 5*time.Second, "registered again", func() bool { return allIn(ua, sipua.Registered) })
				if regs := p2.Registrations(); len(regs) != 2 || regs[0].Transport != strings.ToUpper(transport) {
					t.Errorf("the new PBX has bindings %+v, want 2 over %s", regs, transport)
				}
				for _, st := range ua.Registrations() {
					if got := ev.states(st.User); len(got) != 4 || got[2] != sipua.RegistrationFailed || got[3] != sipua.Registered {
						t.Errorf("%s went through %v", st.User, got)
					}
				}
			})
		})
	}
}
