package pbx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// These tests run the real Asterisk container (siprtc/asterisk:22, `make images`) generated
// from freeswitch/conf. Without Docker or the image they skip, saying why, unless LAB_REQUIRE
// names "asterisk" (or "docker"): then they fail.

func labLogger() *slog.Logger {
	if os.Getenv("PBX_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBackend starts a container backend for one test; its log is attached when the test
// fails.
func startBackend(t *testing.T, b pbx.Backend) pbx.ContainerPBX {
	t.Helper()
	switch b {
	case pbx.BackendAsterisk:
		return startAsterisk(t)
	case pbx.BackendFreeSWITCH:
		return startFreeSWITCH(t)
	}
	t.Fatalf("no container backend %q", b)
	return nil
}

func startFreeSWITCH(t *testing.T) *pbx.FreeSWITCH {
	t.Helper()
	pbx.RequireBackend(t, pbx.BackendFreeSWITCH)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	f, err := pbx.StartFreeSWITCH(ctx, pbx.FreeSWITCHConfig{ConfDir: confDir, Logger: labLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FreeSWITCH %s up in %v: SIP %s, event socket %s", f.ContainerName(), time.Since(start).Round(time.Millisecond), f.SIPAddr(), f.ESLAddr())
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("FreeSWITCH's output:\n%s", f.Logs())
		}
	})
	return f
}

// startAsterisk starts the container for one test; its log is attached when the test fails.
func startAsterisk(t *testing.T) *pbx.Asterisk {
	t.Helper()
	pbx.RequireBackend(t, pbx.BackendAsterisk)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	a, err := pbx.StartAsterisk(ctx, pbx.AsteriskConfig{ConfDir: confDir, Logger: labLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Asterisk %s up in %v: SIP %s, AMI %s", a.ContainerName(), time.Since(start).Round(time.Millisecond), a.SIPAddr(), a.AMIAddr())
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("Asterisk's output:\n%s", a.Logs())
		}
	})
	return a
}

func realPhone(t *testing.T, ctx context.Context, p pbx.PBX, user, password string, opts ...sipphone.Option) *sipphone.Phone {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	ph, err := sipphone.New(sipphone.Config{Net: n, LocalIP: netip.MustParseAddr("127.0.0.1"), User: user, Password: password,
		Domain: p.Domain(), Registrar: p.SIPAddr(), Support100rel: true, Logger: labLogger()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ph.Close() })
	return ph
}

func registered(t *testing.T, ctx context.Context, p pbx.PBX, user string) *sipphone.Phone {
	t.Helper()
	pw, ok := p.Password(user)
	if !ok {
		t.Fatalf("user %s is not in the directory", user)
	}
	ph := realPhone(t, ctx, p, user, pw, sipphone.RegisterRefresh(false))
	if _, err := ph.Register(ctx, time.Hour); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return ph
}

// eventually polls cond every 100 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAsteriskRegistration: directory users register with their passwords (AMI lists their
// contacts), a wrong password is refused and leaves no contact.
func TestAsteriskRegistration(t *testing.T)   { testRegistration(t, pbx.BackendAsterisk) }
func TestFreeSWITCHRegistration(t *testing.T) { testRegistration(t, pbx.BackendFreeSWITCH) }

func testRegistration(t *testing.T, b pbx.Backend) {
	a := startBackend(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	registered(t, ctx, a, "1000")
	registered(t, ctx, a, "2599") // the last user of the pool

	bad := realPhone(t, ctx, a, "1001", "not-the-password", sipphone.RegisterRefresh(false))
	_, err := bad.Register(ctx, time.Hour)
	var se *sipphone.StatusError
	if !errors.As(err, &se) || (se.Code != 401 && se.Code != 403) {
		t.Fatalf("register 1001 with a wrong password: got %v, want a 401 or 403 refusal", err)
	}
	regs, err := a.Registrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]pbx.Registration{}
	for _, r := range regs {
		users[r.User] = r
	}
	if len(regs) != 2 || users["1000"].User == "" || users["2599"].User == "" {
		t.Fatalf("registrations %+v, want exactly 1000 and 2599 (1001's wrong password must not register)", regs)
	}
	if c := users["1000"]; c.Contact.Host != "127.0.0.1" || c.Expires.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("1000's contact %+v: want a 127.0.0.1 contact expiring in about an hour", c)
	}
}

// TestAsteriskCall: 1001 calls 1000 through the PBX; media flows both ways through the PBX
// (anchored: each phone sends to the PBX, not to the other phone); the control socket (AMI, the
// event socket) shows the call and its two channels during the call and none after the BYE.
func TestAsteriskCall(t *testing.T)   { testCall(t, pbx.BackendAsterisk) }
func TestFreeSWITCHCall(t *testing.T) { testCall(t, pbx.BackendFreeSWITCH) }

