package browser_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

const confDir = "../../freeswitch/conf"

var loopback = netip.MustParseAddr("127.0.0.1")

// world is the embedded PBX and the gateway on 127.0.0.1, in real time.
type world struct {
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	pbx      *pbx.Embedded
	gw       *gateway.Gateway
	httpAddr string
	secret   []byte
	served   chan struct{}
	closers  []func() error
}

func logger() *slog.Logger {
	level := slog.LevelWarn
	switch os.Getenv("BROWSER_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: level}))
}

func newWorld() (*world, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{ctx: ctx, cancel: cancel, log: logger(), secret: []byte("browser-secret-0123456789"), served: make(chan struct{})}
	std, err := stdnet.NewNet()
	if err != nil {
		return w, err
	}
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, Net: std, IP: loopback, SIPPort: pbx.AnyPort, Logger: w.log.With("who", "pbx")})
	if err != nil {
		return w, fmt.Errorf("pbx: %w", err)
	}
	w.pbx = p
	w.closers = append(w.closers, p.Close)
	password, _ := p.Password("1000")
	conf := fmt.Sprintf(`[global]
sip_svr=%s
[rtm2sip]
on=1
acc_rule=10[05-09]
[proxy]
on=1
sip_account=1000
sip_pwd=%s
[signaling]
app_secret=%s
[media]
codecs=opus,g722,pcmu,pcma,vp8,h264
video=1
`, p.SIPAddr(), password, w.secret)
	cfg, _, err := config.Parse(strings.NewReader(conf), "browser.conf")
	if err != nil {
		return w, fmt.Errorf("config: %w", err)
	}
	g, err := gateway.New(cfg,
		gateway.WithNet(std), gateway.WithLocalIP(loopback), gateway.WithLogger(w.log.With("who", "gateway")),
		gateway.WithSIP(func(c *sipua.Config) {
			c.Port = 0
			c.RetryMin, c.RetryMax = 500*time.Millisecond, 2*time.Second
			c.Stagger = time.Millisecond
		}))
	if err != nil {
		return w, fmt.Errorf("gateway: %w", err)
	}
	w.gw = g
	if err := g.Start(ctx); err != nil {
		return w, fmt.Errorf("gateway start: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return w, err
	}
	w.httpAddr = l.Addr().String()
	go func() {
		defer close(w.served)
		_ = g.Serve(l)
	}()
	if err := waitFor(ctx, 10*time.Second, func() bool { return g.Healthy().Healthy && allRegistered(g) }); err != nil {
		return w, fmt.Errorf("gateway not registered: %+v", g.Healthy())
	}
	return w, nil
}

func allRegistered(g *gateway.Gateway) bool {
	for _, r := range g.Registrations() {
		if r.State != sipua.Registered {
			return false
		}
	}
	return true
}

// phone starts and registers a SIP phone for a directory user.
func (w *world) phone(user string, opts ...sipphone.Option) (*sipphone.Phone, error) {
	pw, _ := w.pbx.Password(user)
	ph, err := sipphone.New(sipphone.Config{
		Net: mustStd(), LocalIP: loopback, User: user, Password: pw, Domain: w.pbx.Domain(),
		Registrar: w.pbx.SIPAddr(), Support100rel: true, Logger: w.log.With("who", "phone "+user),
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := ph.Start(w.ctx); err != nil {
		return nil, err
	}
	w.closers = append(w.closers, ph.Close)
	if _, err := ph.Register(w.ctx, time.Minute); err != nil {
		return nil, fmt.Errorf("register %s: %w", user, err)
	}
	return ph, nil
}

func mustStd() *stdnet.Net {
	n, err := stdnet.NewNet()
	if err != nil {
		panic(err)
	}
	return n
}

// close tears the world down, newest first.
func (w *world) close() error {
	var errs []error
	// Phones (and anything added later) go before the gateway, whose teardown would hang up calls.
	for i := len(w.closers) - 1; i >= 1; i-- {
		if err := w.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if w.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, w.gw.Close(ctx))
		cancel()
		select {
		case <-w.served:
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("HTTP server did not stop"))
		}
	}
	if len(w.closers) > 0 {
		if err := w.closers[0](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	w.cancel()
	return errors.Join(errs...)
}

// quiesce waits until the gateway and the PBX hold no call.
func (w *world) quiesce() error {
	return waitFor(w.ctx, 10*time.Second, func() bool { return w.gw.ActiveCalls() == 0 && w.pbx.ActiveCalls() == 0 })
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
