package sipua_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/sipua"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

// TestSIPOverTCPToThePBX: the gateway registers over TCP; the PBX sends the call for a pool
// account down that connection, and the gateway's own call and BYEs go over it too.
func TestSIPOverTCPToThePBX(t *testing.T) {
	eachNetwork(t, func(t *testing.T, ctx context.Context, w *world) {
		hp, hg, hph := w.host("pbx"), w.host("gateway"), w.host("phone")
		w.start()
		p := startPBX(t, ctx, hp, pbx.AnyPort)
		if !p.TCPAddr().IsValid() {
			t.Fatalf("the PBX serves no TCP on %s", w.kind)
		}
		ua := startUA(t, ctx, hg, p, []string{"1005"}, func(c *sipua.Config) { c.Transport, c.Server = sipua.TCP, p.TCPAddr() })
		ua.KeepRegistered()
		eventually(t, 5*time.Second, "registered over TCP", func() bool { return allIn(ua, sipua.Registered) })
		if regs := p.Registrations(); len(regs) != 1 || regs[0].Transport != "TCP" {
			t.Fatalf("bindings %+v, want one over TCP", regs)
		}
		phone := startPhone(t, ctx, hph, p, "1001")

		// The phone calls the pool account: the INVITE reaches the gateway over TCP.
		dialogs := make(chan *sipua.Dialog, 1)
		ua.OnIncoming(func(in *sipua.Incoming) {
			if in.Request().Transport() != "TCP" {
				t.Errorf("INVITE over %s", in.Request().Transport())
			}
			d, err := in.Answer(sdp(hg.ip, 40000, 1, "sendrecv"), sipua.DialogHandler{})
			must(t, err)
			dialogs <- d
		})
		call, err := phone.Call(ctx, "1005")
		must(t, err)
		d := <-dialogs
		must(t, call.Hangup(ctx))
		eventually(t, 5*time.Second, "BYE over TCP", func() bool { return closed(d.Done()) })

		// The gateway calls the phone through the PBX over TCP and hangs up.
		phone.OnIncoming(func(in *sipphone.Incoming) { _, _ = in.Answer() })
		d, err = ua.Invite(ctx, "1005", "1001", sdp(hg.ip, 40000, 1, "sendrecv"))
		must(t, err)
		if d.Invite().Transport() != "TCP" {
			t.Errorf("INVITE sent over %s", d.Invite().Transport())
		}
		eventually(t, 5*time.Second, "the phone's call", func() bool { return len(phone.Calls()) == 1 })
		must(t, d.Hangup(ctx))
		eventually(t, 5*time.Second, "the phone's call ends", func() bool { return len(phone.Calls()) == 0 })
	})
}

// TestSIPOverTLS: two user agents that serve TLS call each other directly over it.
func TestSIPOverTLS(t *testing.T) {
	run(t, "loopback", func(t *testing.T, ctx context.Context, w *world) {
		h := w.host("both")
		cert, roots := selfSigned(t, h.ip)
		secure := func(c *sipua.Config) {
			c.Transport = sipua.TLS
			c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
		a := &peer{h: h, ua: startUA(t, ctx, h, nil, []string{"alice"}, secure), ver: 1}
		b := &peer{h: h, ua: startUA(t, ctx, h, nil, []string{"bob"}, secure), ver: 1}
		if !b.ua.TLSAddr().IsValid() {
			t.Fatal("no TLS served")
		}
		if got := b.ua.Contact("bob").String(); got != "sip:bob@127.0.0.1:"+strconv.Itoa(int(b.ua.TLSAddr().Port()))+";transport=tls" {
			t.Errorf("contact %s", got)
		}
		transports := make(chan string, 1)
		b.ua.OnIncoming(func(in *sipua.Incoming) {
			transports <- in.Request().Transport()
			_, _ = in.Answer(sdp(h.ip, 41000, 1, "sendrecv"), b.handler())
		})
		da, err := a.ua.Invite(ctx, "alice", b.ua.Contact("bob").String(), sdp(h.ip, 40000, 1, "sendrecv"), sipua.WithHandler(a.handler()))
		must(t, err)
		if got := <-transports; got != "TLS" {
			t.Errorf("INVITE arrived over %s", got)
		}
		var db *sipua.Dialog
		eventually(t, 5*time.Second, "bob's dialog", func() bool {
			ds := b.ua.Dialogs()
			if len(ds) == 1 {
				db = ds[0]
			}
			return db != nil
		})
		<-db.Confirmed()
		// Bob's requests go to alice's TLS contact over a connection of his own.
		answer, err := db.Reinvite(ctx, sdp(h.ip, 41000, 2, "sendonly"))
		if err != nil || direction(answer) != "recvonly" {
			t.Errorf("re-INVITE over TLS: %s %v", direction(answer), err)
		}
		must(t, db.Hangup(ctx))
		eventually(t, 5*time.Second, "alice's dialog ends", func() bool { return closed(da.Done()) })

		// A server the client does not trust is refused.
		c := startUA(t, ctx, h, nil, []string{"carol"}, func(c *sipua.Config) {
			c.Transport, c.TLS = sipua.TLS, &tls.Config{MinVersion: tls.VersionTLS12} // system roots only
		})
		if _, err := c.Invite(ctx, "carol", b.ua.Contact("bob").String(), sdp(h.ip, 42000, 1, "sendrecv")); err == nil {
			t.Error("call to an untrusted TLS server went through")
		}
	})
}

// selfSigned makes a certificate for ip and the pool that trusts it.
func selfSigned(t *testing.T, ip netip.Addr) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "siprtc lab"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{ip.AsSlice()},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	leaf, err := x509.ParseCertificate(der)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
