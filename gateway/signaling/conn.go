package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WebSocket close codes this server uses besides the standard ones (1000 normal, 1001 server
// shutting down, 1008 rate limit or slow reader, 1009 message too big).
const (
	CloseKicked        = 4001 // a newer login of the same user replaced this session
	CloseLoginTimeout  = 4002 // not logged in within the login timeout
	CloseLoginFailures = 4003 // too many failed logins
)

// outFrame is a message for the writer goroutine, or the order to close.
type outFrame struct {
	data   []byte
	close  bool
	code   websocket.StatusCode
	reason string
}

// conn is one WebSocket connection. Its reader goroutine (the HTTP handler's) decodes and
// handles requests one at a time; a writer goroutine drains the send queue so that nothing
// that emits an event ever blocks on the network; a pinger checks the client is alive.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	out    chan outFrame
	log    *slog.Logger

	mu         sync.Mutex
	closing    bool
	session    *Session
	loginTimer *time.Timer

	// Owned by the reader goroutine.
	failedLogins int
	bucket       tokenBucket
}

func newConn(srv *Server, ws *websocket.Conn, remote string) *conn {
	ctx, cancel := context.WithCancel(srv.ctx)
	return &conn{
		srv: srv, ws: ws, ctx: ctx, cancel: cancel,
		out:    make(chan outFrame, srv.opts.sendQueue),
		log:    srv.log.With("remote", remote),
		bucket: newTokenBucket(srv.opts.rate, srv.opts.burst, time.Now()),
	}
}

// serve runs the connection until it closes.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Go(c.writer)
	if c.srv.opts.pingInterval > 0 {
		wg.Go(c.pinger)
	}
	c.armLoginTimer()
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.log.Debug("connection closed", "err", err)
			break
		}
		c.handle(typ, data)
	}
	c.teardown()
	wg.Wait()
	_ = c.ws.CloseNow()
}

func (c *conn) teardown() {
	c.mu.Lock()
	c.closing = true
	s := c.session
	c.session = nil
	if c.loginTimer != nil {
		c.loginTimer.Stop()
	}
	c.mu.Unlock()
	if s != nil {
		s.end()
	}
	c.cancel()
}

func (c *conn) writer() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case f := <-c.out:
			if f.close {
				// Close waits (at most 5 s) for the client's close frame, which the reader reads.
				_ = c.ws.Close(f.code, f.reason)
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.srv.opts.writeTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				c.cancel()
				return
			}
		}
	}
}

func (c *conn) pinger() {
	t := time.NewTicker(c.srv.opts.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.srv.opts.pongTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.log.Info("keepalive failed, closing", "err", err)
				}
				c.cancel()
				return
			}
		}
	}
}

// send queues a message for the client. A client that lets the queue fill up is disconnected
// rather than allowed to hold the gateway's memory or block call events.
func (c *conn) send(m any) {
	b, err := json.Marshal(m)
	if err != nil {
		c.log.Error("cannot encode message", "err", err)
		return
	}
	c.logFrame("sent", b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	select {
	case c.out <- outFrame{data: b}:
	default:
		c.log.Warn("client too slow, closing")
		c.closing = true
		c.cancel()
	}
}

// closeWith sends everything queued, then closes with code.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	select {
	case c.out <- outFrame{close: true, code: code, reason: reason}:
	default:
		c.cancel()
	}
}

func (c *conn) reply(id, callID string) {
	c.send(okMsg{Type: TypeOK, ID: id, CallID: callID})
}

func (c *conn) replyError(id string, e *Error) {
	c.srv.metrics.errorSent(e.Code)
	c.send(errorMsg{Type: TypeError, ID: id, Code: e.Code, Message: e.Message})
}

