package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/peers/webclient"
)

// TestBWEOpusNegotiatesRED places a BWE flow with Opus, RED and FlexFEC on (as siprtc tune's
// red.distance and fec set them) and checks the gateway's answer carries Opus with RED, and
// FlexFEC.
func TestBWEOpusNegotiatesRED(t *testing.T) {
	c, err := RFC8867("5.1", BWEUplink)
	if err != nil {
		t.Fatal(err)
	}
	c.Opus = true
	c.ClientOptions = []webclient.Option{webclient.WithRED(2), webclient.WithFlexFEC(5, 2)}
	c = c.withDefaults()
	cfg, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.GatewayConf += "\n[media]\nred=1\nred_distance=2\nflexfec=1\nfec_media_packets=5\nfec_packets=2\n"
	sdp, err := In(t, cfg, func(w *World) (string, error) {
		f, err := startBWEFlow(w, c, 0, BWEFlow{})
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(w.Context(), 30*time.Second)
		defer cancel()
		if err := f.place(ctx, w); err != nil {
			return "", err
		}
		call, _ := f.calls()
		rd := call.PeerConnection().RemoteDescription()
		if rd == nil {
			return "", errors.New("no remote description")
		}
		return rd.SDP, call.Hangup(ctx, "done")
	})
	if err != nil {
		t.Fatal(err)
	}
	audio, video, _ := strings.Cut(strings.ToLower(sdp), "m=video")
	for _, want := range []string{"opus/48000/2", "red/48000/2"} {
		if !strings.Contains(audio, want) {
			t.Errorf("the gateway's audio answer lacks %s:\n%s", want, audio)
		}
	}
	if strings.Contains(audio, "pcmu/8000") {
		t.Errorf("the gateway's audio answer has PCMU:\n%s", audio)
	}
	if !strings.Contains(video, "flexfec-03/90000") {
		t.Errorf("the gateway's video answer lacks FlexFEC:\n%s", video)
	}
}
