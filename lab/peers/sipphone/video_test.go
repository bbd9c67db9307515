package sipphone

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestVideoBothWays: two phones with the Video option negotiate VP8 (or H.264) on a second
// m-line and carry the synthetic video both ways (frames split under the MTU, marker on each
// frame's last packet, key frames; H.264's NAL units intact); a phone without it answers audio
// only, and a video phone calling it sends no video.
func TestVideoBothWays(t *testing.T) {
	for _, tc := range []struct{ network, codec string }{
		{networks[0], "VP8"}, {networks[1], "VP8"}, {networks[0], "H264"}, {networks[1], "H264"},
	} {
		network, codec := tc.network, tc.codec
		t.Run(codec+"/"+network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			a := newPhone(t, n, "alice", nil, Video(codec, 400_000, 25))
			b := newPhone(t, n, "bob", nil, Video(strings.ToLower(codec), 0, 0))
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
			if !strings.Contains(string(ca.LocalSDP()), "m=video") || !strings.Contains(string(cb.LocalSDP()), "a=rtpmap:96 "+codec+"/90000") {
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
				if h264 := codec == "H264"; h264 && (v.rx.NALUnits < v.rx.FramesReceived || v.rx.CorruptNALUnits != 0) ||
					!h264 && v.rx.NALUnits != 0 {
					t.Errorf("%s: %d NAL units (%d corrupt) in %d frames", v.name, v.rx.NALUnits, v.rx.CorruptNALUnits, v.rx.FramesReceived)
				}
			}
			if va.PayloadType != 96 || va.Codec != codec {
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
	if _, err := New(Config{Net: nw, LocalIP: ip}, Video("AV1", 0, 0)); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("AV1: %v", err)
	}
	p, err := New(Config{Net: nw, LocalIP: ip}, Video("h264", 0, 0))
	if err != nil || p.opts.video.codec != "H264" {
		t.Errorf("h264: %v", err)
	}
}
