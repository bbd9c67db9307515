package pbx_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// TestSIPOverTCP registers a user over TCP on loopback and calls it from a UDP phone: the PBX
// must send the INVITE down the TCP connection the REGISTER came on.
func TestSIPOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, IP: netip.MustParseAddr("127.0.0.1"), SIPPort: pbx.AnyPort})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.TCPAddr().IsValid() {
		t.Fatal("the PBX serves no TCP on the standard network")
	}

	// A plain sipgo user agent over TCP (real loopback sockets).
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	invites := make(chan *sip.Request, 1)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		invites <- req
		sdp := fmt.Sprint("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte(sdp))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1005", Host: "127.0.0.1", UriParams: tcpParam()}})
		_ = tx.Respond(res)
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})

	pw, _ := p.Password("1005")
	registrar := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(p.TCPAddr().Port()), UriParams: tcpParam()}
	reg := sip.NewRequest(sip.REGISTER, registrar)
	aor := sip.Uri{Scheme: "sip", User: "1005", Host: p.Domain()}
	reg.AppendHeader(&sip.FromHeader{Address: aor, Params: tagParam()})
	reg.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	reg.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1005", Host: "127.0.0.1", UriParams: tcpParam()}})
	reg.SetTransport("TCP")
	res, err := cli.Do(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("first REGISTER over TCP: %d, want 401", res.StatusCode)
	}
	res, err = cli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: "1005", Password: pw})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("authenticated REGISTER over TCP: %v %v", res, err)
	}
	regs := p.Registrations()
	if len(regs) != 1 || regs[0].Transport != "TCP" {
		t.Fatalf("registrations %+v, want one TCP binding", regs)
	}

	n, _ := stdnet.NewNet()
	callerPW, _ := p.Password("1001")
	caller, err := sipphone.New(sipphone.Config{Net: n, LocalIP: netip.MustParseAddr("127.0.0.1"), User: "1001",
		Password: callerPW, Domain: p.Domain(), Registrar: p.SIPAddr()}, sipphone.ManualMedia())
	if err != nil {
		t.Fatal(err)
	}
	if err := caller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	call, err := caller.Call(ctx, "1005")
	if err != nil {
		t.Fatalf("call to the TCP-registered user: %v", err)
	}
	inv := <-invites
	if !sip.IsReliable(inv.Transport()) {
		t.Errorf("INVITE reached the TCP user over %s", inv.Transport())
	}
	if err := call.Hangup(ctx); err != nil {
		t.Errorf("hangup: %v", err)
	}
}

func tcpParam() sip.HeaderParams {
	p := sip.NewParams()
	p.Add("transport", "tcp")
	return p
}

func tagParam() sip.HeaderParams {
	p := sip.NewParams()
	p.Add("tag", "t1")
	return p
}
