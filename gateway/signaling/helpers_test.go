package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// pipeListener is an in-memory net.Listener: Dial hands one end of a net.Pipe to Accept.
// It stands in for the lab's stream link (there is no TCP in vnet).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// backendCall is one call into the fake backend.
type backendCall struct {
	op        string
	session   *Session
	li        *LocalInvitation
	ri        *RemoteInvitation
	callID    string
	response  string
	sipCode   int
	desc      *SessionDescription
	candidate ICECandidate
	dtmf      DTMF
	reason    string
	state     string // the invitation's state when the call was made
	code      FailureCode
}

// fakeBackend records every call; hooks let a test act like the SIP side.
type fakeBackend struct {
	calls    chan backendCall
	onInvite func(li *LocalInvitation) error
	onAccept func(ri *RemoteInvitation) error
	onSDP    func(callID string) error
}

func newFakeBackend() *fakeBackend { return &fakeBackend{calls: make(chan backendCall, 4096)} }

func (f *fakeBackend) record(c backendCall) { f.calls <- c }

func (f *fakeBackend) Invite(_ context.Context, s *Session, li *LocalInvitation) error {
	f.record(backendCall{op: "invite", session: s, li: li, callID: li.CallID(), desc: li.Offer()})
	if f.onInvite != nil {
		return f.onInvite(li)
	}
	return nil
}

func (f *fakeBackend) Cancel(_ context.Context, s *Session, li *LocalInvitation) error {
	f.record(backendCall{op: "cancel", session: s, li: li, callID: li.CallID(), state: string(li.State()), code: li.FailureCode()})
	return nil
}

func (f *fakeBackend) Ringing(_ context.Context, s *Session, ri *RemoteInvitation) error {
	f.record(backendCall{op: "ringing", session: s, ri: ri, callID: ri.CallID()})
	return nil
}

func (f *fakeBackend) Accept(_ context.Context, s *Session, ri *RemoteInvitation, response string, answer *SessionDescription) error {
	f.record(backendCall{op: "accept", session: s, ri: ri, callID: ri.CallID(), response: response, desc: answer, state: string(ri.State())})
	if f.onAccept != nil {
		return f.onAccept(ri)
	}
	return nil
}

func (f *fakeBackend) Refuse(_ context.Context, s *Session, ri *RemoteInvitation, response string, sipCode int) error {
	f.record(backendCall{op: "refuse", session: s, ri: ri, callID: ri.CallID(), response: response, sipCode: sipCode})
	return nil
}

func (f *fakeBackend) Abandon(ri *RemoteInvitation) {
	f.record(backendCall{op: "abandon", ri: ri, callID: ri.CallID(), state: string(ri.State()), code: ri.FailureCode()})
}

func (f *fakeBackend) SDP(_ context.Context, s *Session, callID string, d SessionDescription) error {
	f.record(backendCall{op: "sdp", session: s, callID: callID, desc: &d})
	if f.onSDP != nil {
		return f.onSDP(callID)
	}
	return nil
}

func (f *fakeBackend) Candidate(_ context.Context, s *Session, callID string, c ICECandidate) error {
	f.record(backendCall{op: "candidate", session: s, callID: callID, candidate: c})
	return nil
}

func (f *fakeBackend) DTMF(_ context.Context, s *Session, callID string, d DTMF) error {
	f.record(backendCall{op: "dtmf", session: s, callID: callID, dtmf: d})
	return nil
}

func (f *fakeBackend) Hangup(_ context.Context, s *Session, callID string, reason string) error {
	f.record(backendCall{op: "hangup", session: s, callID: callID, reason: reason})
	return nil
}

func (f *fakeBackend) SessionClosed(s *Session) {
	f.record(backendCall{op: "sessionClosed", session: s})
}

// next returns the backend's next call, which must be op.
func (f *fakeBackend) next(t *testing.T, op string) backendCall {
	t.Helper()
	select {
	case c := <-f.calls:
		if c.op != op {
			t.Fatalf("backend: got %s (call %s), want %s", c.op, c.callID, op)
		}
		return c
	case <-time.After(2 * time.Minute):
		t.Fatalf("backend: no %s call", op)
	}
	return backendCall{}
}

func (f *fakeBackend) expectNone(t *testing.T) {
	t.Helper()
	select {
	case c := <-f.calls:
		t.Fatalf("backend: unexpected %s (call %s)", c.op, c.callID)
	default:
	}
}

// testEnv is a Server on a pipe listener with a fake backend.
type testEnv struct {
	t     *testing.T
	srv   *Server
	fb    *fakeBackend
	l     *pipeListener
	serve chan error
}

func newEnv(t *testing.T, opts ...Option) *testEnv {
	t.Helper()
	fb := newFakeBackend()
	srv, err := New(testSecret, fb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, srv: srv, fb: fb, l: newPipeListener(), serve: make(chan error, 1)}
	go func() { e.serve <- srv.Serve(e.l) }()
	return e
}

// close stops the server and checks that nothing is left behind.
func (e *testEnv) close() {
	e.t.Helper()
	if err := e.srv.Close(); err != nil {
		e.t.Fatal(err)
	}
	if err := <-e.serve; err != ErrServerClosed {
		e.t.Fatalf("Serve returned %v", err)
	}
	e.checkIdle()
}

