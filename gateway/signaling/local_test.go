package signaling

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// loggedIn returns an environment with a client logged in as 1005.
func loggedIn(t *testing.T, opts ...Option) (*testEnv, *client) {
	e := newEnv(t, opts...)
	c := e.dial()
	c.login("1005")
	return e, c
}

// invite places a call from c to callee and returns the backend's invitation once the client
// has seen SENT_TO_REMOTE.
func invite(t *testing.T, e *testEnv, c *client, callee string) *LocalInvitation {
	t.Helper()
	reply := c.request(TypeInvite, map[string]any{"callee": callee, "content": "hello", "channelId": "room-1"})
	li := e.fb.next(t, "invite").li
	if reply.CallID != li.CallID() {
		t.Fatalf("reply call id %q, backend %q", reply.CallID, li.CallID())
	}
	m := c.expect(TypeLocalInvitation, string(LocalSentToRemote))
	if m.CallID != li.CallID() || m.Callee != callee {
		t.Fatalf("event %s", m)
	}
	return li
}

func TestLocalInvitationAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		li := invite(t, e, c, "1001")
		if li.Caller() != "1005" || li.Content() != "hello" || li.ChannelID() != "room-1" {
			t.Fatalf("invitation %+v", li)
		}
		if err := li.Received(180); err != nil {
			t.Fatal(err)
		}
		if m := c.expect(TypeLocalInvitation, string(LocalReceivedByRemote)); m.SIPCode != 180 {
			t.Fatalf("event %s", m)
		}
		if err := li.Received(183); err != nil { // 183 after 180: ignored
			t.Fatal(err)
		}
		// Trickle ICE while ringing, both ways.
		id := li.CallID()
		c.request(TypeSDP, map[string]any{"callId": id, "description": map[string]any{"type": "offer", "sdp": "v=0\r\n"}})
		if b := e.fb.next(t, "sdp"); b.desc.Type != "offer" || b.callID != id {
			t.Fatalf("sdp %+v", b)
		}
		c.request(TypeCandidate, map[string]any{"callId": id, "candidate": map[string]any{
			"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}})
		if b := e.fb.next(t, "candidate"); b.candidate.End() || *b.candidate.SDPMid != "0" || *b.candidate.SDPMLineIndex != 0 {
			t.Fatalf("candidate %+v", b)
		}
		c.request(TypeCandidate, map[string]any{"callId": id, "candidate": nil})
		if b := e.fb.next(t, "candidate"); !b.candidate.End() {
			t.Fatalf("end-of-candidates %+v", b)
		}
		if err := li.SendSDP(SessionDescription{Type: "answer", SDP: "v=0\r\n"}); err != nil {
			t.Fatal(err)
		}
		if m := c.expect(TypeSDP, ""); m.Description.Type != "answer" || m.CallID != id {
			t.Fatalf("sdp %s", m)
		}
		mid := "0"
		_ = li.SendCandidate(ICECandidate{Candidate: "candidate:2 1 udp 1 127.0.0.1 6000 typ host", SDPMid: &mid})
		if m := c.expect(TypeCandidate, ""); m.Candidate == nil || *m.Candidate.SDPMid != "0" {
			t.Fatalf("candidate %s", m)
		}
		_ = e.srv.Deliver("1005", CandidateEvent{CallID: id})
		if m := c.expect(TypeCandidate, ""); m.Candidate != nil || m.raw != `{"type":"candidate","callId":"`+id+`","candidate":null}` {
			t.Fatalf("end-of-candidates %s", m)
		}

		if err := li.Accepted("welcome"); err != nil {
			t.Fatal(err)
		}
		if m := c.expect(TypeLocalInvitation, string(LocalAcceptedByRemote)); m.SIPCode != 200 || m.Response != "welcome" {
			t.Fatalf("event %s", m)
		}
		// The invitation is over; the call is not.
		if err := li.Refused(486, ""); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("Refused after Accepted: %v", err)
		}
		c.request(TypeDTMF, map[string]any{"callId": id, "digit": "5", "duration": 160})
		if b := e.fb.next(t, "dtmf"); b.dtmf != (DTMF{Digit: "5", Duration: 160 * time.Millisecond}) {
			t.Fatalf("dtmf %+v", b)
		}
		_ = e.srv.Deliver("1005", DTMFEvent{CallID: id, DTMF: DTMF{Digit: "#", Duration: 80 * time.Millisecond}})
		if m := c.expect(TypeDTMF, ""); m.Digit != "#" || m.Duration != 80 {
			t.Fatalf("dtmf %s", m)
		}
		c.requestError(TypeCancel, map[string]any{"callId": id}, CodeInvalidState)
		c.request(TypeHangup, map[string]any{"callId": id, "reason": "done"})
		if b := e.fb.next(t, "hangup"); b.callID != id || b.reason != "done" {
			t.Fatalf("hangup %+v", b)
		}
		c.requestError(TypeDTMF, map[string]any{"callId": id, "digit": "1"}, CodeUnknownCall)
		if err := li.SendSDP(SessionDescription{Type: "offer", SDP: "x"}); err != ErrCallEnded {
			t.Fatalf("SendSDP after hangup: %v", err)
		}
		m := e.srv.Metrics().Snapshot()
		if m.Calls != 0 || m.LocalOutcomes["ACCEPTED_BY_REMOTE"] != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestLocalInvitationHungUpBySIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		li := invite(t, e, c, "1001")
		if err := li.Hangup("bye", 0); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("Hangup while ringing: %v", err)
		}
		_ = li.Accepted("")
		c.expect(TypeLocalInvitation, string(LocalAcceptedByRemote))
		if err := e.srv.Deliver("1005", HangupEvent{CallID: li.CallID(), Reason: "BYE"}); err != nil {
			t.Fatal(err)
		}
		if m := c.expect(TypeHangup, ""); m.Reason != "BYE" {
			t.Fatalf("hangup %s", m)
		}
		c.requestError(TypeHangup, map[string]any{"callId": li.CallID()}, CodeUnknownCall)
		if err := e.srv.Deliver("1005", HangupEvent{CallID: li.CallID()}); err != ErrUnknownCall {
			t.Fatalf("second hangup: %v", err)
		}
		if err := e.srv.Deliver("1999", HangupEvent{CallID: li.CallID()}); err != ErrNotLoggedIn {
			t.Fatalf("deliver to nobody: %v", err)
		}
	})
}

func TestLocalInvitationRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		li := invite(t, e, c, "1001")
		_ = li.Received(180)
		c.expect(TypeLocalInvitation, string(LocalReceivedByRemote))
		if err := li.Refused(486, "busy here"); err != nil {
			t.Fatal(err)
		}
		m := c.expect(TypeLocalInvitation, string(LocalRefusedByRemote))
		if m.SIPCode != 486 || m.Response != "busy here" {
			t.Fatalf("event %s", m)
		}
		c.requestError(TypeCancel, map[string]any{"callId": li.CallID()}, CodeUnknownCall)
		if got := e.srv.Metrics().Snapshot().LocalOutcomes["REFUSED_BY_REMOTE"]; got != 1 {
			t.Fatalf("refused outcomes %d", got)
		}
	})
}

func TestLocalInvitationCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		for _, ring := range []bool{false, true} {
			li := invite(t, e, c, "1001")
			if ring {
				_ = li.Received(180)
				c.expect(TypeLocalInvitation, string(LocalReceivedByRemote))
			}
			c.request(TypeCancel, map[string]any{"callId": li.CallID()})
			c.expect(TypeLocalInvitation, string(LocalCanceled))
			if b := e.fb.next(t, "cancel"); b.li != li || b.state != string(LocalCanceled) {
				t.Fatalf("cancel %+v", b)
			}
			// The 200 that crossed the CANCEL is refused: the backend must BYE.
			if err := li.Accepted(""); !errors.Is(err, ErrIllegalTransition) {
				t.Fatalf("Accepted after cancel: %v", err)
			}
		}
		// No timer outlives a canceled invitation.
		c.expectNothing(2 * time.Minute)
		e.fb.expectNone(t)
	})
}

func TestLocalInvitationTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		// No 180 within 30 s: PEER_NO_RESPONSE.
		li := invite(t, e, c, "1001")
		sent := time.Now()
		m := c.next(time.Minute)
		if m.State != string(LocalFailure) || m.Code != string(PeerNoResponse) || time.Since(sent) != 30*time.Second {
			t.Fatalf("after %v: %s", time.Since(sent), m)
		}
		if b := e.fb.next(t, "cancel"); b.li != li || b.code != PeerNoResponse {
			t.Fatalf("cancel %+v", b)
		}

		// Ringing but unanswered 60 s after sending: INVITATION_EXPIRE.
		li = invite(t, e, c, "1001")
		sent = time.Now()
		time.Sleep(29 * time.Second)
		_ = li.Received(180)
		c.expect(TypeLocalInvitation, string(LocalReceivedByRemote))
		m = c.next(time.Minute)
		if m.State != string(LocalFailure) || m.Code != string(InvitationExpire) || time.Since(sent) != 60*time.Second {
			t.Fatalf("after %v: %s", time.Since(sent), m)
		}
		if b := e.fb.next(t, "cancel"); b.li != li || b.code != InvitationExpire {
			t.Fatalf("cancel %+v", b)
		}

		// Timers are configurable.
		if got := e.srv.Metrics().Snapshot().LocalOutcomes; got["FAILURE/PEER_NO_RESPONSE"] != 1 || got["FAILURE/INVITATION_EXPIRE"] != 1 {
			t.Fatalf("outcomes %v", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t, WithTimeouts(Timeouts{PeerNoResponse: 5 * time.Second}))
		defer e.close()
		defer c.close()
		invite(t, e, c, "1001")
		sent := time.Now()
		if m := c.next(time.Minute); m.Code != string(PeerNoResponse) || time.Since(sent) != 5*time.Second {
			t.Fatalf("after %v: %s", time.Since(sent), m)
		}
		e.fb.next(t, "cancel")
	})
}

func TestLocalInvitationFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		for _, tc := range []struct {
			code    FailureCode
			sipCode int
		}{{PeerOffline, 480}, {PeerOffline, 404}, {PeerNoResponse, 408}} {
			li := invite(t, e, c, "1001")
			if err := li.Fail(tc.code, tc.sipCode, "from SIP"); err != nil {
				t.Fatal(err)
			}
			m := c.expect(TypeLocalInvitation, string(LocalFailure))
			if m.Code != string(tc.code) || m.SIPCode != tc.sipCode || m.Reason != "from SIP" {
				t.Fatalf("event %s", m)
			}
		}
		if err := (&LocalInvitation{}).Fail("NO_SUCH_CODE", 0, ""); err == nil {
			t.Fatal("an unknown failure code was accepted")
		}

		// The backend refuses to place the call: an error reply, no invitation.
		e.fb.onInvite = func(*LocalInvitation) error { return &Error{Code: CodeInvalidArgument, Message: "no route to 999"} }
		m := c.requestError(TypeInvite, map[string]any{"callee": "999"}, CodeInvalidArgument)
		if m.Message != "no route to 999" {
			t.Fatalf("error %s", m)
		}
		e.fb.next(t, "invite")
		e.fb.onInvite = func(*LocalInvitation) error { return errors.New("sip: dial udp 10.0.0.1:5060: secret detail") }
		if m := c.requestError(TypeInvite, map[string]any{"callee": "999"}, CodeInternal); m.Message != "invite failed" {
			t.Fatalf("internal details leaked: %s", m)
		}
		e.fb.next(t, "invite")

		// SIP answers before Invite returns: the reply still comes first, then every state.
		e.fb.onInvite = func(li *LocalInvitation) error {
			_ = li.Received(180)
			return li.Fail(PeerOffline, 480, "")
		}
		id := c.send(TypeInvite, map[string]any{"callee": "1001"})
		reply := c.next(time.Second)
		if reply.Type != TypeOK || reply.ID != id {
			t.Fatalf("reply %s", reply)
		}
		e.fb.next(t, "invite")
		for _, state := range []LocalState{LocalSentToRemote, LocalReceivedByRemote, LocalFailure} {
			if m := c.expect(TypeLocalInvitation, string(state)); m.CallID != reply.CallID {
				t.Fatalf("event %s", m)
			}
		}
		e.fb.onInvite = nil
		if m := e.srv.Metrics().Snapshot(); m.Calls != 0 || m.LocalOutcomes["FAILURE/PEER_OFFLINE"] != 3 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestCallLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t, WithMaxCalls(2))
		defer e.close()
		defer c.close()
		invite(t, e, c, "1001")
		invite(t, e, c, "1002")
		c.requestError(TypeInvite, map[string]any{"callee": "1003"}, CodeLimitExceeded)
		if _, err := e.srv.DeliverInvitation(IncomingInvitation{Caller: "x", Callee: "1005"}); err != ErrBusy {
			t.Fatalf("DeliverInvitation to a full session: %v", err)
		}
	})
}
