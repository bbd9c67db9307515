package webclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/siprtc/siprtc/gateway/signaling"
)

// TestLogin: a good token logs in; a forged or expired one is refused with the protocol's code
// and the connection stays usable; a second login of the same user kicks the first.
func TestLogin(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		forged := e.client(t, "alice", func(c *Config) {
			c.Token = signaling.MakeToken([]byte("not the app secret"), "alice", time.Now().Add(time.Hour))
		})
		if err := forged.Connect(ctx); !IsCode(err, string(signaling.CodeInvalidToken)) {
			t.Fatalf("forged token: %v, want INVALID_TOKEN", err)
		}
		if err := forged.Login(ctx, signaling.MakeToken(testSecret, "alice", time.Now().Add(-time.Second))); !IsCode(err, string(signaling.CodeTokenExpired)) {
			t.Fatalf("expired token: %v, want TOKEN_EXPIRED", err)
		}
		// Same connection, a good token now.
		if err := forged.Login(ctx, signaling.MakeToken(testSecret, "alice", time.Now().Add(time.Hour))); err != nil {
			t.Fatalf("login after failures: %v", err)
		}
		if forged.User() != "alice" || forged.SessionID() == "" {
			t.Errorf("user %q session %q", forged.User(), forged.SessionID())
		}

		second := e.connected(t, ctx, "alice", nil)
		if _, err := forged.WaitEvent(ctx, func(ev Event) bool { return ev.Type == "kicked" }); err != nil {
			t.Fatalf("no kicked event: %v", err)
		}
		waitDone(t, ctx, "kicked connection", forged.Disconnected())
		if code := websocket.CloseStatus(forged.Err()); code != signaling.CloseKicked {
			t.Errorf("kicked connection closed with %v (%v), want 4001", code, forged.Err())
		}
		if _, err := forged.Call(ctx, "1001"); !errors.Is(err, ErrNotConnected) {
			t.Errorf("call after kick: %v, want ErrNotConnected", err)
		}
		if second.User() != "alice" {
			t.Errorf("second session: user %q", second.User())
		}
	})
}

// TestOutboundCall: the client calls a SIP number through every LocalInvitation state to
// ACCEPTED_BY_REMOTE, audio flows both ways with the right content, and the client hangs up.
func TestOutboundCall(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", nil)
		c, err := cl.Call(ctx, "1001", WithContent(`{"video":false}`), WithChannelID("room-42"))
		must(t, err)
		if c.ID() == "" {
			t.Fatal("no call id after the invite")
		}
		if _, err := c.WaitState(ctx, string(signaling.LocalReceivedByRemote)); err != nil {
			t.Fatal(err)
		}
		acc, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		if acc.SIPCode != 200 || acc.Response != "hello from 1001" {
			t.Errorf("accepted with %d %q", acc.SIPCode, acc.Response)
		}
		wantStates(t, c, "SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "ACCEPTED_BY_REMOTE")
		if !c.Established() {
			t.Error("accepted call not established")
		}
		if got := c.States()[1].SIPCode; got != 180 {
			t.Errorf("RECEIVED_BY_REMOTE with SIP %d, want 180", got)
		}
		inv, err := e.side.waitOp(ctx, "invite", c.ID())
		must(t, err)
		if inv.desc == nil || inv.desc.Type != "offer" || inv.user != "alice" {
			t.Errorf("invite reached the backend as %+v", inv)
		}
		// The client trickled its candidates, ending with end-of-candidates.
		if _, err := e.side.waitOp(ctx, "candidate", c.ID()); err != nil {
			t.Error(err)
		}

		must(t, c.WaitConnected(ctx))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		must(t, c.WaitMedia(ctx, 100, 0)) // 2 s of audio
		time.Sleep(200 * time.Millisecond)
		hz, err := c.ToneFrequency()
		wantTone(t, "client", hz, err, sideTone)
		hz, err = sc.media().toneFrequency()
		wantTone(t, "SIP side", hz, err, clientTone)

		s := c.Stats()
		if s.Audio.SendCodec != "PCMU" || s.Audio.ReceiveCodec != "PCMU" {
			t.Errorf("codecs: send %q receive %q, want PCMU (the client's first preference)", s.Audio.SendCodec, s.Audio.ReceiveCodec)
		}
		if s.Audio.Lost != 0 || s.Audio.Duplicates != 0 || s.Audio.PacketsSent < 100 {
			t.Errorf("audio: %+v", s.Audio)
		}
		if s.Accepted.Before(s.Invited) || s.Connected.IsZero() {
			t.Errorf("times: invited %v accepted %v connected %v", s.Invited, s.Accepted, s.Connected)
		}
		checkSentAudio(t, c)

		must(t, c.Hangup(ctx, "done"))
		waitDone(t, ctx, "client call", c.Done())
		if op, err := e.side.waitOp(ctx, "hangup", c.ID()); err != nil || op.reason != "done" {
			t.Errorf("backend hangup %+v: %v", op, err)
		}
		if c.EndReason() != "local hangup" {
			t.Errorf("end reason %q", c.EndReason())
		}
		if len(cl.Calls()) != 0 {
			t.Errorf("%d calls left", len(cl.Calls()))
		}
	})
}

