package webclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/netem"
)

var testSecret = []byte("webclient-test-secret-0123456789")

// Tones: the client sends sideTone's complement, so each end can tell what it hears.
const (
	clientTone = 1000.0
	sideTone   = 440.0
)

func testLogger() *slog.Logger {
	if os.Getenv("WEBCLIENT_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// ---- the SIP side ----

// sideOp is one call the signalling server made into the backend.
type sideOp struct {
	op       string
	callID   string
	user     string
	response string
	sipCode  int
	desc     *signaling.SessionDescription
	dtmf     signaling.DTMF
	reason   string
	state    string
	code     signaling.FailureCode
}

// sipSide plays everything behind the signalling server for these tests: a signaling.Backend
// whose calls end at a second pion peer, built with gateway/rtc as the gateway builds its own,
// carrying the client's media code with a 440 Hz tone (the SIP phone's audio, as the gateway
// would bridge it). Callees script the SIP outcome: "busy" rings then refuses with 486,
// "noanswer" only rings, anything else rings then answers.
type sipSide struct {
	t           testing.TB
	srv         *signaling.Server
	rtcCfg      rtc.Config
	media       mediaConfig
	ringAfter   time.Duration
	answerAfter time.Duration
	done        chan struct{}
	wg          sync.WaitGroup
	deliverMu   sync.Mutex // held while an inbound call is delivered and registered

	mu      sync.Mutex
	calls   map[string]*sideCall
	ops     []sideOp
	changed chan struct{}
}

// sideCall is one call at the SIP side.
type sideCall struct {
	side    *sipSide
	id      string
	user    string
	li      *signaling.LocalInvitation
	ri      *signaling.RemoteInvitation
	pc      *rtc.Peer
	tap     *tap
	m       *media
	endOnce sync.Once
	ended   chan struct{}

	mu        sync.Mutex
	cands     []signaling.ICECandidate // gathered before the invitation had an id
	connected bool
}

func newSIPSide(t testing.TB, n transport.Net, ip netip.Addr) *sipSide {
	rc := rtc.Config{
		Net: n, Codecs: []string{"pcmu", "pcma", "opus", "vp8"}, Video: true,
		IPFilter: func(a netip.Addr) bool { return a == ip }, IncludeLoopback: ip.IsLoopback(),
		LoggerFactory: pionLogs{log: testLogger()},
	}
	mc := mediaConfig{
		toneHz: sideTone, videoBitrate: 300_000, videoFPS: 25, keyFrameEvery: 2 * time.Second,
		opusBytes: 80, logLimit: 100_000, seed: 7, log: testLogger(),
	}
	for _, c := range rc.SupportedCodecs() {
		switch {
		case c.IsTelephoneEvent():
		case c.Kind() == webrtc.RTPCodecTypeAudio:
			mc.audio = append(mc.audio, c)
		case strings.EqualFold(c.Name, "VP8"):
			mc.video = &c
		}
	}
	return &sipSide{
		t: t, rtcCfg: rc, media: mc, ringAfter: 100 * time.Millisecond, answerAfter: 300 * time.Millisecond,
		done: make(chan struct{}), calls: map[string]*sideCall{}, changed: make(chan struct{}),
	}
}

func (s *sipSide) record(op sideOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, op)
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitOp waits for the backend call op about callID ("" for any call).
func (s *sipSide) waitOp(ctx context.Context, op, callID string) (sideOp, error) {
	for {
		s.mu.Lock()
		for _, o := range s.ops {
			if o.op == op && (callID == "" || o.callID == callID) {
				s.mu.Unlock()
				return o, nil
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return sideOp{}, fmt.Errorf("no backend %s for call %q: %w", op, callID, ctx.Err())
		}
	}
}

func (s *sipSide) opsOf(callID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, o := range s.ops {
		if o.callID == callID && o.op != "candidate" {
			out = append(out, o.op)
		}
	}
	return out
}

func (s *sipSide) call(id string) *sideCall {
	s.deliverMu.Lock() // a delivery in progress registers its call first
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// waitCall waits until the side has a call with that id.
func (s *sipSide) waitCall(ctx context.Context, id string) (*sideCall, error) {
	for {
		if sc := s.call(id); sc != nil {
			return sc, nil
		}
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// newCall builds the side's peer for a call with the client's user.
func (s *sipSide) newCall(user string) (*sideCall, error) {
	tp := newTap(s.media.logLimit)
	p, err := rtc.NewPeer(s.rtcCfg, webrtc.Configuration{}, rtc.WithInterceptor(tp))
	if err != nil {
		return nil, err
	}
	sc := &sideCall{side: s, user: user, pc: p, tap: tp, ended: make(chan struct{})}
	p.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			sc.mu.Lock()
			sc.connected = true
			m := sc.m
			sc.mu.Unlock()
			if m != nil {
				m.start()
			}
		}
	})
	p.OnICECandidate(func(c *webrtc.ICECandidate) { sc.trickle(c) })
	return sc, nil
}

func (sc *sideCall) setMedia(m *media) {
	sc.mu.Lock()
	sc.m = m
	connected := sc.connected
	sc.mu.Unlock()
	if connected {
		m.start()
	}
}

// trickle sends one of the side's candidates to the client (nil: end-of-candidates).
func (sc *sideCall) trickle(c *webrtc.ICECandidate) {
	var cand signaling.ICECandidate
	if c != nil {
		init := c.ToJSON()
		cand = signaling.ICECandidate{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}
	}
	sc.mu.Lock()
	if sc.li == nil && sc.ri == nil {
		sc.cands = append(sc.cands, cand)
		sc.mu.Unlock()
		return
	}
	sc.mu.Unlock()
	sc.send(cand)
}

func (sc *sideCall) send(cand signaling.ICECandidate) {
	var err error
	if sc.li != nil {
		err = sc.li.SendCandidate(cand)
	} else {
		err = sc.ri.SendCandidate(cand)
	}
	if err != nil && !errors.Is(err, signaling.ErrCallEnded) {
		sc.side.t.Logf("side: candidate not sent: %v", err)
	}
}

func (sc *sideCall) flushCandidates() {
	sc.mu.Lock()
	cands := sc.cands
	sc.cands = nil
	sc.mu.Unlock()
	for _, c := range cands {
		sc.send(c)
	}
}

// end closes the side's peer and media.
func (sc *sideCall) end() {
	sc.endOnce.Do(func() {
		sc.mu.Lock()
		m := sc.m
		sc.mu.Unlock()
		if m != nil {
			m.halt()
		}
		_ = sc.pc.Close()
		if m != nil {
			m.wait()
		}
		close(sc.ended)
	})
}

// hangup is a BYE from the SIP side.
func (sc *sideCall) hangup() error {
	var err error
	if sc.li != nil {
		err = sc.li.Hangup("BYE", 0)
	} else {
		err = sc.ri.Hangup("BYE", 0)
	}
	sc.end()
	return err
}

func (sc *sideCall) media() *media {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.m
}

// after runs f after d unless the side closes first.
func (s *sipSide) after(d time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-s.done:
		}
	}()
}

// Invite answers the client's offer at once (as the gateway does when it bridges), trickles
// its candidates, and plays the callee's script.
func (s *sipSide) Invite(_ context.Context, sess *signaling.Session, li *signaling.LocalInvitation) error {
	s.record(sideOp{op: "invite", callID: li.CallID(), user: sess.User(), desc: li.Offer()})
	if li.Offer() == nil {
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "this test gateway needs the offer in the invite"}
	}
	sc, err := s.newCall(sess.User())
	if err != nil {
		return err
	}
	sc.id, sc.li = li.CallID(), li
	fail := func(err error) error {
		sc.end()
		return err
	}
	if err := sc.pc.SetRemoteDescription(webrtcDescription(*li.Offer())); err != nil {
		return fail(err)
	}
	m, err := newMedia(sc.pc.PeerConnection, s.media, true, sc.tap, nil)
	if err != nil {
		return fail(err)
	}
	sc.setMedia(m)
	answer, err := sc.pc.CreateAnswer(nil)
	if err != nil {
		return fail(err)
	}
	if err := sc.pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	if err := li.SendSDP(*describe(sc.pc.LocalDescription())); err != nil {
		return fail(err)
	}
	sc.flushCandidates()
	s.mu.Lock()
	s.calls[sc.id] = sc
	s.mu.Unlock()

	callee := li.Callee()
	s.after(s.ringAfter, func() {
		if err := li.Received(180); err != nil {
			return
		}
		switch callee {
		case "noanswer":
		case "busy":
			s.after(s.answerAfter, func() {
				if li.Refused(486, "busy here") == nil {
					sc.end()
				}
			})
		default:
			s.after(s.answerAfter, func() { _ = li.Accepted("hello from " + callee) })
		}
	})
	return nil
}

