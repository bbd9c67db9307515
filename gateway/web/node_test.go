package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/signaling"
)

// nodeBinary returns node's path, or skips the test saying why; with LAB_REQUIRE containing
// "node" a missing node is a failure.
func nodeBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		if strings.Contains(os.Getenv("LAB_REQUIRE"), "node") {
			t.Fatalf("node is required (LAB_REQUIRE=%q) but not found: %v", os.Getenv("LAB_REQUIRE"), err)
		}
		t.Skipf("node not found in PATH (%v): app.js is not run; install node, or set LAB_REQUIRE=node to make this a failure", err)
	}
	return path
}

func TestAppJSSyntax(t *testing.T) {
	node := nodeBinary(t)
	// Check exactly the bytes the handler serves.
	f := filepath.Join(t.TempDir(), "app.js")
	if err := os.WriteFile(f, embedded(t, "app.js"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), node, "--check", f).CombinedOutput(); err != nil {
		t.Fatalf("node --check app.js: %v\n%s", err, out)
	}
}

// nodeWithWebSocket returns the node flags that give the harness a WebSocket (node 22 has it
// built in, node 20 and 21 behind a flag), or skips.
func nodeWithWebSocket(t *testing.T, node string) []string {
	t.Helper()
	for _, flags := range [][]string{nil, {"--experimental-websocket"}} {
		args := append(append([]string(nil), flags...), "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")
		if exec.CommandContext(t.Context(), node, args...).Run() == nil {
			return flags
		}
	}
	if strings.Contains(os.Getenv("LAB_REQUIRE"), "node") {
		t.Fatal("node is required (LAB_REQUIRE) but this node has no WebSocket (node 20.10 or later needed)")
	}
	t.Skip("this node has no WebSocket (node 20.10 or later needed): the page's behaviour is not run")
	return nil
}

// backendOp is one call the page's actions caused on the gateway's call side.
type backendOp struct {
	op       string
	callID   string
	callee   string
	content  string
	response string
	sipCode  int
	desc     *signaling.SessionDescription
	cand     signaling.ICECandidate
	dtmf     signaling.DTMF
	reason   string
}

// sipSide is a signaling.Backend that records what the page did and answers like a gateway
// whose SIP side rings and answers at once.
type sipSide struct {
	srv      *signaling.Server
	user     string
	ops      chan backendOp
	refused  chan string // call ids the page refused
	trickled chan string // call ids whose end-of-candidates the page sent
	incoming *signaling.RemoteInvitation
}

const gatewaySDP = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0 110\r\na=mid:0\r\na=sendrecv\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:110 telephone-event/48000\r\n"

var gatewayCandidate = signaling.ICECandidate{Candidate: "candidate:9 1 udp 2130706431 127.0.0.1 40000 typ host"}

func (g *sipSide) record(op backendOp) { g.ops <- op }

func (g *sipSide) Invite(_ context.Context, _ *signaling.Session, li *signaling.LocalInvitation) error {
	g.record(backendOp{op: "invite", callID: li.CallID(), callee: li.Callee(), content: li.Content(), desc: li.Offer()})
	switch li.Callee() {
	case "1404":
		go func() { _ = li.Fail(signaling.PeerOffline, 404, "Not Found") }()
		return nil
	case "1486":
		go func() { _ = li.Received(180); _ = li.Refused(486, "busy") }()
		return nil
	case "1009": // rings until canceled
		go func() { _ = li.Received(180) }()
		return nil
	}
	go func() {
		_ = li.Received(180)
		_ = li.SendSDP(signaling.SessionDescription{Type: "answer", SDP: gatewaySDP})
		_ = li.SendCandidate(gatewayCandidate)
		_ = li.SendCandidate(signaling.ICECandidate{})
		_ = li.Accepted("")
	}()
	return nil
}

func (g *sipSide) Cancel(_ context.Context, _ *signaling.Session, li *signaling.LocalInvitation) error {
	g.record(backendOp{op: "cancel", callID: li.CallID()})
	return nil
}

func (g *sipSide) Ringing(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation) error {
	g.record(backendOp{op: "ringing", callID: ri.CallID()})
	return nil
}

