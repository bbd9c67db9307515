package webclient

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/internal/g711"
	"github.com/siprtc/siprtc/lab/netem"
)

// TestOpus: with Opus negotiated the client sends well-formed silent Opus at the configured
// size and 48 kHz timestamps, and says honestly that it cannot check Opus content.
func TestOpus(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", func(c *Config) { c.Codecs = []string{"opus", "pcmu"} }, WithOpusBitrate(24_000))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitMedia(ctx, 50, 0))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		s := c.Stats()
		if s.Audio.SendCodec != "opus" || s.Audio.ReceiveCodec != "opus" {
			t.Errorf("codecs: send %q receive %q, want opus", s.Audio.SendCodec, s.Audio.ReceiveCodec)
		}
		if _, err := c.ToneFrequency(); !errors.Is(err, ErrUndecodable) {
			t.Errorf("tone of Opus: %v, want ErrUndecodable", err)
		}
		sent, _ := c.Packets()
		var audio []PacketRecord
		for _, p := range sent {
			if p.Kind == "audio" {
				audio = append(audio, p)
			}
		}
		for i := 1; i < len(audio); i++ {
			if audio[i].Timestamp-audio[i-1].Timestamp != 960 || audio[i].PayloadType != 111 {
				t.Fatalf("opus packet %d: %+v after %+v", i, audio[i], audio[i-1])
			}
		}
		if st := sc.media(); st != nil {
			a, _, _ := st.stats()
			if a.PacketsReceived < 40 || a.BytesReceived != a.PacketsReceived*60 {
				t.Errorf("SIP side received %d packets, %d bytes; want 60-byte packets (24 kbit/s)", a.PacketsReceived, a.BytesReceived)
			}
		}
	})
}

// TestVideo: synthetic VP8 both ways with key frames; and a client without video answers a
// video offer receive-only and counts what it gets.
func TestVideo(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", func(c *Config) { c.Video = true }, WithVideo(400_000, 30, time.Second))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitMedia(ctx, 50, 50))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		time.Sleep(2 * time.Second)
		s := c.Stats()
		if s.Video.KeyFramesReceived < 1 || s.Video.FramesReceived < 50 || s.Video.Lost != 0 {
			t.Errorf("client video received: %+v", s.Video)
		}
		if s.Video.FramesSent < 60 || s.Video.KeyFramesSent < 2 {
			t.Errorf("client video sent: %d frames, %d key frames", s.Video.FramesSent, s.Video.KeyFramesSent)
		}
		// The bitrate follows the target: 400 kbit/s of payload over the frames sent.
		secs := float64(s.Video.FramesSent) / 30
		if rate := float64(s.Video.BytesSent) * 8 / secs; rate < 0.8*400_000 || rate > 1.2*400_000 {
			t.Errorf("video sent at %.0f bit/s, want about 400 kbit/s", rate)
		}
		_, sv, _ := sc.media().stats()
		if sv.FramesReceived < 60 || sv.KeyFramesReceived < 2 {
			t.Errorf("SIP side video received: %+v", sv)
		}

		// A client without video, offered video.
		audioOnly := e.connected(t, ctx, "bob", nil)
		in, err := e.side.invite("1002", "bob", true)
		must(t, err)
		var ic *Call
		for ic == nil {
			for _, x := range audioOnly.Calls() {
				ic = x
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, err = ic.WaitState(ctx, string(signaling.RemoteAccepted))
		must(t, err)
		must(t, ic.WaitMedia(ctx, 50, 30))
		if s := ic.Stats(); s.Video.PacketsSent != 0 {
			t.Errorf("an audio-only client sent %d video packets", s.Video.PacketsSent)
		}
		must(t, ic.Hangup(ctx, ""))
		if _, err := e.side.waitOp(ctx, "hangup", in.id); err != nil {
			t.Error(err)
		}
	})
}

// TestSessionEnd: closing the client ends its calls at both ends.
func TestSessionEnd(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, ctx context.Context, e *env) {
		cl := e.connected(t, ctx, "alice", nil)
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		must(t, cl.Close())
		waitDone(t, ctx, "client call", c.Done())
		if _, err := e.side.waitOp(ctx, "sessionClosed", ""); err != nil {
			t.Error(err)
		}
		waitDone(t, ctx, "SIP side call", sc.ended)
		if _, err := cl.Call(ctx, "1001"); !errors.Is(err, ErrClosed) {
			t.Errorf("call after close: %v", err)
		}
	})
}

