package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// lab is the embedded PBX, a gateway in front of it and its HTTP side, on loopback.
type lab struct {
	pbx    *pbx.Embedded
	gw     *gateway.Gateway
	url    string
	secret []byte
}

func startLab(tb testing.TB) *lab {
	tb.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: "../freeswitch/conf", IP: loopback, SIPPort: pbx.AnyPort, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	pw, _ := p.Password("1000")
	secret := "bench-secret-0123456789"
	cfg, _, err := config.Parse(strings.NewReader(fmt.Sprintf(
		"[global]\nsip_svr=%s\n[rtm2sip]\non=1\nacc_rule=10[05-09]\n[proxy]\non=1\nsip_account=1000\nsip_pwd=%s\n[signaling]\napp_secret=%s\n[media]\ncodecs=pcmu,pcma\nvideo=0\n",
		p.SIPAddr(), pw, secret)), "bench.conf")
	if err != nil {
		tb.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.WithLocalIP(loopback), gateway.WithLogger(quiet), gateway.WithCDR(io.Discard),
		// One client places every call of the benchmark: lift the per-connection message rate.
		gateway.WithSignalingOptions(signaling.WithRateLimit(0, 0)),
		gateway.WithSIP(func(c *sipua.Config) { c.Port = 0 }))
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	tb.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = g.Close(cctx)
	})
	deadline := time.Now().Add(10 * time.Second)
	for !g.Healthy().Healthy {
		if time.Now().After(deadline) {
			tb.Fatalf("gateway not registered: %+v", g.Healthy())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &lab{pbx: p, gw: g, url: "ws://" + l.Addr().String() + signaling.Path, secret: []byte(secret)}
}

// BenchmarkCallSetup measures call set-ups through the gateway and the embedded PBX on
// loopback: a WebRTC client invites 1001, the SIP phone answers at once, the invitation is
// ACCEPTED_BY_REMOTE, the client hangs up and the call is torn down on both sides before the
// next one. setups/s is sequential throughput; ms/setup the invite-to-ACCEPTED time.
func BenchmarkCallSetup(b *testing.B) {
	l := startLab(b)
	ctx := context.Background()
	pw, _ := l.pbx.Password("1001")
	std, err := stdnet.NewNet()
	if err != nil {
		b.Fatal(err)
	}
	phone, err := sipphone.New(sipphone.Config{
		Net: std, LocalIP: loopback, User: "1001", Password: pw, Domain: l.pbx.Domain(), Registrar: l.pbx.SIPAddr(),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := phone.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = phone.Close() })
	if _, err := phone.Register(ctx, time.Hour); err != nil {
		b.Fatal(err)
	}
	cl, err := webclient.New(webclient.Config{
		URL: l.url, LocalIP: loopback, User: "alice",
		Token: signaling.MakeToken(l.secret, "alice", time.Now().Add(time.Hour)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Close() })
	if err := cl.Connect(ctx); err != nil {
		b.Fatal(err)
	}

	var setup time.Duration
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		c, err := cl.Call(cctx, "1001")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitState(cctx, string(signaling.LocalAcceptedByRemote)); err != nil {
			b.Fatal(err)
		}
		setup += time.Since(t0)
		if err := c.Hangup(cctx, ""); err != nil {
			b.Fatal(err)
		}
		<-c.Done()
		for l.gw.ActiveCalls() > 0 || l.pbx.ActiveCalls() > 0 {
			if cctx.Err() != nil {
				b.Fatal("call not torn down")
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "setups/s")
	b.ReportMetric(float64(setup.Milliseconds())/float64(b.N), "ms/setup")
}
