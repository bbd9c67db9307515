package pbx_test

import (
	"context"
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

// TestSIPOverTCP registers two users over TCP on loopback and calls each from a UDP phone: the
// PBX must send each INVITE down the TCP connection that user registered on.
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
	users := []string{"1005", "1006"}
	invites := map[string]<-chan *sip.Request{}
	for _, u := range users {
		invites[u] = tcpUser(ctx, t, p, u)
	}
	regs := p.Registrations()
	if len(regs) != 2 || regs[0].Transport != "TCP" || regs[1].Transport != "TCP" {
		t.Fatalf("registrations %+v, want two TCP bindings", regs)
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
	for _, u := range []string{"1006", "1005"} {
		call, err := caller.Call(ctx, u)
		if err != nil {
			t.Fatalf("call to the TCP-registered user %s: %v", u, err)
		}
		select {
		case inv := <-invites[u]:
			if !sip.IsReliable(inv.Transport()) {
				t.Errorf("INVITE reached %s over %s", u, inv.Transport())
			}
			if inv.To().Address.User != u {
				t.Errorf("the INVITE for %s arrived to %s's connection", inv.To().Address.User, u)
			}
		default:
			t.Errorf("%s's connection got no INVITE", u)
		}
		if err := call.Hangup(ctx); err != nil {
			t.Errorf("hangup: %v", err)
		}
	}
}

// tcpUser registers user over TCP with a plain sipgo user agent (real loopback sockets) that
// answers every INVITE; it returns the INVITEs it receives.
func tcpUser(ctx context.Context, t *testing.T, p *pbx.Embedded, user string) <-chan *sip.Request {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	invites := make(chan *sip.Request, 4)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		invites <- req
		sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte(sdp))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", UriParams: tcpParam()}})
		_ = tx.Respond(res)
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})

	pw, _ := p.Password(user)
	registrar := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(p.TCPAddr().Port()), UriParams: tcpParam()}
	reg := sip.NewRequest(sip.REGISTER, registrar)
	aor := sip.Uri{Scheme: "sip", User: user, Host: p.Domain()}
	reg.AppendHeader(&sip.FromHeader{Address: aor, Params: tagParam()})
	reg.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	reg.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", UriParams: tcpParam()}})
	reg.SetTransport("TCP")
	res, err := cli.Do(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Fatalf("first REGISTER over TCP: %d, want 401", res.StatusCode)
	}
	res, err = cli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: user, Password: pw})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("authenticated REGISTER over TCP: %v %v", res, err)
	}
	return invites
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