// checkIdle asserts that no connection, session, call or waiting invitation is left.
func (e *testEnv) checkIdle() {
	e.t.Helper()
	m := e.srv.Metrics().Snapshot()
	if m.Connections != 0 || m.Sessions != 0 || m.Calls != 0 || m.PendingInvites != 0 {
		e.t.Fatalf("leftovers: %d connections, %d sessions, %d calls, %d pending invitations",
			m.Connections, m.Sessions, m.Calls, m.PendingInvites)
	}
}

// wireMsg is any message the gateway sends.
type wireMsg struct {
	Type        string              `json:"type"`
	ID          string              `json:"id"`
	Code        string              `json:"code"`
	Message     string              `json:"message"`
	CallID      string              `json:"callId"`
	Callee      string              `json:"callee"`
	Caller      string              `json:"caller"`
	State       string              `json:"state"`
	SIPCode     int                 `json:"sipCode"`
	Reason      string              `json:"reason"`
	Response    string              `json:"response"`
	Content     string              `json:"content"`
	ChannelID   string              `json:"channelId"`
	User        string              `json:"user"`
	SessionID   string              `json:"sessionId"`
	Description *SessionDescription `json:"description"`
	Candidate   *ICECandidate       `json:"candidate"`
	Digit       string              `json:"digit"`
	Duration    int64               `json:"duration"`
	raw         string
}

func (m wireMsg) String() string { return m.raw }

type client struct {
	t        *testing.T
	ws       *websocket.Conn
	msgs     chan wireMsg
	closeErr error
	ids      int
	hc       *http.Client
}

// dial connects a client and starts reading (so it answers the server's pings).
func (e *testEnv) dial() *client {
	e.t.Helper()
	c := e.dialNoRead()
	go c.read()
	return c
}

// dialNoRead connects a client that reads nothing: it never answers pings.
func (e *testEnv) dialNoRead() *client {
	e.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: e.l.dial, DisableKeepAlives: true}}
	ws, _, err := websocket.Dial(context.Background(), "ws://gateway"+Path, &websocket.DialOptions{
		HTTPClient: hc, Subprotocols: []string{Subprotocol},
	})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	return &client{t: e.t, ws: ws, msgs: make(chan wireMsg, 4096), hc: hc}
}

func (c *client) read() {
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.closeErr = err
			close(c.msgs)
			return
		}
		var m wireMsg
		if err := json.Unmarshal(data, &m); err != nil {
			panic(fmt.Sprintf("gateway sent invalid JSON %q: %v", data, err))
		}
		m.raw = string(data)
		c.msgs <- m
	}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send sends a request of type typ with a fresh id and returns the id.
func (c *client) send(typ string, fields map[string]any) string {
	c.t.Helper()
	c.ids++
	id := fmt.Sprint("r", c.ids)
	m := map[string]any{"type": typ, "id": id}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
	return id
}

// next returns the next message within d.
func (c *client) next(d time.Duration) wireMsg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("connection closed: %v", c.closeErr)
		}
		return m
	case <-time.After(d):
		c.t.Fatalf("no message within %v", d)
	}
	return wireMsg{}
}

// expect returns the next message, which must have the given type (and state, if not "").
func (c *client) expect(typ, state string) wireMsg {
	c.t.Helper()
	m := c.next(5 * time.Second)
	if m.Type != typ || (state != "" && m.State != state) {
		c.t.Fatalf("got %s, want type %s state %q", m, typ, state)
	}
	return m
}

// request sends a request and returns its reply, which must be "ok".
func (c *client) request(typ string, fields map[string]any) wireMsg {
	c.t.Helper()
	id := c.send(typ, fields)
	m := c.next(5 * time.Second)
	if m.Type != TypeOK || m.ID != id {
		c.t.Fatalf("%s: got %s, want ok for %s", typ, m, id)
	}
	return m
}

// requestError sends a request and checks it is refused with code.
func (c *client) requestError(typ string, fields map[string]any, code ErrorCode) wireMsg {
	c.t.Helper()
	id := c.send(typ, fields)
	return c.expectError(id, code)
}

func (c *client) expectError(id string, code ErrorCode) wireMsg {
	c.t.Helper()
	m := c.next(5 * time.Second)
	if m.Type != TypeError || m.ID != id || m.Code != string(code) {
		c.t.Fatalf("got %s, want error %s for id %q", m, code, id)
	}
	return m
}

func (c *client) login(user string) wireMsg {
	c.t.Helper()
	return c.request(TypeLogin, map[string]any{"token": MakeToken(testSecret, user, time.Now().Add(time.Hour))})
}

// expectNothing checks that no message arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if ok {
			c.t.Fatalf("unexpected message %s", m)
		}
		c.t.Fatalf("connection closed: %v", c.closeErr)
	case <-time.After(d):
	}
}

// expectClosed waits for the server to close the connection with code.
func (c *client) expectClosed(code websocket.StatusCode) {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue
			}
			if got := websocket.CloseStatus(c.closeErr); got != code {
				c.t.Fatalf("closed with %v (%v), want %v", got, c.closeErr, code)
			}
			return
		case <-time.After(time.Minute):
			c.t.Fatalf("connection not closed")
		}
	}
}

// close closes the client's side and waits for its reader.
func (c *client) close() {
	_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
	for range c.msgs {
	}
	c.hc.CloseIdleConnections()
}
