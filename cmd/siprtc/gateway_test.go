package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/lab/pbx"
)

// TestGatewayServesSignalingOverTLS runs `siprtc gateway` as the command does, against the
// embedded PBX on loopback, with [signaling] tls_cert/tls_key: the page and /healthz answer over
// HTTPS with that certificate (and the proxy account registers), plain HTTP gets no page, and
// cancelling drains and stops it.
func TestGatewayServesSignalingOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: overlay, IP: netip.MustParseAddr("127.0.0.1"),
		SIPPort: pbx.AnyPort, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pw, _ := p.Password("1000")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	conf := filepath.Join(dir, "rtx.conf")
	body := fmt.Sprintf(`[global]
sip_svr=%s
sip_local_port=%d
[rtm2sip]
on=0
[proxy]
on=1
sip_account=1000
sip_pwd=%s
[signaling]
listen=127.0.0.1:%d
tls_cert=%s
tls_key=%s
app_secret=0123456789abcdef0123
[log]
level=4
`, p.SIPAddr(), freePort(t, "udp"), pw, freePort(t, "tcp"), certFile, keyFile)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadGatewayConfig(conf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- serveGateway(runCtx, func() {}, cfg, []gateway.Option{gateway.WithLogger(slog.New(slog.DiscardHandler))}, time.Second, stderr)
	}()

	addr := waitFor(t, stderr, regexp.MustCompile(`page https://(\S+)/`))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var health gateway.Health
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz over TLS: %v", err)
		}
		err = json.NewDecoder(res.Body).Decode(&health)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if health.Healthy || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !health.Healthy || health.Proxy != "registered" {
		t.Errorf("health over TLS: %+v, want the proxy account registered", health)
	}
	res, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "/ws") {
		t.Errorf("page over TLS: %d, %d bytes", res.StatusCode, len(page))
	}
	if res, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("the page is served over plain HTTP too")
		}
	}

	stopRun()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the gateway stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not stop")
	}
	if !strings.Contains(stderr.String(), "stopping") {
		t.Errorf("no stop message:\n%s", stderr.String())
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir, and returns their paths and
// a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siprtc test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// freePort returns a port of network ("udp" or "tcp") on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor waits until re matches what w holds and returns the first group.
func waitFor(t *testing.T, w *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(w.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%v never showed in:\n%s", re, w.String())
	return ""
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
