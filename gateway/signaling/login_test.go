package signaling

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

func TestLogin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, WithLoginTimeout(10*time.Second, 5))
		defer e.close()
		c := e.dial()
		defer c.close()

		c.requestError(TypeInvite, map[string]any{"callee": "1001"}, CodeNotLoggedIn)
		bad := MakeToken([]byte("another secret"), "1005", time.Now().Add(time.Hour))
		c.requestError(TypeLogin, map[string]any{"token": bad}, CodeInvalidToken)
		expired := MakeToken(testSecret, "1005", time.Now().Add(-time.Second))
		c.requestError(TypeLogin, map[string]any{"token": expired}, CodeTokenExpired)
		c.requestError(TypeLogin, map[string]any{"token": "not a token"}, CodeInvalidToken)

		// The connection is kept after a failed login: a good token still works.
		ok := c.login("1005")
		if ok.User != "1005" || ok.SessionID == "" {
			t.Fatalf("login reply %s", ok)
		}
		c.requestError(TypeLogin, map[string]any{"token": MakeToken(testSecret, "1005", time.Now().Add(time.Hour))}, CodeInvalidState)

		c.request(TypeLogout, nil)
		if s := e.fb.next(t, "sessionClosed").session; s.User() != "1005" {
			t.Fatalf("closed session of %q", s.User())
		}
		c.requestError(TypeInvite, map[string]any{"callee": "1001"}, CodeNotLoggedIn)
		c.login("1006")
		m := e.srv.Metrics().Snapshot()
		if m.SessionsTotal != 2 || m.LoginFailures != 3 || m.Sessions != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestLoginFailuresClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.close()
		c := e.dial()
		for range 3 {
			c.requestError(TypeLogin, map[string]any{"token": "x"}, CodeInvalidToken)
		}
		c.expectClosed(CloseLoginFailures)
		c.close()
	})
}

func TestLoginTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.close()
		start := time.Now()
		c := e.dial()
		c.expectClosed(CloseLoginTimeout)
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("closed after %v, want 10s", d)
		}
		c.close()

		// After a logout the clock starts again.
		c = e.dial()
		c.login("1005")
		time.Sleep(time.Minute)
		c.request(TypeLogout, nil)
		e.fb.next(t, "sessionClosed")
		c.expectClosed(CloseLoginTimeout)
		c.close()
	})
}

func TestSecondLoginKicksFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.close()
		first := e.dial()
		first.login("1005")
		first.request(TypeInvite, map[string]any{"callee": "1001"})
		li := e.fb.next(t, "invite").li
		first.expect(TypeLocalInvitation, string(LocalSentToRemote))

		second := e.dial()
		defer second.close()
		second.login("1005")
		first.expect(TypeKicked, "")
		first.expect(TypeLocalInvitation, string(LocalFailure))
		first.expectClosed(CloseKicked)
		first.close()

		// The pending invitation is withdrawn before the session is reported closed.
		if c := e.fb.next(t, "cancel"); c.li != li || c.code != NotLoggedIn {
			t.Fatalf("cancel %+v", c)
		}
		e.fb.next(t, "sessionClosed")
		if err := li.Accepted(""); err == nil {
			t.Fatal("a late 200 on a kicked session's invitation was accepted")
		}
		// The new session works.
		second.request(TypeInvite, map[string]any{"callee": "1001"})
		e.fb.next(t, "invite")
		if m := e.srv.Metrics().Snapshot(); m.Kicked != 1 || m.Sessions != 1 || m.Calls != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestKeepaliveClosesDeadClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, WithLoginTimeout(0, 3))
		defer e.close()
		c := e.dial()
		c.login("1005")
		// A reading client answers pings: it stays connected however long it is idle.
		c.expectNothing(5 * time.Minute)

		// A client whose transport drains every byte but never answers a ping is dropped when
		// the first pong is overdue: ping at 20 s, pong deadline 10 s later.
		raw, err := e.l.dial(context.Background(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = raw.Write([]byte("GET /ws HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, raw); close(drained) }()
		start := time.Now()
		synctest.Wait()
		if n := e.srv.Metrics().Snapshot().Connections; n != 2 {
			t.Fatalf("%d connections", n)
		}
		<-drained
		if d := time.Since(start); d != 30*time.Second {
			t.Fatalf("silent client dropped after %v, want 30s", d)
		}
		_ = raw.Close()

		// A client that reads nothing at all is dropped when a write times out (10 s).
		dead := e.dialNoRead()
		start = time.Now()
		dead.sendRaw(`{"type":"login","id":"1","token":"` + MakeToken(testSecret, "1006", time.Now().Add(time.Hour)) + `"}`)
		if s := e.fb.next(t, "sessionClosed").session; s.User() != "1006" || time.Since(start) != 10*time.Second {
			t.Fatalf("session of %s closed after %v", s.User(), time.Since(start))
		}
		_ = dead.ws.CloseNow()
		c.close()
		e.fb.next(t, "sessionClosed")
	})
}

func TestServerCloseEndsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		c := e.dial()
		c.login("1005")
		c.request(TypeInvite, map[string]any{"callee": "1001"})
		e.fb.next(t, "invite")
		ri, err := e.srv.DeliverInvitation(IncomingInvitation{Caller: "1001", Callee: "2000"})
		if err != nil {
			t.Fatal(err)
		}
		e.close()
		c.expectClosed(websocket.StatusGoingAway)
		c.close()
		got := map[string]backendCall{}
		for range 3 {
			c := <-e.fb.calls
			got[c.op] = c
		}
		if got["cancel"].code != NotLoggedIn || got["sessionClosed"].session == nil {
			t.Fatalf("backend calls %+v", got)
		}
		if a := got["abandon"]; a.ri != ri || a.code != PeerOffline {
			t.Fatalf("abandon %+v", a)
		}
		if _, err := e.srv.DeliverInvitation(IncomingInvitation{Caller: "1001", Callee: "2000"}); err != ErrServerClosed {
			t.Fatalf("DeliverInvitation after Close: %v", err)
		}
	})
}

// lockedBuffer is a log destination the server's goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFramesLoggedAtSensitiveOnly: whole messages (the token among them) reach the log at
// LevelSensitive (SRProxy's level 0), never at debug.
func TestFramesLoggedAtSensitiveOnly(t *testing.T) {
	for _, level := range []slog.Level{LevelSensitive, slog.LevelDebug} {
		var out lockedBuffer
		synctest.Test(t, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
			e := newEnv(t, WithLogger(log))
			defer e.close()
			c := e.dial()
			defer c.close()
			c.login("1005")
		})
		logged := strings.Contains(out.String(), `msg="frame received"`) && strings.Contains(out.String(), `\"token\":`) && strings.Contains(out.String(), `msg="frame sent"`)
		if logged != (level == LevelSensitive) {
			t.Errorf("at level %v the login frame was logged: %v\n%s", level, logged, out.String())
		}
	}
}
