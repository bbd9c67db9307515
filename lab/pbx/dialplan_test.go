package pbx_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// testExtensions are the extensions the dialplan tests add to a copy of the overlay's default
// context (the overlay itself stays as committed).
const testExtensions = `
    <extension name="test_log_answer_sleep">
      <condition field="destination_number" expression="^9300$">
        <action application="log" data="WARNING apps-test ${destination_number}"/>
        <action application="answer"/>
        <action application="sleep" data="10000"/>
        <action application="hangup"/>
      </condition>
    </extension>
    <extension name="test_answer">
      <condition field="destination_number" expression="^9301$">
        <action application="answer"/>
      </condition>
    </extension>
    <extension name="test_export">
      <condition field="destination_number" expression="^9302$">
        <action application="export" data="nolocal:sip_h_X-Foo=bar"/>
        <action application="export" data="sip_h_X-Both=baz"/>
        <action application="export" data="nolocal:b_only=1"/>
        <action application="export" data="a_and_b=2"/>
        <action application="log" data="INFO vars b_only=[${b_only}] a_and_b=[${a_and_b}]"/>
        <action application="bridge" data="user/1000@${domain_name}"/>
      </condition>
    </extension>
`

// testConf copies the overlay and adds testExtensions to its default context.
func testConf(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(confDir)); err != nil {
		t.Fatal(err)
	}
	dp := filepath.Join(dir, "dialplan", "default.xml")
	b, err := os.ReadFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "<!-- Test extensions."
	s := string(b)
	if !strings.Contains(s, anchor) {
		t.Fatalf("%s has no %q", dp, anchor)
	}
	s = strings.Replace(s, anchor, testExtensions+"    "+anchor, 1)
	if err := os.WriteFile(dp, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// logRecords is a slog.Handler keeping every record, for checks on what the PBX logged.
type logRecords struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogRecords() logRecords { return logRecords{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (h logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logRecords) WithGroup(string) slog.Handler      { return h }

// find returns the first record whose message contains s.
func (h logRecords) find(s string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if strings.Contains(r.Message, s) {
			return r, true
		}
	}
	return slog.Record{}, false
}

// vnetLab is a PBX and phones on the emulated network, for tests in a synctest bubble.
type vnetLab struct {
	t   *testing.T
	ctx context.Context
	nw  *netem.Network
	p   *pbx.Embedded
	log logRecords
}

func newVnetLab(ctx context.Context, t *testing.T, confDir string, hosts ...string) (*vnetLab, map[string]*netem.Host) {
	t.Helper()
	nw, err := netem.New("")
	if err != nil {
		t.Fatal(err)
	}
	hs := map[string]*netem.Host{}
	for _, name := range append([]string{"pbx"}, hosts...) {
		h, err := nw.AddHost(name, "")
		if err != nil {
			t.Fatal(err)
		}
		hs[name] = h
	}
	if err := nw.Start(); err != nil {
		t.Fatal(err)
	}
	l := &vnetLab{t: t, ctx: ctx, nw: nw, log: newLogRecords()}
	l.p, err = pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: hs["pbx"].Net, IP: hs["pbx"].IP, Logger: slog.New(l.log)})
	if err != nil {
		t.Fatal(err)
	}
	return l, hs
}

func (l *vnetLab) phone(h *netem.Host, user string, expires time.Duration, opts ...sipphone.Option) *sipphone.Phone {
	l.t.Helper()
	pw, _ := l.p.Password(user)
	ph, err := sipphone.New(sipphone.Config{Net: h.Net, LocalIP: h.IP, User: user, Password: pw, Domain: l.p.Domain(),
		Registrar: l.p.SIPAddr(), Support100rel: true}, append([]sipphone.Option{sipphone.RegisterRefresh(false)}, opts...)...)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := ph.Start(l.ctx); err != nil {
		l.t.Fatal(err)
	}
	if expires > 0 {
		if _, err := ph.Register(l.ctx, expires); err != nil {
			l.t.Fatalf("register %s: %v", user, err)
		}
	}
	return ph
}

// close stops the PBX and the network; synctest then checks that no goroutine is left.
func (l *vnetLab) close(phones ...*sipphone.Phone) {
	for _, ph := range phones {
		ph.Close()
	}
	if err := l.p.Close(); err != nil {
		l.t.Error(err)
	}
	l.nw.Close()
	synctest.Wait()
}

