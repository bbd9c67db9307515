package scenario

import (
	"math"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/lab/netem"
)

func TestARQResidual(t *testing.T) {
	b := ARQCase{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.1}, RTT: 50 * time.Millisecond, FPS: 30}
	if got := arqResidual(b, 2); math.Abs(got-1e-3) > 1e-12 {
		t.Errorf("bernoulli 10%%, 2 rounds: %v, want 1e-3", got)
	}
	g := ARQCase{Loss: netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.3, LossBad: 1}, RTT: 200 * time.Millisecond, FPS: 30}
	pi := 0.01 / 0.31
	if got := arqResidual(g, 0); math.Abs(got-pi) > 1e-12 {
		t.Errorf("gilbert, no round: %v, want the stationary loss %v", got, pi)
	}
	// 200 ms: at least 10 audio and 6 video packets between two transmissions of one packet.
	q := pi + (1-pi)*math.Pow(0.69, 16)
	if got := arqResidual(g, 1); math.Abs(got-pi*q) > 1e-12 {
		t.Errorf("gilbert, one round: %v, want %v", got, pi*q)
	}
	if rate, corr := lossModelStats(g.Loss); math.Abs(rate-pi) > 1e-12 || math.Abs(corr-0.69) > 1e-12 {
		t.Errorf("gilbert stats: %v %v", rate, corr)
	}
	if n := effectiveSample(1000, 0.69); n != 183 {
		t.Errorf("effective sample: %d", n)
	}
	if n := effectiveSample(1000, 0); n != 1000 {
		t.Errorf("effective sample without correlation: %d", n)
	}
}

func TestARQWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	log := []arqRecv{
		{at: at(0), ssrc: 1, seq: 65534},
		{at: at(20), ssrc: 1, seq: 65535}, // first in the window
		{at: at(60), ssrc: 1, seq: 1},     // 0 lost, repaired below
		{at: at(80), ssrc: 1, seq: 2},     // last original in the window
		{at: at(90), ssrc: 9, seq: 7},     // another source: ignored
		{at: at(150), ssrc: 1, seq: 0, repaired: metrics.RepairNACK},
		{at: at(160), ssrc: 1, seq: 3}, // after the window
	}
	got := arqWindow(log, at(10), at(100))
	var seqs []uint16
	for _, p := range got {
		seqs = append(seqs, p.Seq)
	}
	want := []uint16{65535, 1, 2, 0}
	if len(seqs) != len(want) {
		t.Fatalf("window: %v, want %v", seqs, want)
	}
	for i := range want {
		if seqs[i] != want[i] {
			t.Fatalf("window: %v, want %v", seqs, want)
		}
	}
}

// TestMeasureARQ runs a short case each way: packets flow, losses are repaired, the counts add
// up.
func TestMeasureARQ(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: leaves out the emulated calls (a few seconds each)")
	}
	for _, path := range []MediaPath{ClientToGateway, GatewayToClient} {
		c := ARQCase{Path: path, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}, RTT: 50 * time.Millisecond, Duration: 5 * time.Second}
		res, err := In(t, c.WorldConfig(), func(w *World) (ARQResult, error) { return MeasureARQ(w, c) })
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		if res.ChannelDropped == 0 || res.ChannelLoss <= 0 {
			t.Errorf("%s: the channel lost nothing: %d of %d", c.Name(), res.ChannelDropped, res.ChannelOffered)
		}
		for _, st := range []ARQStream{res.Audio, res.Video} {
			r := st.Receiver
			if r.Expected < 100 || st.Originals < 100 {
				t.Errorf("%s %s: %d expected, %d originals", c.Name(), st.Kind, r.Expected, st.Originals)
			}
			if r.Repaired.Total == 0 || st.Retransmissions == 0 {
				t.Errorf("%s %s: nothing repaired (%d) or retransmitted (%d)", c.Name(), st.Kind, r.Repaired.Total, st.Retransmissions)
			}
			if st.Rounds != 2 {
				t.Errorf("%s %s: %d rounds at 50 ms within 400 ms, want 2", c.Name(), st.Kind, st.Rounds)
			}
		}
	}
}

// TestMeasureARQAudioRTX: a client that offers audio RTX has its audio repaired over RTX each
// way through the gateway (the gateway sends audio RTX, which pion alone does not); a client
// that does not (a browser) keeps plain retransmissions in the audio stream.
func TestMeasureARQAudioRTX(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: leaves out the emulated calls (a few seconds each)")
	}
	const gatewayAudioRTX = `siprtc_media_packets_repaired_total{leg="webrtc",kind="audio"}`
	for _, tc := range []struct {
		path     MediaPath
		audioRTX bool
	}{{ClientToGateway, true}, {GatewayToClient, true}, {ClientToGateway, false}, {GatewayToClient, false}} {
		c := ARQCase{Path: tc.path, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}, RTT: 50 * time.Millisecond, Duration: 5 * time.Second, AudioRTX: tc.audioRTX}
		res, err := In(t, c.WorldConfig(), func(w *World) (ARQResult, error) { return MeasureARQ(w, c) })
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		r := res.Audio.Receiver
		// Client to gateway, the phone sees repairs but not how the gateway got them: the
		// gateway's counter of audio repaired over the client's RTX stream says.
		overRTX := int(res.Gateway[gatewayAudioRTX])
		if tc.path == GatewayToClient {
			overRTX = r.Repaired.RTX
		}
		t.Logf("%s: audio repaired %d (%d over RTX), %d lost of %d", c.Name(), r.Repaired.Total, overRTX, r.Lost, r.Expected)
		if r.Repaired.Total == 0 {
			t.Fatalf("%s: no audio repaired", c.Name())
		}
		switch {
		case tc.audioRTX && overRTX < r.Repaired.Total*8/10:
			t.Errorf("%s: %d of %d audio repairs over RTX, want them all (but for reordering)", c.Name(), overRTX, r.Repaired.Total)
		case !tc.audioRTX && overRTX != 0:
			t.Errorf("%s: %d audio repairs over RTX without audio RTX negotiated", c.Name(), overRTX)
		}
	}
}