// checkSentAudio: 20 ms PCMU frames, sequence numbers and timestamps step by one frame, the
// marker only on the first packet. Sizes are the RTP header as sent (with the transport-wide
// sequence number extension) plus 160 bytes.
func checkSentAudio(t *testing.T, c *Call) {
	t.Helper()
	sent, received := c.Packets()
	var audio []PacketRecord
	for _, p := range sent {
		if p.Kind == "audio" {
			audio = append(audio, p)
		}
	}
	if len(audio) < 50 || len(received) < 50 {
		t.Fatalf("%d audio packets sent, %d received", len(audio), len(received))
	}
	if !audio[0].Marker {
		t.Error("first audio packet without the marker")
	}
	for i := 1; i < len(audio); i++ {
		p, q := audio[i-1], audio[i]
		if q.Seq != p.Seq+1 || q.Timestamp != p.Timestamp+160 || q.Marker || q.Size < 12+160 || q.PayloadType != 0 {
			t.Fatalf("packet %d after %+v: %+v", i, p, q)
		}
	}
	for _, r := range received {
		if r.Kind != "audio" || r.PayloadType != 0 || r.At.IsZero() {
			t.Fatalf("received %+v", r)
		}
	}
}

// TestRefused: the callee is busy: RECEIVED_BY_REMOTE, then REFUSED_BY_REMOTE with 486.
func TestRefused(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", nil)
		c, err := cl.Call(ctx, "busy")
		must(t, err)
		ev, err := c.WaitState(ctx, string(signaling.LocalRefusedByRemote))
		must(t, err)
		if ev.SIPCode != 486 || ev.Response != "busy here" {
			t.Errorf("refused with %d %q", ev.SIPCode, ev.Response)
		}
		waitDone(t, ctx, "refused call", c.Done())
		wantStates(t, c, "SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "REFUSED_BY_REMOTE")
		if !strings.Contains(c.EndReason(), "486") {
			t.Errorf("end reason %q", c.EndReason())
		}
		if _, err := c.WaitState(ctx, string(signaling.LocalAcceptedByRemote)); !errors.Is(err, ErrCallEnded) {
			t.Errorf("waiting for acceptance of a refused call: %v", err)
		}
	})
}

// TestCancel: the client withdraws a ringing call.
func TestCancel(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", nil)
		c, err := cl.Call(ctx, "noanswer")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalReceivedByRemote))
		must(t, err)
		if err := c.Hangup(ctx, ""); !IsCode(err, string(signaling.CodeInvalidState)) {
			t.Errorf("hangup of a ringing call: %v, want INVALID_STATE", err)
		}
		must(t, c.Cancel(ctx))
		_, err = c.WaitState(ctx, string(signaling.LocalCanceled))
		must(t, err)
		waitDone(t, ctx, "canceled call", c.Done())
		if op, err := e.side.waitOp(ctx, "cancel", c.ID()); err != nil || op.state != "CANCELED" {
			t.Errorf("backend cancel %+v: %v", op, err)
		}
		wantStates(t, c, "SENT_TO_REMOTE", "RECEIVED_BY_REMOTE", "CANCELED")
	})
}

// TestInboundCall: a SIP call to the client: the default handler acknowledges at once and
// accepts after its delay with its answer to the gateway's offer; audio flows both ways; the
// SIP side hangs up.
func TestInboundCall(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "bob", nil, WithAutoAccept(300*time.Millisecond))
		sc, err := e.side.invite("1001", "bob", false)
		must(t, err)
		var c *Call
		for c == nil {
			for _, x := range cl.Calls() {
				c = x
			}
			if c == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if c.ID() != sc.id || c.Outbound() || c.Peer() != "1001" {
			t.Fatalf("call %q from %q (outbound %v), want %q from 1001", c.ID(), c.Peer(), c.Outbound(), sc.id)
		}
		_, err = c.WaitState(ctx, string(signaling.RemoteAccepted))
		must(t, err)
		wantStates(t, c, "INVITATION_RECEIVED", "ACCEPT_SENT_TO_LOCAL", "ACCEPTED")
		ops := e.side.opsOf(sc.id)
		if len(ops) < 2 || ops[0] != "ringing" || ops[1] != "accept" {
			t.Errorf("backend saw %v, want ringing then accept", ops)
		}
		acc, err := e.side.waitOp(ctx, "accept", sc.id)
		must(t, err)
		if acc.desc == nil || acc.desc.Type != "answer" {
			t.Errorf("accept carried %+v, want the client's answer", acc.desc)
		}
		st := c.States()
		if gap := st[1].At.Sub(st[0].At); gap < 300*time.Millisecond {
			t.Errorf("accepted %v after the invitation, want the 300 ms auto-accept delay", gap)
		}

		must(t, c.WaitMedia(ctx, 100, 0))
		time.Sleep(200 * time.Millisecond)
		hz, err := c.ToneFrequency()
		wantTone(t, "client", hz, err, sideTone)
		hz, err = sc.media().toneFrequency()
		wantTone(t, "SIP side", hz, err, clientTone)

		must(t, sc.hangup())
		waitDone(t, ctx, "client call", c.Done())
		if c.EndReason() != "hangup: BYE" {
			t.Errorf("end reason %q", c.EndReason())
		}
		if _, err := cl.WaitEvent(ctx, func(ev Event) bool { return ev.Type == "hangup" && ev.CallID == sc.id }); err != nil {
			t.Error(err)
		}
	})
}

