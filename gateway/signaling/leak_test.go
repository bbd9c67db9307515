package signaling

import (
	"runtime"
	"testing"
	"time"
)

// TestNoGoroutineLeak runs on the real clock (the synctest bubbles already fail on any goroutine
// left behind): many clients send junk, place calls and vanish, and the goroutine count returns
// to where it started.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	e := newEnv(t)
	for i := range 20 {
		c := e.dial()
		c.sendRaw(`{"type":`)
		c.sendRaw(`{"type":"nope","id":"1"}`)
		c.sendRaw("{\"type\":\"invite\",\"id\":\"2\",\"callee\":\"1001\",\"content\":\"\xff\"}")
		for range 3 {
			c.next(5 * time.Second)
		}
		c.login("u" + string(rune('a'+i)))
		c.request(TypeInvite, map[string]any{"callee": "1001"})
		c.expect(TypeLocalInvitation, string(LocalSentToRemote))
		if i%2 == 0 {
			_ = c.ws.CloseNow() // vanish without a close handshake
			for range c.msgs {
			}
		} else {
			c.close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.Metrics().Snapshot().Connections != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e.checkIdle()
	e.close()
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