// TestDialplanApps runs log, answer, sleep and export from a test dialplan, in virtual time (no
// subtests: t.Run is not allowed in a synctest bubble).
func TestDialplanApps(t *testing.T) {
	conf := testConf(t)
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lab, hs := newVnetLab(ctx, t, conf, "a", "b")
		callee := lab.phone(hs["b"], "1000", time.Hour)
		caller := lab.phone(hs["a"], "1001", 0)

		{ // log, answer, sleep
			call, err := caller.Call(ctx, "9300")
			if err != nil {
				t.Fatal(err)
			}
			answered := time.Now()
			if addr := call.Media().Stats().RemoteAddr.Addr(); addr != lab.p.SIPAddr().Addr() {
				t.Errorf("answered with media at %v, want the PBX's %v", addr, lab.p.SIPAddr().Addr())
			}
			<-call.Done()
			if held := time.Since(answered); held < 10*time.Second || held > 10*time.Second+500*time.Millisecond {
				t.Errorf("the PBX hung up %v after answering, want the 10 s of sleep 10000", held)
			}
			r, ok := lab.log.find("apps-test 9300")
			if !ok {
				t.Fatal(`no log record "apps-test 9300" from the log application`)
			}
			if r.Level != slog.LevelWarn {
				t.Errorf("log WARNING logged at %v, want %v", r.Level, slog.LevelWarn)
			}
		}

		{ // answer alone
			call, err := caller.Call(ctx, "9301")
			if err != nil {
				t.Fatalf("answer: %v", err)
			}
			start := time.Now()
			<-call.Done() // the end of the dialplan hangs up: the PBX sends BYE
			if d := time.Since(start); d > time.Second {
				t.Errorf("the PBX hung up %v after the dialplan ended, want at once", d)
			}
		}

		{ // export, export nolocal:
			got := make(chan *sip.Request, 1)
			callee.OnIncoming(func(in *sipphone.Incoming) {
				got <- in.Request()
				_ = in.Reject(486, "Busy Here")
			})
			_, err := caller.Call(ctx, "9302")
			var se *sipphone.StatusError
			if !errors.As(err, &se) || se.Code != 486 {
				t.Fatalf("call: %v, want the callee's 486", err)
			}
			inv := <-got
			for name, want := range map[string]string{"X-Foo": "bar", "X-Both": "baz"} {
				if h := inv.GetHeader(name); h == nil || h.Value() != want {
					t.Errorf("B leg INVITE header %s = %v, want %q:\n%s", name, h, want, inv)
				}
			}
			if _, ok := lab.log.find("vars b_only=[] a_and_b=[2]"); !ok {
				t.Error(`want "export nolocal:" not to set the variable on the A leg and "export" to set it`)
			}
		}
		lab.close(caller, callee)
	})
}

// TestRegistrationExpires: a binding not refreshed expires, and the user is then offline: a call
// gets 480 (USER_NOT_REGISTERED, which mod_sofia sends as 480).
func TestRegistrationExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lab, hs := newVnetLab(ctx, t, confDir, "a", "b")
		callee := lab.phone(hs["b"], "1000", 5*time.Second)
		caller := lab.phone(hs["a"], "1001", 0)
		if regs := lab.p.Registrations(); len(regs) != 1 {
			t.Fatalf("%d bindings, want 1", len(regs))
		}
		time.Sleep(4 * time.Second)
		if regs := lab.p.Registrations(); len(regs) != 1 {
			t.Errorf("%d bindings 4 s into a 5 s registration, want 1", len(regs))
		}
		time.Sleep(2 * time.Second)
		if regs := lab.p.Registrations(); len(regs) != 0 {
			t.Errorf("bindings %+v 6 s after a 5 s registration, want none", regs)
		}
		_, err := caller.Call(ctx, "1000")
		var se *sipphone.StatusError
		if !errors.As(err, &se) || se.Code != 480 {
			t.Errorf("call to the expired user: %v, want 480", err)
		}
		if _, ok := lab.log.find("bridge failed"); !ok {
			t.Error("no bridge failure logged")
		}
		lab.close(caller, callee)
	})
}

// TestLoopedCallIsUnlooped puts the PBX at an address outside the overlay's domains ACL, so that
// a request from itself is not let in by the ACL: as sofia, the PBX then marks it
// sip_looped_call, and the overlay's unloop extension ends it with EXCHANGE_ROUTING_ERROR, which
// goes out as 483 and comes back to the caller as 483, after one loop.
func TestLoopedCallIsUnlooped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nw, err := netem.New("10.0.0.0/8")
		if err != nil {
			t.Fatal(err)
		}
		hp, _ := nw.AddHost("pbx", "10.99.0.1")
		ha, _ := nw.AddHost("a", "10.77.0.10")
		if err := nw.Start(); err != nil {
			t.Fatal(err)
		}
		lab := &vnetLab{t: t, ctx: ctx, nw: nw, log: newLogRecords()}
		lab.p, err = pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: hp.Net, IP: hp.IP, Logger: slog.New(lab.log)})
		if err != nil {
			t.Fatal(err)
		}
		// 1002's only binding points at the PBX itself: calling 1002 loops.
		u := newRawUA(t, ha.Net, ha.IP)
		u.serve(ctx)
		if code := u.register(ctx, lab.p, "1002", "3600", contactAt("1002", lab.p.SIPAddr())); code != 200 {
			t.Fatalf("REGISTER: %d", code)
		}
		caller := lab.phone(ha, "1001", 0)
		_, err = caller.Call(ctx, "1002")
		var se *sipphone.StatusError
		if !errors.As(err, &se) || se.Code != 483 {
			t.Errorf("looped call: %v, want 483", err)
		}
		if n := lab.p.Stats().Calls; n != 2 {
			t.Errorf("%d calls, want 2 (the call and its one loop)", n)
		}
		u.Close()
		lab.close(caller)
	})
}
