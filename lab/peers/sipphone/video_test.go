package sipphone

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestVideoBothWays: two phones with the Video option negotiate VP8 on a second m-line and
// carry synthetic VP8 both ways (frames split under the MTU, marker on each frame's last
// packet, key frames); a phone without it answers audio only, and a video phone calling it
// sends no video.
func TestVideoBothWays(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			a := newPhone(t, n, "alice", nil, Video("VP8", 400_000, 25))
			b := newPhone(t, n, "bob", nil, Video("vp8", 0, 0))
			c := newPhone(t, n, "carol", nil)
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, a, b, c)
			answered := make(chan *Call, 1)
			b.OnIncoming(answerInto(t, answered, nil))
			c.OnIncoming(answerInto(t, answered, nil))

			ca, err := a.Call(ctx, b.Contact().String())
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			cb := <-answered
			if !strings.Contains(string(ca.LocalSDP()), "m=video") || !strings.Contains(string(cb.LocalSDP()), "a=rtpmap:96 VP8/90000") {
				t.Fatalf("no video negotiated:\n%s\n%s", ca.LocalSDP(), cb.LocalSDP())
			}
			time.Sleep(2 * time.Second)
			va, vb := ca.Media().Stats().Video, cb.Media().Stats().Video
			for _, v := range []struct {
				name   string
				tx, rx VideoStats
			}{{"a->b", va, vb}, {"b->a", vb, va}} {
				if v.tx.FramesSent < 40 || float64(v.rx.FramesReceived) < 0.9*float64(v.tx.FramesSent) {
					t.Errorf("%s: sent %d frames, received %d", v.name, v.tx.FramesSent, v.rx.FramesReceived)
				}
				if v.rx.KeyFramesReceived == 0 || v.tx.PacketsSent <= v.tx.FramesSent {
					t.Errorf("%s: %+v / %+v", v.name, v.tx, v.rx)
				}
			}
			if va.PayloadType != 96 || va.Codec != "VP8" {
				t.Errorf("video stats %+v", va)
			}
			if err := ca.Hangup(ctx); err != nil {
				t.Fatal(err)
			}

			// An audio-only callee: the answer has no video, the caller sends none.
			cc, err := a.Call(ctx, c.Contact().String())
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			<-answered
			time.Sleep(300 * time.Millisecond)
			if s := cc.Media().Stats(); s.Video.PacketsSent != 0 || s.PacketsReceived == 0 {
				t.Errorf("audio-only call: %+v", s)
			}
			_ = cc.Hangup(ctx)
		})
	}
}

func TestVideoOption(t *testing.T) {
	n := newTestNetwork(t, "loopback")
	nw, ip := n.host(t)
	if _, err := New(Config{Net: nw, LocalIP: ip}, Video("H264", 0, 0)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("H264: %v", err)
	}
}
