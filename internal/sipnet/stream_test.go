package sipnet

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5/stdnet"
)

// TestConnectCarriesSIPOverTCP opens a TCP connection through the Net with Connect and runs
// OPTIONS both ways over it: b's request reaches a's TCP listener, and a answers b's connection
// and sends its own request back down it. Without Connect, sipgo may not dial on its own.
func TestConnectCarriesSIPOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	stack := func() *Stack {
		s, err := Listen(Config{Net: n, Bind: netip.AddrPortFrom(loopback, 0), TCP: true, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := stack(), stack()
	if !a.TCPAddr.IsValid() {
		t.Fatal("no TCP on the standard network")
	}
	sources := make(chan string, 2)
	for _, s := range []*Stack{a, b} {
		s.Server.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			sources <- req.Transport() + " " + req.Source()
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
		serve(t, s)
	}
	overTCP := func(to netip.AddrPort) *sip.Request {
		req := options(to)
		req.SetTransport("TCP")
		return req
	}

	if _, err := b.Client.Do(ctx, overTCP(a.TCPAddr), BuildRequest); err == nil {
		t.Fatal("a request over TCP went out without Connect: sipgo dialled on its own")
	}
	if err := b.Connect(ctx, "tcp", a.TCPAddr); err != nil {
		t.Fatal(err)
	}
	res, err := b.Client.Do(ctx, overTCP(a.TCPAddr), BuildRequest)
	if err != nil || res.StatusCode != sip.StatusOK {
		t.Fatalf("OPTIONS over TCP: %v %v", res, err)
	}
	src := <-sources
	if src[:4] != "TCP " {
		t.Fatalf("a got the OPTIONS over %s", src)
	}
	back, err := netip.ParseAddrPort(src[4:])
	if err != nil {
		t.Fatal(err)
	}
	// a answers down b's connection: Connect finds it pooled and dials nothing.
	if err := a.Connect(ctx, "tcp", back); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Client.Do(ctx, overTCP(back), BuildRequest); err != nil || res.StatusCode != sip.StatusOK {
		t.Fatalf("OPTIONS back over b's connection: %v %v", res, err)
	}
	if got := <-sources; got != "TCP "+a.TCPAddr.String() {
		t.Errorf("b got the OPTIONS from %s, want over TCP from %s", got, a.TCPAddr)
	}
	if err := b.Connect(ctx, "tls", a.TCPAddr); !errors.Is(err, errNoTLS) {
		t.Errorf("Connect(tls) without ClientTLS: %v", err)
	}
}
