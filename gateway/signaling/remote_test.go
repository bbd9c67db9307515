package signaling

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func ring(t *testing.T, e *testEnv, callee string) *RemoteInvitation {
	t.Helper()
	ri, err := e.srv.DeliverInvitation(IncomingInvitation{
		Caller: "1001", Callee: callee, Content: "call me", ChannelID: "room-9",
		Offer: &SessionDescription{Type: "offer", SDP: "v=0\r\n"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ri
}

func expectInvitation(t *testing.T, c *client, ri *RemoteInvitation) {
	t.Helper()
	m := c.expect(TypeRemoteInvitation, string(RemoteInvitationReceived))
	if m.CallID != ri.CallID() || m.Caller != "1001" || m.Content != "call me" || m.ChannelID != "room-9" ||
		m.Description == nil || m.Description.Type != "offer" {
		t.Fatalf("invitation %s", m)
	}
}

func TestRemoteInvitationAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		ri := ring(t, e, "1005")
		expectInvitation(t, c, ri)
		c.request(TypeReceived, map[string]any{"callId": ri.CallID()})
		if b := e.fb.next(t, "ringing"); b.ri != ri {
			t.Fatalf("ringing %+v", b)
		}
		c.request(TypeReceived, map[string]any{"callId": ri.CallID()}) // idempotent
		c.request(TypeAccept, map[string]any{"callId": ri.CallID(), "response": "hi",
			"description": map[string]any{"type": "answer", "sdp": "v=0\r\n"}})
		c.expect(TypeRemoteInvitation, string(RemoteAcceptSentToLocal))
		b := e.fb.next(t, "accept")
		if b.ri != ri || b.response != "hi" || b.desc == nil || b.desc.Type != "answer" || b.state != string(RemoteAcceptSentToLocal) {
			t.Fatalf("accept %+v", b)
		}
		c.requestError(TypeRefuse, map[string]any{"callId": ri.CallID()}, CodeInvalidState)
		if err := ri.Confirm(); err != nil {
			t.Fatal(err)
		}
		c.expect(TypeRemoteInvitation, string(RemoteAccepted))
		if err := ri.Cancel(""); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("Cancel after ACCEPTED: %v", err)
		}
		if ri.Response() != "hi" || ri.Session().User() != "1005" {
			t.Fatalf("invitation %+v", ri)
		}
		// The established call: DTMF and hangup both ways.
		_ = ri.SendDTMF(DTMF{Digit: "7", Duration: 100 * time.Millisecond})
		c.expect(TypeDTMF, "")
		c.request(TypeHangup, map[string]any{"callId": ri.CallID()})
		e.fb.next(t, "hangup")
		if err := ri.Hangup("", 0); err != ErrCallEnded {
			t.Fatalf("Hangup after the client's: %v", err)
		}
		m := e.srv.Metrics().Snapshot()
		if m.Calls != 0 || m.RemoteOutcomes["ACCEPTED"] != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestRemoteInvitationRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		for _, tc := range []struct {
			sent any
			want int
		}{{nil, 603}, {486, 486}, {600, 600}} {
			ri := ring(t, e, "1005")
			expectInvitation(t, c, ri)
			fields := map[string]any{"callId": ri.CallID(), "response": "not now"}
			if tc.sent != nil {
				fields["sipCode"] = tc.sent
			}
			c.request(TypeRefuse, fields)
			if m := c.expect(TypeRemoteInvitation, string(RemoteRefused)); m.SIPCode != tc.want {
				t.Fatalf("event %s", m)
			}
			if b := e.fb.next(t, "refuse"); b.sipCode != tc.want || b.response != "not now" {
				t.Fatalf("refuse %+v", b)
			}
		}
		ri := ring(t, e, "1005")
		expectInvitation(t, c, ri)
		c.requestError(TypeRefuse, map[string]any{"callId": ri.CallID(), "sipCode": 404}, CodeInvalidArgument)
		c.requestError(TypeHangup, map[string]any{"callId": ri.CallID()}, CodeInvalidState)
	})
}

func TestRemoteInvitationCanceledByCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()
		ri := ring(t, e, "1005")
		expectInvitation(t, c, ri)
		if err := ri.Cancel("caller hung up"); err != nil {
			t.Fatal(err)
		}
		if m := c.expect(TypeRemoteInvitation, string(RemoteCanceled)); m.Reason != "caller hung up" {
			t.Fatalf("event %s", m)
		}
		c.requestError(TypeAccept, map[string]any{"callId": ri.CallID()}, CodeUnknownCall)

		// Canceled while waiting for the callee to log in: the callee never sees it.
		ri = ring(t, e, "2000")
		_ = ri.Cancel("")
		late := e.dial()
		defer late.close()
		late.login("2000")
		late.expectNothing(time.Minute)
		e.fb.expectNone(t)
	})
}

func TestRemoteInvitationTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		// The callee never logs in: PEER_OFFLINE after 30 s.
		start := time.Now()
		ri := ring(t, e, "2000")
		if m := e.srv.Metrics().Snapshot(); m.PendingInvites != 1 {
			t.Fatalf("pending %d", m.PendingInvites)
		}
		b := e.fb.next(t, "abandon")
		if b.ri != ri || b.code != PeerOffline || time.Since(start) != 30*time.Second {
			t.Fatalf("after %v: %+v", time.Since(start), b)
		}

		// Delivered when the callee logs in within 30 s.
		ri = ring(t, e, "2000")
		time.Sleep(20 * time.Second)
		late := e.dial()
		late.login("2000")
		expectInvitation(t, late, ri)
		late.request(TypeReceived, map[string]any{"callId": ri.CallID()})
		e.fb.next(t, "ringing")
		late.close()
		if b := e.fb.next(t, "abandon"); b.ri != ri || b.code != NotLoggedIn {
			t.Fatalf("abandon %+v", b)
		}
		e.fb.next(t, "sessionClosed")

		// Not acknowledged within 30 s: PEER_NO_RESPONSE.
		ri = ring(t, e, "1005")
		expectInvitation(t, c, ri)
		start = time.Now()
		m := c.next(time.Minute)
		if m.State != string(RemoteFailure) || m.Code != string(PeerNoResponse) || time.Since(start) != 30*time.Second {
			t.Fatalf("after %v: %s", time.Since(start), m)
		}
		if b := e.fb.next(t, "abandon"); b.code != PeerNoResponse {
			t.Fatalf("abandon %+v", b)
		}

		// Acknowledged but not answered within 60 s: INVITATION_EXPIRE.
		ri = ring(t, e, "1005")
		expectInvitation(t, c, ri)
		start = time.Now()
		time.Sleep(25 * time.Second)
		c.request(TypeReceived, map[string]any{"callId": ri.CallID()})
		e.fb.next(t, "ringing")
		m = c.next(time.Minute)
		if m.Code != string(InvitationExpire) || time.Since(start) != 60*time.Second {
			t.Fatalf("after %v: %s", time.Since(start), m)
		}
		if b := e.fb.next(t, "abandon"); b.code != InvitationExpire {
			t.Fatalf("abandon %+v", b)
		}

		// Accepted but never confirmed (no ACK): ACCEPT_FAILURE after 32 s.
		ri = ring(t, e, "1005")
		expectInvitation(t, c, ri)
		c.request(TypeAccept, map[string]any{"callId": ri.CallID()})
		c.expect(TypeRemoteInvitation, string(RemoteAcceptSentToLocal))
		e.fb.next(t, "accept")
		start = time.Now()
		m = c.next(time.Minute)
		if m.Code != string(AcceptFailure) || time.Since(start) != 32*time.Second {
			t.Fatalf("after %v: %s", time.Since(start), m)
		}
		if b := e.fb.next(t, "abandon"); b.code != AcceptFailure {
			t.Fatalf("abandon %+v", b)
		}
		if err := ri.Confirm(); !errors.Is(err, ErrIllegalTransition) {
			t.Fatalf("late ACK: %v", err)
		}
	})
}

func TestRemoteInvitationAcceptFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, c := loggedIn(t)
		defer e.close()
		defer c.close()

		// The backend cannot send the 200.
		e.fb.onAccept = func(*RemoteInvitation) error { return &Error{Code: CodeInternal, Message: "transport down"} }
		ri := ring(t, e, "1005")
		expectInvitation(t, c, ri)
		c.request(TypeAccept, map[string]any{"callId": ri.CallID()})
		c.expect(TypeRemoteInvitation, string(RemoteAcceptSentToLocal))
		if m := c.expect(TypeRemoteInvitation, string(RemoteFailure)); m.Code != string(AcceptFailure) || m.Reason != "transport down" {
			t.Fatalf("event %s", m)
		}
		e.fb.next(t, "accept")
		e.fb.onAccept = nil

		// The backend reports the missing ACK itself.
		ri = ring(t, e, "1005")
		expectInvitation(t, c, ri)
		c.request(TypeAccept, map[string]any{"callId": ri.CallID()})
		c.expect(TypeRemoteInvitation, string(RemoteAcceptSentToLocal))
		e.fb.next(t, "accept")
		if err := ri.Fail(AcceptFailure, 0, "no ACK"); err != nil {
			t.Fatal(err)
		}
		c.expect(TypeRemoteInvitation, string(RemoteFailure))
		e.fb.expectNone(t)
	})
}

func TestDeliverInvitationValidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.close()
		for _, in := range []IncomingInvitation{
			{Caller: "1001", Callee: ""},
			{Caller: "1001", Callee: "has space"},
			{Caller: "", Callee: "1005"},
			{Caller: "1001", Callee: "1005", Content: string(make([]byte, MaxContentBytes+1))},
			{Caller: "1001", Callee: "1005", Content: "\xff"},
			{Caller: "1001", Callee: "1005", ChannelID: string(make([]byte, MaxChannelIDBytes+1))},
			{Caller: "1001", Callee: "1005", Offer: &SessionDescription{Type: "answer"}},
		} {
			var pe *Error
			if _, err := e.srv.DeliverInvitation(in); !errors.As(err, &pe) || pe.Code != CodeInvalidArgument {
				t.Errorf("DeliverInvitation(%.40q...): %v", in.Callee+"/"+in.Content, err)
			}
		}
		// At most maxCalls invitations wait for one user.
		for range 16 {
			ring(t, e, "2000")
		}
		if _, err := e.srv.DeliverInvitation(IncomingInvitation{Caller: "1001", Callee: "2000"}); err != ErrBusy {
			t.Fatalf("17th pending invitation: %v", err)
		}
		for range 16 {
			e.fb.next(t, "abandon")
		}
	})
}