// invite delivers a call from caller (a SIP phone) to the client user callee, the side
// offering audio, and video too when video is set.
func (s *sipSide) invite(caller, callee string, video bool) (*sideCall, error) {
	sc, err := s.newCall(callee)
	if err != nil {
		return nil, err
	}
	mc := s.media
	if !video {
		mc.video = nil
	}
	m, err := newMedia(sc.pc.PeerConnection, mc, false, sc.tap, nil)
	if err != nil {
		sc.end()
		return nil, err
	}
	sc.setMedia(m)
	offer, err := sc.pc.CreateOffer(nil)
	if err == nil {
		err = sc.pc.SetLocalDescription(offer)
	}
	if err != nil {
		sc.end()
		return nil, err
	}
	s.deliverMu.Lock()
	ri, err := s.srv.DeliverInvitation(signaling.IncomingInvitation{
		Caller: caller, Callee: callee, Content: "call from " + caller, Offer: describe(sc.pc.LocalDescription()),
	})
	if err != nil {
		s.deliverMu.Unlock()
		sc.end()
		return nil, err
	}
	sc.mu.Lock()
	sc.id, sc.ri = ri.CallID(), ri
	sc.mu.Unlock()
	s.mu.Lock()
	s.calls[sc.id] = sc
	s.mu.Unlock()
	s.deliverMu.Unlock()
	sc.flushCandidates()
	return sc, nil
}

