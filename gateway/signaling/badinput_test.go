package signaling

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// TestBadInput sends every kind of bad request: each gets an error naming the request (when
// its id could be read), the connection stays usable, and nothing is left behind.
func TestBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		li := invite(t, e, c, "1001")
		call := li.CallID()
		big := strings.Repeat("é", MaxContentBytes/2) // exactly 8 KiB of 2-byte runes

		for _, tc := range []struct {
			name string
			raw  string
			id   string
			code ErrorCode
		}{
			{"malformed JSON", `{"type":"invite","id":"a1",`, "", CodeInvalidMessage},
			{"not an object", `["invite"]`, "", CodeInvalidMessage},
			{"empty", ``, "", CodeInvalidMessage},
			{"no id", `{"type":"logout"}`, "", CodeInvalidMessage},
			{"numeric id", `{"type":"logout","id":7}`, "", CodeInvalidMessage},
			{"long id", `{"type":"logout","id":"` + strings.Repeat("x", 65) + `"}`, "", CodeInvalidMessage},
			{"no type", `{"id":"a2"}`, "a2", CodeInvalidMessage},
			{"unknown type", `{"type":"selfDestruct","id":"a3"}`, "a3", CodeUnknownType},
			{"event type from a client", `{"type":"localInvitation","id":"a4"}`, "a4", CodeUnknownType},
			{"content too long", `{"type":"invite","id":"a5","callee":"1001","content":"` + big + `x"}`, "a5", CodeInvalidArgument},
			{"content not UTF-8", "{\"type\":\"invite\",\"id\":\"a6\",\"callee\":\"1001\",\"content\":\"\xc3\x28\"}", "a6", CodeInvalidArgument},
			{"content lone surrogate", `{"type":"invite","id":"a7","callee":"1001","content":"\ud800"}`, "a7", CodeInvalidArgument},
			{"channel id too long", `{"type":"invite","id":"a8","callee":"1001","channelId":"` + strings.Repeat("c", 65) + `"}`, "a8", CodeInvalidArgument},
			{"channel id not UTF-8", "{\"type\":\"invite\",\"id\":\"a9\",\"callee\":\"1001\",\"channelId\":\"\xff\"}", "a9", CodeInvalidArgument},
			{"no callee", `{"type":"invite","id":"b1"}`, "b1", CodeInvalidArgument},
			{"callee with space", `{"type":"invite","id":"b2","callee":"10 01"}`, "b2", CodeInvalidArgument},
			{"content wrong type", `{"type":"invite","id":"b3","callee":"1001","content":42}`, "b3", CodeInvalidArgument},
			{"description wrong type", `{"type":"invite","id":"b4","callee":"1001","description":"v=0"}`, "b4", CodeInvalidArgument},
			{"offer as answer", `{"type":"invite","id":"b5","callee":"1001","description":{"type":"answer","sdp":"v=0"}}`, "b5", CodeInvalidArgument},
			{"response too long", `{"type":"accept","id":"b6","callId":"x","response":"` + big + `x"}`, "b6", CodeInvalidArgument},
			{"unknown call", `{"type":"cancel","id":"b7","callId":"nope"}`, "b7", CodeUnknownCall},
			{"no call id", `{"type":"hangup","id":"b8"}`, "b8", CodeInvalidArgument},
			{"bad digit", `{"type":"dtmf","id":"b9","callId":"` + call + `","digit":"X"}`, "b9", CodeInvalidArgument},
			{"long dtmf", `{"type":"dtmf","id":"c1","callId":"` + call + `","digit":"1","duration":60000}`, "c1", CodeInvalidArgument},
			{"sdp without description", `{"type":"sdp","id":"c2","callId":"` + call + `"}`, "c2", CodeInvalidArgument},
			{"sdp bad type", `{"type":"sdp","id":"c3","callId":"` + call + `","description":{"type":"bogus","sdp":"v=0"}}`, "c3", CodeInvalidArgument},
			{"mline index out of range", `{"type":"candidate","id":"c4","callId":"` + call + `","candidate":{"candidate":"c","sdpMLineIndex":70000}}`, "c4", CodeInvalidArgument},
			{"accept a local invitation", `{"type":"accept","id":"c5","callId":"` + call + `"}`, "c5", CodeUnknownCall},
			{"invalid UTF-8 in a key", "{\"type\":\"logout\",\"id\":\"c6\",\"\xff\":1}", "c6", CodeInvalidArgument},
		} {
			c.sendRaw(tc.raw)
			m := c.next(time.Second)
			if m.Type != TypeError || m.ID != tc.id || m.Code != string(tc.code) || m.Message == "" {
				t.Errorf("%s: got %s, want error %s for id %q", tc.name, m, tc.code, tc.id)
			}
		}
		// The limits themselves are allowed.
		c.request(TypeInvite, map[string]any{"callee": "1001", "content": big, "channelId": strings.Repeat("c", 64)})
		if b := e.fb.next(t, "invite"); b.li.Content() != big {
			t.Fatal("8 KiB content was altered")
		}
		c.expect(TypeLocalInvitation, string(LocalSentToRemote))

		// Binary frames are refused too, and the connection still serves requests.
		if err := c.ws.Write(context.Background(), websocket.MessageBinary, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		c.expectError("", CodeInvalidMessage)
		c.request(TypeSDP, map[string]any{"callId": call, "description": map[string]any{"type": "offer", "sdp": "v=0"}})
		e.fb.next(t, "sdp")

		if got := e.srv.Metrics().Snapshot().Errors[CodeInvalidArgument]; got < 15 {
			t.Fatalf("INVALID_ARGUMENT count %d", got)
		}
		c.close()
		e.fb.next(t, "cancel")
		e.fb.next(t, "cancel")
		e.fb.next(t, "sessionClosed")
		e.fb.expectNone(t)
		synctest.Wait()
		e.checkIdle()
		e.close()
	})
}

func TestOversizeMessageCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t, WithMaxMessageBytes(16*1024))
		defer e.close()
		invite(t, e, c, "1001")
		c.sendRaw(`{"type":"invite","id":"x","callee":"1001","content":"` + strings.Repeat("a", 16*1024) + `"}`)
		c.expectClosed(websocket.StatusMessageTooBig)
		c.close()
		e.fb.next(t, "cancel")
		e.fb.next(t, "sessionClosed")
		// The server is unharmed.
		c = e.dial()
		defer c.close()
		c.login("1005")
	})
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t, WithRateLimit(10, 20))
		defer e.close()
		defer c.close()
		time.Sleep(10 * time.Second) // a full bucket
		var ok, limited int
		for range 30 {
			c.send(TypeHangup, map[string]any{"callId": "x"})
		}
		for range 30 {
			switch m := c.next(time.Second); m.Code {
			case string(CodeUnknownCall):
				ok++
			case string(CodeRateLimited):
				limited++
			default:
				t.Fatalf("reply %s", m)
			}
		}
		if ok != 20 || limited != 10 {
			t.Fatalf("%d served, %d limited; want 20 and 10", ok, limited)
		}
		// The bucket refills at the configured rate.
		time.Sleep(2 * time.Second)
		c.requestError(TypeHangup, map[string]any{"callId": "x"}, CodeUnknownCall)

		// A client that keeps going far over the limit is disconnected.
		for range 60 {
			if c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"hangup","id":"f","callId":"x"}`)) != nil {
				break
			}
		}
		c.expectClosed(websocket.StatusPolicyViolation)
	})
}

func TestSessionCloseEndsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		pending := invite(t, e, c, "1001")
		established := invite(t, e, c, "1002")
		_ = established.Accepted("")
		c.expect(TypeLocalInvitation, string(LocalAcceptedByRemote))
		ringing := ring(t, e, "1005")
		expectInvitation(t, c, ringing)

		c.close() // the connection drops
		got := map[string]int{}
		var closed *Session
		for range 2 {
			b := <-e.fb.calls
			got[b.op]++
			if b.op == "cancel" && (b.li != pending || b.code != NotLoggedIn) {
				t.Fatalf("cancel %+v", b)
			}
			if b.op == "abandon" && (b.ri != ringing || b.code != NotLoggedIn) {
				t.Fatalf("abandon %+v", b)
			}
		}
		if got["cancel"] != 1 || got["abandon"] != 1 || got["sessionClosed"] != 0 {
			t.Fatalf("backend calls %v", got)
		}
		closed = e.fb.next(t, "sessionClosed").session
		if closed.Context().Err() == nil {
			t.Fatal("the session's context outlived it")
		}
		// Whatever SIP reports afterwards is refused and pushes nothing.
		for _, err := range []error{pending.Received(180), established.Hangup("", 0), ringing.Confirm(), established.SendSDP(SessionDescription{})} {
			if err == nil {
				t.Fatal("a call of a closed session accepted a report")
			}
		}
		synctest.Wait()
		e.checkIdle()
	})
}

func TestLogoutEndsCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		pending := invite(t, e, c, "1001")
		established := invite(t, e, c, "1002")
		_ = established.Accepted("")
		c.expect(TypeLocalInvitation, string(LocalAcceptedByRemote))

		id := c.send(TypeLogout, nil)
		events := map[string]wireMsg{}
		for range 2 {
			m := c.next(time.Second)
			events[m.CallID] = m
		}
		if m := events[pending.CallID()]; m.State != string(LocalFailure) || m.Code != string(NotLoggedIn) {
			t.Fatalf("pending invitation: %s", m)
		}
		if m := events[established.CallID()]; m.Type != TypeHangup {
			t.Fatalf("established call: %s", m)
		}
		if m := c.next(time.Second); m.Type != TypeOK || m.ID != id {
			t.Fatalf("logout reply %s", m)
		}
		e.fb.next(t, "cancel")
		e.fb.next(t, "sessionClosed")
		if m := e.srv.Metrics().Snapshot(); m.Calls != 0 || m.Sessions != 0 || m.Connections != 1 {
			t.Fatalf("metrics %+v", m)
		}
		c.login("1005")
	})
}