func (c *conn) currentSession() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *conn) armLoginTimer() {
	if c.srv.opts.loginTimeout <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loginTimer != nil {
		c.loginTimer.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(c.srv.opts.loginTimeout, func() {
		c.mu.Lock()
		fire := c.loginTimer == t && c.session == nil
		c.mu.Unlock()
		if fire {
			c.closeWith(CloseLoginTimeout, "login timeout")
		}
	})
	c.loginTimer = t
}

// handle processes one client message.
func (c *conn) handle(typ websocket.MessageType, data []byte) {
	allowed, abusive := c.bucket.take(time.Now())
	if abusive {
		c.log.Warn("rate limit exceeded repeatedly, closing")
		c.closeWith(websocket.StatusPolicyViolation, "rate limit exceeded")
		return
	}
	if typ != websocket.MessageText {
		c.replyError("", errorf(CodeInvalidMessage, "binary messages are not supported"))
		return
	}
	c.logFrame("received", data)
	req, e := decodeRequest(data)
	switch {
	case !allowed:
		e = errorf(CodeRateLimited, "too many messages; slow down")
	case e == nil:
		e = c.dispatch(req)
	}
	if e != nil {
		c.replyError(req.ID, e)
	}
}

func (c *conn) dispatch(req request) *Error {
	switch req.Type {
	case TypeLogin:
		return c.login(req)
	case TypeLogout:
		return c.logout(req)
	}
	s := c.currentSession()
	if s == nil {
		return errorf(CodeNotLoggedIn, "log in first")
	}
	switch req.Type {
	case TypeInvite:
		return s.invite(req)
	case TypeCancel:
		return s.cancelInvitation(req)
	case TypeReceived:
		return s.received(req)
	case TypeAccept:
		return s.accept(req)
	case TypeRefuse:
		return s.refuse(req)
	case TypeSDP, TypeCandidate, TypeDTMF:
		return s.media(req)
	case TypeHangup:
		return s.hangup(req)
	}
	return errorf(CodeUnknownType, "unknown message type")
}

func (c *conn) login(req request) *Error {
	if c.currentSession() != nil {
		return errorf(CodeInvalidState, "already logged in; log out first")
	}
	user, _, err := VerifyToken(c.srv.secret, req.Token, time.Now())
	if err != nil {
		c.srv.metrics.loginFailures.Add(1)
		c.failedLogins++
		e := errorf(CodeInvalidToken, "the token is not valid")
		if err == ErrTokenExpired {
			e = errorf(CodeTokenExpired, "the token has expired")
		}
		c.replyError(req.ID, e)
		if c.failedLogins >= c.srv.opts.maxLoginFailures && c.srv.opts.maxLoginFailures > 0 {
			c.closeWith(CloseLoginFailures, "too many failed logins")
		}
		return nil
	}
	s := newSession(c, user)
	old, err := c.srv.register(s)
	if err != nil {
		s.cancel()
		return errorf(CodeInternal, "the server is shutting down")
	}
	if old != nil {
		c.srv.metrics.kicked.Add(1)
		old.conn.kick(old)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.srv.unregister(s)
		s.cancel()
		return nil
	}
	c.session = s
	if c.loginTimer != nil {
		c.loginTimer.Stop()
	}
	c.mu.Unlock()
	c.srv.metrics.sessionsActive.Add(1)
	c.srv.metrics.sessionsTotal.Add(1)
	c.failedLogins = 0
	c.log.Info("logged in", "user", user, "session", s.id)
	c.send(okMsg{Type: TypeOK, ID: req.ID, User: user, SessionID: s.id})
	c.srv.deliverPending(s)
	return nil
}

func (c *conn) logout(req request) *Error {
	c.mu.Lock()
	s := c.session
	c.session = nil
	c.mu.Unlock()
	if s == nil {
		return errorf(CodeNotLoggedIn, "not logged in")
	}
	s.end()
	c.reply(req.ID, "")
	c.armLoginTimer()
	return nil
}

// kick ends s, which a newer login replaced, and closes its connection.
func (c *conn) kick(s *Session) {
	c.mu.Lock()
	if c.session != s {
		c.mu.Unlock()
		return
	}
	c.session = nil
	c.mu.Unlock()
	c.send(kickedMsg{Type: TypeKicked, Reason: "logged in elsewhere"})
	s.end()
	c.closeWith(CloseKicked, "logged in elsewhere")
}

// LevelSensitive is the level of the log lines that carry whole protocol messages: tokens, SDP
// and invitation content (SRProxy's level 0, SENSITIVE; gateway/config.LevelSensitive).
const LevelSensitive = slog.LevelDebug - 4

// logFrame logs a whole frame at LevelSensitive, only when that level is on.
func (c *conn) logFrame(what string, data []byte) {
	if c.log.Enabled(c.ctx, LevelSensitive) {
		c.log.Log(c.ctx, LevelSensitive, "frame "+what, "frame", string(data))
	}
}
