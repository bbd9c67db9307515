package pbx_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

const confDir = "../../freeswitch/conf"

// TestCallInVirtualTime runs a 20 s call through the PBX on the emulated network inside a
// synctest bubble: it proves the PBX runs in virtual time and that Close ends every goroutine
// (synctest fails the test otherwise).
func TestCallInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nw, err := netem.New("")
		if err != nil {
			t.Fatal(err)
		}
		hp, _ := nw.AddHost("pbx", "")
		ha, _ := nw.AddHost("a", "")
		hb, _ := nw.AddHost("b", "")
		if err := nw.Start(); err != nil {
			t.Fatal(err)
		}
		p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: hp.Net, IP: hp.IP})
		if err != nil {
			t.Fatal(err)
		}
		newPhone := func(h *netem.Host, user string) *sipphone.Phone {
			pw, _ := p.Password(user)
			ph, err := sipphone.New(sipphone.Config{Net: h.Net, LocalIP: h.IP, User: user, Password: pw,
				Domain: p.Domain(), Registrar: p.SIPAddr(), Support100rel: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := ph.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := ph.Register(ctx, time.Hour); err != nil {
				t.Fatalf("register %s: %v", user, err)
			}
			return ph
		}
		callee, caller := newPhone(hb, "1000"), newPhone(ha, "1001")
		start := time.Now()
		call, err := caller.Call(ctx, "1000")
		if err != nil {
			t.Fatal(err)
		}
		setup := time.Since(start)
		time.Sleep(20 * time.Second)
		st := call.Media().Stats()
		if st.PacketsReceived < 990 || st.Lost != 0 {
			t.Errorf("caller received %d packets (lost %d) in 20 s of audio, want about 1000 and none lost", st.PacketsReceived, st.Lost)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Error(err)
		}
		t.Logf("virtual setup %v, caller received %d packets", setup, st.PacketsReceived)
		// The call's RTP ports (the caller's and the callee's leg) are free once it has ended.
		for i := 0; i < 100 && (p.ActiveCalls() > 0 || p.Stats().RTPPortsInUse > 0); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if n := p.Stats().RTPPortsInUse; n != 0 {
			t.Errorf("%d RTP port pairs still held after the call ended", n)
		}
		caller.Close()
		callee.Close()
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		nw.Close()
		synctest.Wait()
	})
}

// TestStartErrors checks that configuration mistakes are reported with where and what.
func TestStartErrors(t *testing.T) {
	_, err := pbx.LoadEmbedded(pbx.EmbeddedConfig{ConfDir: "testdata/does-not-exist"})
	if err == nil {
		t.Fatal("want an error for a missing conf directory")
	}
	_, err = pbx.LoadEmbedded(pbx.EmbeddedConfig{ConfDir: confDir, Profile: "external"})
	if err == nil || !strings.Contains(err.Error(), `"external"`) {
		t.Fatalf("want an error naming the missing profile, got %v", err)
	}
}

// loopbackPBX starts the PBX on 127.0.0.1 with a free SIP port.
func loopbackPBX(b *testing.B) (*pbx.Embedded, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, IP: netip.MustParseAddr("127.0.0.1"), SIPPort: pbx.AnyPort})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p, ctx
}

func loopbackPhone(b *testing.B, ctx context.Context, p *pbx.Embedded, user string, opts ...sipphone.Option) *sipphone.Phone {
	n, err := stdnet.NewNet()
	if err != nil {
		b.Fatal(err)
	}
	pw, _ := p.Password(user)
	ph, err := sipphone.New(sipphone.Config{Net: n, LocalIP: netip.MustParseAddr("127.0.0.1"), User: user, Password: pw,
		Domain: p.Domain(), Registrar: p.SIPAddr()}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	if err := ph.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ph.Close() })
	return ph
}

// BenchmarkRegister measures digest registrations (REGISTER, 401, REGISTER, 200) per second
// through the embedded PBX on loopback, from 8 phones at once.
func BenchmarkRegister(b *testing.B) {
	p, ctx := loopbackPBX(b)
	const phones = 8
	ph := make([]*sipphone.Phone, phones)
	for i := range ph {
		ph[i] = loopbackPhone(b, ctx, p, []string{"1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007"}[i], sipphone.RegisterRefresh(false))
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range ph {
		wg.Add(1)
		go func(ph *sipphone.Phone) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := ph.Register(ctx, time.Hour); err != nil {
					failed.Add(1)
				}
			}
		}(ph[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d registrations failed", f, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reg/s")
}

// BenchmarkCallSetup measures call set-ups per second (INVITE through the dialplan to a
// registered phone, 200, ACK, then BYE) through the embedded PBX on loopback, 4 callers at once.
func BenchmarkCallSetup(b *testing.B) {
	p, ctx := loopbackPBX(b)
	callee := loopbackPhone(b, ctx, p, "1000", sipphone.ManualMedia())
	if _, err := callee.Register(ctx, time.Hour); err != nil {
		b.Fatal(err)
	}
	const callers = 4
	cs := make([]*sipphone.Phone, callers)
	for i := range cs {
		cs[i] = loopbackPhone(b, ctx, p, []string{"1001", "1002", "1003", "1004"}[i], sipphone.ManualMedia())
	}
	var next, failed atomic.Int64
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func(c *sipphone.Phone) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				call, err := c.Call(ctx, "1000")
				if err == nil {
					err = call.Hangup(ctx)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d calls failed, first: %v", f, b.N, firstErr.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "setups/s")
}

// TestUnimplementedAppIsAStartupError: a dialplan that names an application the embedded PBX
// does not run must fail at load, naming the file, the line and the application.
func TestUnimplementedAppIsAStartupError(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(confDir)); err != nil {
		t.Fatal(err)
	}
	dp := filepath.Join(dir, "dialplan", "default.xml")
	b, err := os.ReadFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	anchor := []byte(`<action application="echo"/>`)
	i := bytes.Index(b, anchor)
	if i < 0 {
		t.Fatalf("%s has no %s", dp, anchor)
	}
	b = append(b[:i:i], append([]byte(`<action application="voicemail" data="default ${domain_name} 1000"/>`), b[i+len(anchor):]...)...)
	if err := os.WriteFile(dp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	line := bytes.Count(b[:i], []byte("\n")) + 1
	_, err = pbx.LoadEmbedded(pbx.EmbeddedConfig{ConfDir: dir})
	want := "dialplan/default.xml:" + strconv.Itoa(line)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"voicemail"`) {
		t.Fatalf("got %v, want an error naming %s and \"voicemail\"", err, want)
	}
}