func (s *sipSide) Cancel(_ context.Context, _ *signaling.Session, li *signaling.LocalInvitation) error {
	s.record(sideOp{op: "cancel", callID: li.CallID(), state: string(li.State()), code: li.FailureCode()})
	if sc := s.call(li.CallID()); sc != nil {
		sc.end()
	}
	return nil
}

func (s *sipSide) Ringing(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation) error {
	s.record(sideOp{op: "ringing", callID: ri.CallID()})
	return nil
}

func (s *sipSide) Accept(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation, response string, answer *signaling.SessionDescription) error {
	s.record(sideOp{op: "accept", callID: ri.CallID(), response: response, desc: answer})
	sc := s.call(ri.CallID())
	if sc == nil || answer == nil {
		return errors.New("test side: accept without a call or an answer")
	}
	if err := sc.pc.SetRemoteDescription(webrtcDescription(*answer)); err != nil {
		s.t.Logf("side: the client's answer: %v", err)
		return err
	}
	s.after(20*time.Millisecond, func() { _ = ri.Confirm() }) // the SIP ACK
	return nil
}

func (s *sipSide) Refuse(_ context.Context, _ *signaling.Session, ri *signaling.RemoteInvitation, response string, sipCode int) error {
	s.record(sideOp{op: "refuse", callID: ri.CallID(), response: response, sipCode: sipCode})
	if sc := s.call(ri.CallID()); sc != nil {
		sc.end()
	}
	return nil
}

func (s *sipSide) Abandon(ri *signaling.RemoteInvitation) {
	s.record(sideOp{op: "abandon", callID: ri.CallID(), state: string(ri.State()), code: ri.FailureCode()})
	if sc := s.call(ri.CallID()); sc != nil {
		sc.end()
	}
}

func (s *sipSide) SDP(_ context.Context, _ *signaling.Session, callID string, d signaling.SessionDescription) error {
	s.record(sideOp{op: "sdp", callID: callID, desc: &d})
	return nil
}

func (s *sipSide) Candidate(_ context.Context, _ *signaling.Session, callID string, c signaling.ICECandidate) error {
	s.record(sideOp{op: "candidate", callID: callID})
	sc := s.call(callID)
	if sc == nil {
		return nil
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	if err := sc.pc.AddICECandidate(init); err != nil {
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: err.Error()}
	}
	return nil
}

func (s *sipSide) DTMF(_ context.Context, _ *signaling.Session, callID string, d signaling.DTMF) error {
	s.record(sideOp{op: "dtmf", callID: callID, dtmf: d})
	return nil
}

func (s *sipSide) Hangup(_ context.Context, _ *signaling.Session, callID string, reason string) error {
	s.record(sideOp{op: "hangup", callID: callID, reason: reason})
	if sc := s.call(callID); sc != nil {
		sc.end()
	}
	return nil
}

func (s *sipSide) SessionClosed(sess *signaling.Session) {
	s.record(sideOp{op: "sessionClosed", user: sess.User()})
	s.mu.Lock()
	var mine []*sideCall
	for _, sc := range s.calls {
		if sc.user == sess.User() {
			mine = append(mine, sc)
		}
	}
	s.mu.Unlock()
	for _, sc := range mine {
		sc.end()
	}
}

// close ends every call of the side and its timers.
func (s *sipSide) close() {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	calls := make([]*sideCall, 0, len(s.calls))
	for _, sc := range s.calls {
		calls = append(calls, sc)
	}
	s.mu.Unlock()
	for _, sc := range calls {
		sc.end()
	}
}

// ---- test environments ----

