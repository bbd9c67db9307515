package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5/stdnet"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/peers/sipphone"
	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// callThrough places one answered call from alice to 1001 and returns it with the phone.
func callThrough(t *testing.T, l *lab) (*webclient.Call, *sipphone.Phone) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := l.pbx.Password("1001")
	phone, err := sipphone.New(sipphone.Config{Net: std, LocalIP: loopback, User: "1001", Password: pw, Domain: l.pbx.Domain(),
		Registrar: l.pbx.SIPAddr(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = phone.Close() })
	if _, err := phone.Register(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	cl, err := webclient.New(webclient.Config{URL: l.url, LocalIP: loopback, User: "alice",
		Token: signaling.MakeToken(l.secret, "alice", time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := cl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cl.Call(ctx, "1001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMedia(ctx, 20, 0); err != nil {
		t.Fatal(err)
	}
	return c, phone
}

// sample matches one exposition line: name{labels} value.
var sample = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? (\S+)$`)

func scrape(t *testing.T, g *gateway.Gateway) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	out := map[string]string{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not an exposition line: %q", line)
			continue
		}
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
		if !typed[family] && !typed[m[1]] {
			t.Errorf("%s has no TYPE line before it", m[1])
		}
		out[m[1]+m[2]] = m[3]
	}
	return out
}

func TestMetricsAndHealthAcrossACall(t *testing.T) {
	l := startLab(t)
	rec := httptest.NewRecorder()
	l.gw.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var h gateway.Health
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &h) != nil || !h.Healthy || h.Pool != 5 || h.Proxy != "registered" {
		t.Fatalf("/healthz %d %s", rec.Code, rec.Body)
	}

	c, _ := callThrough(t, l)
	live := scrape(t, l.gw)
	if live["siprtc_active_calls"] != "1" {
		t.Errorf("active calls %q during the call", live["siprtc_active_calls"])
	}
	if live[`siprtc_media_packets_received_total{leg="sip",kind="audio"}`] == "" {
		t.Errorf("no media counters for the live call: %v", live)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Hangup(ctx, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.gw.ActiveCalls() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m := scrape(t, l.gw)
	for k, want := range map[string]string{
		"siprtc_active_calls": "0",
		`siprtc_calls_total{direction="webrtc-to-sip",outcome="answered"}`:      "1",
		`siprtc_call_setup_seconds_count{direction="webrtc-to-sip"}`:            "1",
		`siprtc_call_setup_seconds_bucket{direction="webrtc-to-sip",le="+Inf"}`: "1",
		`siprtc_sip_registrations{state="registered"}`:                          "6",
		`siprtc_signaling_sessions`:                                             "1",
		`siprtc_media_packets_lost_total{leg="webrtc",kind="audio"}`:            "0",
		`siprtc_webrtc_repairs_total{type="nacks_sent"}`:                        "0",
		`siprtc_webrtc_repairs_total{type="red_recovered"}`:                     "0",
		`siprtc_media_packets_recovered_total{leg="webrtc",kind="audio"}`:       "0",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %s", k, m[k], want)
		}
	}
	if m[`siprtc_media_packets_received_total{leg="sip",kind="audio"}`] < live[`siprtc_media_packets_received_total{leg="sip",kind="audio"}`] {
		t.Error("a counter went down when the call ended")
	}
}

func TestShutdownHangsUpAndUnregisters(t *testing.T) {
	l := startLab(t)
	c, phone := callThrough(t, l)
	drain, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// During the drain /healthz already says draining (and unhealthy), while the call goes on.
	duringDrain := make(chan gateway.Health, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		duringDrain <- l.gw.Healthy()
	}()
	if err := l.gw.Shutdown(drain, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if h := <-duringDrain; h.Healthy || !h.Draining || h.ActiveCalls != 1 {
		t.Errorf("health during the drain: %+v, want draining, unhealthy, the call still up", h)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("shutdown took %v: want the drain period, then the hangups", d)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client's call did not end")
	}
	if !strings.HasPrefix(c.EndReason(), "hangup") && !strings.Contains(c.EndReason(), "closed") {
		t.Errorf("client end reason %q", c.EndReason())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(phone.Calls()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(phone.Calls()); n != 0 {
		t.Errorf("the phone still has %d call(s): no BYE", n)
	}
	for _, r := range l.pbx.Registrations() {
		if r.User != "1001" {
			t.Errorf("%s is still registered at the PBX", r.User)
		}
	}
	if h := l.gw.Healthy(); h.Healthy || !h.Draining {
		t.Errorf("health after shutdown: %+v", h)
	}
}

func TestLoggerRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/gw.log"
	log, closer, err := gateway.NewLogger(configLog(file, 600), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		log.Info("a line long enough to fill the file quickly", "n", 1234567890)
	}
	_ = closer.Close()
	if st := fileSize(t, file); st > 600 {
		t.Errorf("log file is %d bytes, over max_file_size", st)
	}
	if fileSize(t, file+".1") == 0 {
		t.Error("no rotated file")
	}
}

// TestSIPLegCNAME: the SIP leg announces its sources with a per-call random CNAME (RFC 7022) in
// the SDP, the same its RTCP carries.
func TestSIPLegCNAME(t *testing.T) {
	l := startLab(t)
	_, phone := callThrough(t, l)
	calls := phone.Calls()
	if len(calls) != 1 {
		t.Fatalf("the phone has %d calls", len(calls))
	}
	sdp := string(calls[0].RemoteSDP())
	if !regexp.MustCompile(`(?m)^a=ssrc:\d+ cname:siprtc-[0-9a-f]{16}\r?$`).MatchString(sdp) {
		t.Errorf("the SIP leg's SDP has no a=ssrc with the call's CNAME:\n%s", sdp)
	}
}