func (g *sipSide) Accept(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation, response string, answer *signaling.SessionDescription) error {
	g.record(backendOp{op: "accept", callID: ri.CallID(), response: response, desc: answer})
	go func() {
		_ = ri.SendCandidate(gatewayCandidate)
		_ = ri.SendCandidate(signaling.ICECandidate{})
		// Media flows (and the SIP ACK comes) once ICE is done, which needs the page's candidates.
		select {
		case <-g.trickled:
		case <-time.After(10 * time.Second):
		}
		_ = ri.Confirm()
		// A second call while the page is in this one: it must answer busy.
		second, err := g.srv.DeliverInvitation(signaling.IncomingInvitation{Caller: "1002", Callee: g.user,
			Offer: &signaling.SessionDescription{Type: "offer", SDP: gatewaySDP}})
		if err == nil {
			select {
			case id := <-g.refused:
				if id != second.CallID() {
					return
				}
			case <-time.After(10 * time.Second):
				return
			}
		}
		_ = g.srv.Deliver(g.user, signaling.DTMFEvent{CallID: ri.CallID(), DTMF: signaling.DTMF{Digit: "7", Duration: 120 * time.Millisecond}})
		_ = ri.Hangup("BYE", 200)
	}()
	return nil
}

func (g *sipSide) Refuse(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation, response string, sipCode int) error {
	g.record(backendOp{op: "refuse", callID: ri.CallID(), response: response, sipCode: sipCode})
	g.refused <- ri.CallID()
	return nil
}

func (g *sipSide) Abandon(ri *signaling.RemoteInvitation) {
	g.record(backendOp{op: "abandon", callID: ri.CallID()})
}

func (g *sipSide) SDP(_ context.Context, _ *signaling.Session, callID string, d signaling.SessionDescription) error {
	g.record(backendOp{op: "sdp", callID: callID, desc: &d})
	return nil
}

func (g *sipSide) Candidate(_ context.Context, _ *signaling.Session, callID string, c signaling.ICECandidate) error {
	g.record(backendOp{op: "candidate", callID: callID, cand: c})
	if c.End() {
		g.trickled <- callID
	}
	return nil
}

func (g *sipSide) DTMF(_ context.Context, s *signaling.Session, callID string, d signaling.DTMF) error {
	g.record(backendOp{op: "dtmf", callID: callID, dtmf: d})
	// The SIP phone answers with a digit of its own.
	return s.Send(signaling.DTMFEvent{CallID: callID, DTMF: signaling.DTMF{Digit: "9", Duration: 100 * time.Millisecond}})
}

func (g *sipSide) Hangup(_ context.Context, _ *signaling.Session, callID string, reason string) error {
	g.record(backendOp{op: "hangup", callID: callID, reason: reason})
	return nil
}

func (g *sipSide) SessionClosed(*signaling.Session) {}