// env is a signalling server with the SIP side, and where a client connects from.
type env struct {
	name     string
	url      string
	dial     DialFunc
	net      transport.Net
	ip       netip.Addr
	side     *sipSide
	srv      *signaling.Server
	netem    *netem.Network
	clients  []*Client
	serveErr chan error
}

// loopbackEnv serves the signalling over TCP on 127.0.0.1 and runs ICE on the host's loopback.
func loopbackEnv(t *testing.T) *env {
	t.Helper()
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		name: "loopback", url: "ws://" + ln.Addr().String() + signaling.Path,
		dial: (&net.Dialer{}).DialContext, net: std, ip: lo,
	}
	e.serve(t, ln, newSIPSide(t, std, lo))
	return e
}

// netemEnv puts the gateway and the client on the lab's emulated network: the signalling runs
// over the stream link (host.Stream), ICE over the hosts' Nets, with oneWay delay each way on
// the client's access link.
func netemEnv(t *testing.T, oneWay time.Duration) *env {
	t.Helper()
	nw, err := netem.New("")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := nw.AddHost("gw", "")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := nw.AddHost("client", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*netem.Direction{cl.Up, cl.Down} {
		if err := d.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: oneWay}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Start(); err != nil {
		t.Fatal(err)
	}
	ln, err := gw.Stream.Listen("tcp", gw.IP.String()+":80")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		name: "netem", url: "ws://" + gw.IP.String() + ":80" + signaling.Path,
		dial: cl.Stream.DialContext, net: cl.Net, ip: cl.IP, netem: nw,
	}
	e.serve(t, ln, newSIPSide(t, gw.Net, gw.IP))
	return e
}

func (e *env) serve(t *testing.T, ln net.Listener, side *sipSide) {
	t.Helper()
	srv, err := signaling.New(testSecret, side, signaling.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	side.srv = srv
	e.side, e.srv = side, srv
	e.serveErr = make(chan error, 1)
	go func() { e.serveErr <- srv.Serve(ln) }()
	t.Cleanup(func() { e.close(t) })
}

// close ends everything and checks that the server holds nothing any more.
func (e *env) close(t *testing.T) {
	for _, c := range e.clients {
		if err := c.Close(); err != nil {
			t.Errorf("client close: %v", err)
		}
	}
	e.side.close()
	if err := e.srv.Close(); err != nil {
		t.Errorf("server close: %v", err)
	}
	if err := <-e.serveErr; !errors.Is(err, signaling.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if m := e.srv.Metrics().Snapshot(); m.Connections != 0 || m.Sessions != 0 || m.Calls != 0 {
		t.Errorf("server leftovers: %+v", m)
	}
	if e.netem != nil {
		if err := e.netem.Close(); err != nil {
			t.Errorf("netem close: %v", err)
		}
	}
}

// client builds a client of user with a token valid for an hour; Close is left to the env.
func (e *env) client(t *testing.T, user string, tune func(*Config), opts ...Option) *Client {
	t.Helper()
	cfg := Config{
		URL: e.url, Dial: e.dial, Net: e.net, LocalIP: e.ip, User: user,
		Token: signaling.MakeToken(testSecret, user, time.Now().Add(time.Hour)), Logger: testLogger(),
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := New(cfg, append([]Option{WithTone(clientTone)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.clients = append(e.clients, c)
	return c
}

// connected is client, logged in.
func (e *env) connected(t *testing.T, ctx context.Context, user string, tune func(*Config), opts ...Option) *Client {
	t.Helper()
	c := e.client(t, user, tune, opts...)
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	return c
}

// onBothNetworks runs f over loopback in real time and over the lab network in virtual time
// (a testing/synctest bubble, 20 ms one way on the client's link).
func onBothNetworks(t *testing.T, f func(t *testing.T, ctx context.Context, e *env)) {
	t.Run("loopback", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f(t, ctx, loopbackEnv(t))
	})
	t.Run("netem", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			f(t, ctx, netemEnv(t, 20*time.Millisecond))
		})
	})
}

func stateNames(states []StateEvent) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = s.State
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantStates(t *testing.T, c *Call, want ...string) {
	t.Helper()
	if got := stateNames(c.States()); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
}

// wantTone checks a frequency estimate within 1%.
func wantTone(t *testing.T, who string, got float64, err error, want float64) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: tone: %v", who, err)
		return
	}
	if got < want*0.99 || got > want*1.01 {
		t.Errorf("%s hears %.1f Hz, want %.0f Hz", who, got, want)
	}
}

func waitDone(t *testing.T, ctx context.Context, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("%s: not done: %v", what, ctx.Err())
	}
}