// TestRefuseInvitation: the client refuses a call as busy; the backend gets 486.
func TestRefuseInvitation(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "bob", nil, WithoutAutoAccept())
		sc, err := e.side.invite("1001", "bob", false)
		must(t, err)
		var inv *Invitation
		select {
		case inv = <-cl.Invitations():
		case <-ctx.Done():
			t.Fatal("no invitation")
		}
		if inv.Caller != "1001" || inv.Content != "call from 1001" || inv.Offer == nil {
			t.Errorf("invitation %+v", inv)
		}
		if _, err := e.side.waitOp(ctx, "ringing", sc.id); err != nil {
			t.Error(err)
		}
		must(t, inv.Refuse(ctx, "busy", 486))
		_, err = inv.Call().WaitState(ctx, string(signaling.RemoteRefused))
		must(t, err)
		waitDone(t, ctx, "refused call", inv.Call().Done())
		if op, err := e.side.waitOp(ctx, "refuse", sc.id); err != nil || op.sipCode != 486 || op.response != "busy" {
			t.Errorf("backend refuse %+v: %v", op, err)
		}
		if _, err := inv.Accept(ctx, ""); !errors.Is(err, ErrAlreadyAnswered) {
			t.Errorf("accept after refuse: %v", err)
		}
	})
}

// TestDTMF: digits both ways, in the audio stream (RFC 4733) and as signalling messages.
func TestDTMF(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", nil)
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitMedia(ctx, 10, 0))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)

		// Client -> SIP side.
		must(t, c.SendDTMF(ctx, "123#", 100*time.Millisecond))
		must(t, c.SendDTMFMessage(ctx, "5", 160*time.Millisecond))
		if op, err := e.side.waitOp(ctx, "dtmf", c.ID()); err != nil || op.dtmf.Digit != "5" || op.dtmf.Duration != 160*time.Millisecond {
			t.Errorf("backend dtmf %+v: %v", op, err)
		}
		// SIP side -> client.
		must(t, sc.media().sendDTMF(ctx, "9*", 120*time.Millisecond))
		must(t, sc.li.SendDTMF(signaling.DTMF{Digit: "7", Duration: 200 * time.Millisecond}))
		time.Sleep(300 * time.Millisecond) // the last end packets, the message

		got := sc.media().dtmfEvents()
		if digits(got) != "123#" {
			t.Errorf("SIP side heard %q in RTP, want 123#", digits(got))
		}
		for _, ev := range got {
			if ev.Source != DTMFFromRTP || !ev.Ended || ev.Duration != 100*time.Millisecond {
				t.Errorf("SIP side event %+v, want an ended 100 ms RTP event", ev)
			}
		}
		heard := c.DTMF()
		if digits(heard) != "9*7" {
			t.Errorf("client heard %q, want 9*7", digits(heard))
		}
		for i, ev := range heard {
			want := DTMFFromRTP
			if i == 2 {
				want = DTMFFromMessage
			}
			if ev.Source != want {
				t.Errorf("client event %d %+v, want source %s", i, ev, want)
			}
		}
		s := c.Stats()
		if s.DTMFSent != 4 || s.DTMFMessagesSent != 1 {
			t.Errorf("sent %d RTP digits and %d messages", s.DTMFSent, s.DTMFMessagesSent)
		}
		// The tone resumes after the digits, its content intact.
		time.Sleep(2 * time.Second)
		hz, err := sc.media().toneFrequency()
		wantTone(t, "SIP side after DTMF", hz, err, clientTone)
		if err := c.SendDTMF(ctx, "x", 100*time.Millisecond); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("digit x: %v", err)
		}
		// The SIP side hangs up.
		must(t, sc.hangup())
		waitDone(t, ctx, "client call", c.Done())
	})
}

func digits(evs []DTMFEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Digit)
	}
	return b.String()
}