// runPage serves the page and a signalling server with a sipSide backend on loopback, runs
// the harness scenario in node, and returns what the backend saw.
func runPage(t *testing.T, scenario string, before func(g *sipSide)) []backendOp {
	t.Helper()
	node := nodeBinary(t)
	flags := nodeWithWebSocket(t, node)

	const user = "1005"
	secret := []byte("page-test-secret")
	g := &sipSide{user: user, ops: make(chan backendOp, 1024), refused: make(chan string, 16), trickled: make(chan string, 16)}
	srv, err := signaling.New(secret, g)
	if err != nil {
		t.Fatal(err)
	}
	g.srv = srv
	mux := http.NewServeMux()
	mux.Handle(signaling.Path, srv)
	mux.Handle("/", Handler())
	hs := httptest.NewServer(mux) // 127.0.0.1 only
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	if before != nil {
		before(g)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args := append(flags, filepath.Join("testdata", "harness.js"), "app.js", "index.html", scenario)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(),
		"HARNESS_HOST="+strings.TrimPrefix(hs.URL, "http://"),
		"HARNESS_TOKEN="+signaling.MakeToken(secret, user, time.Now().Add(time.Hour)),
		"HARNESS_USER="+user,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scenario %s: %v\n%s", scenario, err, out)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	var ops []backendOp
	for {
		select {
		case op := <-g.ops:
			ops = append(ops, op)
		default:
			return ops
		}
	}
}

func opsNamed(ops []backendOp, name string) []backendOp {
	var out []backendOp
	for _, op := range ops {
		if op.op == name {
			out = append(out, op)
		}
	}
	return out
}

// checkTrickle checks the page trickled its candidate and one end-of-candidates for callID,
// after the description that needs them.
func checkTrickle(t *testing.T, ops []backendOp, callID, after string) {
	t.Helper()
	var real, ends int
	seenDescription := false
	for _, op := range ops {
		if op.op == after && op.callID == callID {
			seenDescription = true
		}
		if op.op != "candidate" || op.callID != callID {
			continue
		}
		if !seenDescription {
			t.Errorf("candidate before the %s that carries the description", after)
		}
		if op.cand.End() {
			ends++
		} else {
			real++
			if op.cand.SDPMid == nil || *op.cand.SDPMid != "0" {
				t.Errorf("candidate without its sdpMid: %+v", op.cand)
			}
		}
	}
	if real != 1 || ends != 1 {
		t.Errorf("page trickled %d candidates and %d end-of-candidates, want 1 and 1", real, ends)
	}
}

func TestPagePlacesACall(t *testing.T) {
	ops := runPage(t, "outgoing", nil)

	invites := opsNamed(ops, "invite")
	if len(invites) != 1 {
		t.Fatalf("%d invites, want 1: %+v", len(invites), ops)
	}
	inv := invites[0]
	if inv.callee != "1001" || inv.content != "hello" {
		t.Errorf("invite callee %q content %q", inv.callee, inv.content)
	}
	if inv.desc == nil || inv.desc.Type != "offer" {
		t.Fatalf("invite without an offer: %+v", inv.desc)
	}
	sdp := strings.ToLower(inv.desc.SDP)
	for _, want := range []string{"opus/48000", "g722/8000", "pcmu/8000", "pcma/8000", "telephone-event/"} {
		if !strings.Contains(sdp, want) {
			t.Errorf("the page's offer lacks %s", want)
		}
	}
	if strings.Contains(sdp, "red/48000") {
		t.Error("the page offered RED, which the gateway declines: it must leave it out by default")
	}
	checkTrickle(t, ops, inv.callID, "invite")

	dtmf := opsNamed(ops, "dtmf")
	if len(dtmf) != 1 || dtmf[0].dtmf.Digit != "#" || dtmf[0].dtmf.Duration != 100*time.Millisecond {
		t.Errorf("dtmf messages %+v, want one # of 100 ms (the in-band 5 must not be sent twice)", dtmf)
	}
	if h := opsNamed(ops, "hangup"); len(h) != 1 || h[0].callID != inv.callID || h[0].reason == "" {
		t.Errorf("hangups %+v, want one with a reason", h)
	}
	if c := opsNamed(ops, "cancel"); len(c) != 0 {
		t.Errorf("unexpected cancel %+v", c)
	}
}

func TestPageShowsCallOutcomes(t *testing.T) {
	ops := runPage(t, "outcomes", nil)
	invites := opsNamed(ops, "invite")
	if len(invites) != 3 {
		t.Fatalf("%d invites, want 3: %+v", len(invites), ops)
	}
	cancels := opsNamed(ops, "cancel")
	if len(cancels) != 1 || cancels[0].callID != invites[2].callID {
		t.Errorf("cancels %+v, want one for the ringing call", cancels)
	}
	if h := opsNamed(ops, "hangup"); len(h) != 0 {
		t.Errorf("hangups %+v: none of these calls was answered", h)
	}
}

func TestPageAnswersACall(t *testing.T) {
	ops := runPage(t, "incoming", func(g *sipSide) {
		// The invitation waits for the user's login.
		ri, err := g.srv.DeliverInvitation(signaling.IncomingInvitation{Caller: "1001", Callee: g.user, Content: "hi there",
			Offer: &signaling.SessionDescription{Type: "offer", SDP: gatewaySDP}})
		if err != nil {
			t.Fatal(err)
		}
		g.incoming = ri
	})
	if len(ops) == 0 || ops[0].op != "ringing" {
		t.Fatalf("first backend call %+v, want ringing (the page acknowledges with received at once)", ops)
	}
	accepts := opsNamed(ops, "accept")
	if len(accepts) != 1 {
		t.Fatalf("%d accepts, want 1: %+v", len(accepts), ops)
	}
	acc := accepts[0]
	if acc.desc == nil || acc.desc.Type != "answer" || !strings.Contains(acc.desc.SDP, "m=audio") {
		t.Fatalf("accept without an answer: %+v", acc.desc)
	}
	if strings.Contains(strings.ToLower(acc.desc.SDP), "red/") {
		t.Error("the answer lists a codec the offer did not have")
	}
	checkTrickle(t, ops, acc.callID, "accept")

	refusals := opsNamed(ops, "refuse")
	if len(refusals) != 1 || refusals[0].sipCode != 486 || refusals[0].callID == acc.callID {
		t.Errorf("refusals %+v, want the second call refused with 486", refusals)
	}
	if h := opsNamed(ops, "hangup"); len(h) != 0 {
		t.Errorf("the page hung up a call the SIP side ended: %+v", h)
	}
	if a := opsNamed(ops, "abandon"); len(a) != 0 {
		t.Errorf("invitations abandoned: %+v", a)
	}
}