func testCall(t *testing.T, b pbx.Backend) {
	a := startBackend(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callee := registered(t, ctx, a, "1000")
	caller := registered(t, ctx, a, "1001")

	setup := time.Now()
	call, err := caller.Call(ctx, "1000")
	if err != nil {
		t.Fatalf("1001 calls 1000: %v", err)
	}
	t.Logf("call set up in %v", time.Since(setup).Round(time.Millisecond))
	var answered *sipphone.Call
	if !eventually(5*time.Second, func() bool {
		cs := callee.Calls()
		if len(cs) == 1 {
			answered = cs[0]
		}
		return answered != nil
	}) {
		t.Fatal("the callee has no call")
	}
	if !eventually(10*time.Second, func() bool {
		return call.Media().Stats().PacketsReceived >= 100 && answered.Media().Stats().PacketsReceived >= 100
	}) {
		t.Fatalf("media: caller received %d packets, callee %d; want 100 each way",
			call.Media().Stats().PacketsReceived, answered.Media().Stats().PacketsReceived)
	}
	cs, ks := call.Media().Stats(), answered.Media().Stats()
	if cs.RemoteAddr == ks.LocalAddr || ks.RemoteAddr == cs.LocalAddr {
		t.Errorf("media is not anchored in Asterisk: caller sends to %v, callee sends to %v (phones at %v and %v)",
			cs.RemoteAddr, ks.RemoteAddr, cs.LocalAddr, ks.LocalAddr)
	}
	t.Logf("caller %v -> Asterisk %v; callee %v -> Asterisk %v; received %d / %d packets, lost %d / %d",
		cs.LocalAddr, cs.RemoteAddr, ks.LocalAddr, ks.RemoteAddr, cs.PacketsReceived, ks.PacketsReceived, cs.Lost, ks.Lost)

	names, err := channelNames(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 {
		t.Fatalf("channels during the call: %v, want two", names)
	}
	if n, err := a.ActiveCalls(ctx); err != nil || n != 1 {
		t.Fatalf("ActiveCalls = %d, %v; want 1", n, err)
	}
	t.Logf("channels: %v", names)

	if err := call.Hangup(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	select {
	case <-answered.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's call did not end after the caller's BYE")
	}
	var left []string
	if !eventually(5*time.Second, func() bool {
		left, err = channelNames(ctx, a)
		return err == nil && len(left) == 0
	}) {
		t.Fatalf("channels left after the BYE: %v (%v), want none", left, err)
	}
	if n, err := a.ActiveCalls(ctx); err != nil || n != 0 {
		t.Fatalf("ActiveCalls after the BYE = %d, %v; want 0", n, err)
	}
}

// channelNames lists the PBX's channels as "name(state)".
func channelNames(ctx context.Context, p pbx.ContainerPBX) ([]string, error) {
	var names []string
	switch p := p.(type) {
	case *pbx.Asterisk:
		chs, err := p.Channels(ctx)
		if err != nil {
			return nil, err
		}
		for _, ch := range chs {
			if !strings.HasPrefix(ch.Name, "PJSIP/") {
				return nil, fmt.Errorf("channel %s is not a PJSIP channel", ch.Name)
			}
			names = append(names, ch.Name+"("+ch.State+")")
		}
	case *pbx.FreeSWITCH:
		chs, err := p.Channels(ctx)
		if err != nil {
			return nil, err
		}
		for _, ch := range chs {
			names = append(names, ch.Name+"("+ch.CallState+")")
		}
	}
	return names, nil
}

// TestAsteriskProxyNumber: "0" + number reaches user 1000 (the gateway's proxy account) with
// X-Number: <sip:NUMBER@DOMAIN>, the SRProxy deployment's rule.
func TestAsteriskProxyNumber(t *testing.T)   { testProxyNumber(t, pbx.BackendAsterisk) }
func TestFreeSWITCHProxyNumber(t *testing.T) { testProxyNumber(t, pbx.BackendFreeSWITCH) }

func testProxyNumber(t *testing.T, b pbx.Backend) {
	a := startBackend(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxy := registered(t, ctx, a, "1000")
	got := make(chan string, 1)
	proxy.OnIncoming(func(in *sipphone.Incoming) {
		h := in.Request().GetHeader("X-Number")
		v := ""
		if h != nil {
			v = h.Value()
		}
		got <- v
		_, _ = in.Answer()
	})
	caller := registered(t, ctx, a, "1002")
	call, err := caller.Call(ctx, "05551234")
	if err != nil {
		t.Fatalf("1002 calls 05551234: %v", err)
	}
	defer call.Hangup(ctx)
	select {
	case v := <-got:
		want := "<sip:5551234@" + a.Domain() + ">"
		if v != want {
			t.Fatalf("X-Number = %q, want %q", v, want)
		}
	case <-ctx.Done():
		t.Fatal("1000 got no call")
	}
}

// TestAsteriskBusy: 9190 hangs up with USER_BUSY, which reaches the caller as 486.
func TestAsteriskBusy(t *testing.T)   { testBusy(t, pbx.BackendAsterisk) }
func TestFreeSWITCHBusy(t *testing.T) { testBusy(t, pbx.BackendFreeSWITCH) }

func testBusy(t *testing.T, b pbx.Backend) {
	a := startBackend(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caller := registered(t, ctx, a, "1003")
	_, err := caller.Call(ctx, "9190")
	var se *sipphone.StatusError
	if !errors.As(err, &se) || se.Code != 486 {
		t.Fatalf("call to 9190: %v, want 486 Busy Here", err)
	}
}

// TestAsteriskHangupAll: the control socket ends a call in progress; both phones see it end.
func TestAsteriskHangupAll(t *testing.T)   { testHangupAll(t, pbx.BackendAsterisk) }
func TestFreeSWITCHHangupAll(t *testing.T) { testHangupAll(t, pbx.BackendFreeSWITCH) }

func testHangupAll(t *testing.T, b pbx.Backend) {
	a := startBackend(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := registered(t, ctx, a, "1004")
	caller := registered(t, ctx, a, "1005")
	call, err := caller.Call(ctx, "1004")
	if err != nil {
		t.Fatal(err)
	}
	if !eventually(5*time.Second, func() bool { return len(callee.Calls()) == 1 }) {
		t.Fatal("the callee has no call")
	}
	answered := callee.Calls()[0]
	if err := a.HangupAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sipphone.Call{call, answered} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a call did not end after HangupAll")
		}
	}
	if !eventually(5*time.Second, func() bool { n, err := a.ActiveCalls(ctx); return err == nil && n == 0 }) {
		t.Fatal("calls left after HangupAll")
	}
}