func TestG711RoundTrip(t *testing.T) {
	for s := -32768; s <= 32767; s += 7 {
		for _, c := range []struct {
			name string
			enc  func(int16) byte
			dec  func(byte) int16
		}{{"ulaw", g711.EncodeULaw, g711.DecodeULaw}, {"alaw", g711.EncodeALaw, g711.DecodeALaw}} {
			got := int(c.dec(c.enc(int16(s))))
			// Companding keeps about 4 significant bits: the error grows with the magnitude.
			if tol := max(abs(s)/16, 16); abs(got-s) > tol {
				t.Fatalf("%s: %d -> %d", c.name, s, got)
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestOpusFrame: code 0 for the smallest size, code 3 with padding for the others (RFC 6716
// 3.2.5): the padding accounts exactly for the requested size and the frame is the silence
// frame.
func TestOpusFrame(t *testing.T) {
	if f := opusFrame(3); len(f) != 3 || f[0] != 0xF8 {
		t.Errorf("3 bytes: % x", f)
	}
	for _, size := range []int{6, 60, 80, 259, 260, 261, 600, 1275} {
		f := opusFrame(size)
		if len(f) != size || f[0] != 0xFB || f[1] != 0x41 {
			t.Fatalf("size %d: len %d, header % x", size, len(f), f[:2])
		}
		pad, i := 0, 2
		for {
			b := int(f[i])
			i++
			if b == 255 {
				pad += 254
				continue
			}
			pad += b
			break
		}
		frame := f[i : len(f)-pad]
		if string(frame) != string(opusSilence[:]) {
			t.Errorf("size %d: frame % x (padding %d)", size, frame, pad)
		}
	}
}

func TestTelephoneEvent(t *testing.T) {
	ev := telephoneEvent{code: 11, end: true, volume: 10, duration: 800}
	b := ev.marshal()
	if len(b) != 4 || b[0] != 11 || b[1] != 0x8A || b[2] != 0x03 || b[3] != 0x20 {
		t.Errorf("marshal: % x", b)
	}
	if got, ok := parseTelephoneEvent(b); !ok || got != ev {
		t.Errorf("parse: %+v", got)
	}
	for i, d := range dtmfDigits {
		if code, err := dtmfCode(string(d)); err != nil || int(code) != i || digitOf(code) != string(d) {
			t.Errorf("digit %c: %d %v", d, code, err)
		}
	}
	if code, err := dtmfCode("b"); err != nil || code != 13 {
		t.Errorf("lower-case b: %d %v", code, err)
	}
}

// TestNACKRepairsLoss: with 5% random loss each way on the client's link, the client's NACKs
// (gateway/rtc registers NACK feedback for audio) get lost audio resent, and its counters show
// the repair. On the lab network, in virtual time.
func TestNACKRepairsLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e := netemEnv(t, 20*time.Millisecond)
		cl := e.connected(t, ctx, "alice", nil)
		lossy := netem.LinkConfig{Delay: netem.DelayModel{Base: 20 * time.Millisecond}, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}}
		host, _ := e.netem.Host("client")
		must(t, host.Up.Set(lossy))
		must(t, host.Down.Set(lossy))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitConnected(ctx))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		time.Sleep(20 * time.Second)

		s := c.Stats()
		sa, _, _ := sc.media().stats()
		t.Logf("client: received %d, lost %d, NACKs sent %d (%d packets), retransmitted %d; side: received %d, lost %d",
			s.Audio.PacketsReceived, s.Audio.Lost, s.Repair.NACKsSent, s.Repair.NACKedSent, s.Repair.Retransmissions,
			sa.PacketsReceived, sa.Lost)
		if s.Repair.NACKsSent == 0 || s.Repair.Retransmissions == 0 || s.Repair.NACKsReceived == 0 {
			t.Errorf("repair counters: %+v", s.Repair)
		}
		if s.Audio.PacketsReceived < 950 || s.Audio.Lost > 2 || sa.Lost > 2 {
			t.Errorf("after repair: client received %d lost %d, side lost %d (of about 1000 each way)",
				s.Audio.PacketsReceived, s.Audio.Lost, sa.Lost)
		}
		hz, err := c.ToneFrequency()
		wantTone(t, "client", hz, err, sideTone)
	})
}
