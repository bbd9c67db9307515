package webclient

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/netem"
)

// TestREDAndFlexFEC: with RED on Opus and FlexFEC on video both ways and 5% loss each way,
// packets recovered from RED and FEC show in the client's receive log and counters, its sent
// log carries RED-framed audio and FEC packets, and the other side recovers the client's
// losses too. NACK is left to what FEC cannot repair. In virtual time.
func TestREDAndFlexFEC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e := netemEnv(t, 20*time.Millisecond)
		e.side.rtcCfg.RED, e.side.rtcCfg.FlexFEC = true, true
		host, _ := e.netem.Host("client")
		lossy := netem.LinkConfig{Delay: netem.DelayModel{Base: 20 * time.Millisecond}, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}}
		must(t, host.Up.Set(lossy))
		must(t, host.Down.Set(lossy))
		cl := e.connected(t, ctx, "alice", func(c *Config) { c.Codecs, c.Video = []string{"opus", "pcmu"}, true },
			WithVideo(400_000, 30, 3*time.Second), WithRED(1), WithFlexFEC(5, 2))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitConnected(ctx))
		sc, err := e.side.waitCall(ctx, c.ID())
		must(t, err)
		time.Sleep(15 * time.Second)

		sent, received := c.Packets()
		count := func(recs []PacketRecord, kind, repaired string) (n int) {
			for _, r := range recs {
				if r.Kind == kind && r.Repaired == repaired {
					n++
				}
			}
			return n
		}
		redPT := uint8(0)
		for _, r := range sent {
			if r.Kind == "audio" && r.PayloadType != 111 {
				redPT = r.PayloadType
			}
		}
		st := c.Stats()
		sa, sv, _ := sc.media().stats()
		t.Logf("client received: audio red %d, nack %d; video fec %d, rtx %d; sent: fec %d, RED PT %d; repair %+v",
			count(received, "audio", RepairRED), count(received, "audio", RepairNACK),
			count(received, "video", RepairFEC), count(received, "video", RepairRTX), count(sent, "video", RepairFEC), redPT, st.Repair)
		t.Logf("client audio %+v\nclient video %+v\nside audio %+v\nside video %+v", st.Audio, st.Video.MediaStats, sa, sv.MediaStats)
		if count(received, "audio", RepairRED) == 0 || count(received, "video", RepairFEC) == 0 {
			t.Error("nothing recovered from RED or FEC")
		}
		if st.Audio.REDRecovered == 0 || st.Video.FECRecovered == 0 || st.Video.FECSent == 0 || st.Repair.REDSent == 0 {
			t.Errorf("counters: audio %+v video %+v repair %+v", st.Audio, st.Video.MediaStats, st.Repair)
		}
		if count(sent, "video", RepairFEC) == 0 || redPT == 0 {
			t.Errorf("sent log: %d FEC packets, RED payload type %d", count(sent, "video", RepairFEC), redPT)
		}
		if sa.REDRecovered == 0 || sv.FECRecovered == 0 {
			t.Errorf("the other side recovered nothing: audio %+v video %+v", sa, sv.MediaStats)
		}
		if st.Audio.Lost > 3 || st.Video.Lost > 10 {
			t.Errorf("lost after repair: audio %d video %d", st.Audio.Lost, st.Video.Lost)
		}
	})
}

// TestFlexFECUnderBWE: with FlexFEC on, the encoder leaves the FEC packets room in the estimate:
// what the client sends (FEC included) stays near the target on a 1 Mbit/s uplink.
func TestFlexFECUnderBWE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		const capacity = 1_000_000
		_, c := bweCallWith(t, ctx, capacity, nil, 40*time.Second, rtc.BWEConfig{}, func(c *rtc.Config) { c.FlexFEC = true }, WithFlexFEC(5, 2))
		samples := c.BWESamples()
		for i, s := range samples {
			if i%20 == 0 {
				t.Logf("%5.1fs target %7d (loss %7d delay %7d) sending %7d video %7d loss %.3f %s/%s est %v thr %v",
					s.At.Sub(samples[0].At).Seconds(), s.Target, s.LossTarget, s.DelayTarget, s.SendingRate, s.VideoBitrate,
					s.LossRate, s.DelayState, s.Usage, s.DelayEstimate, s.DelayThreshold)
			}
		}
		from := samples[0].At.Add(20 * time.Second)
		target := meanOf(samples, from, func(s BWESample) int { return s.Target })
		sending := meanOf(samples, from, func(s BWESample) int { return s.SendingRate })
		video := meanOf(samples, from, func(s BWESample) int { return s.VideoBitrate })
		st := c.Stats()
		t.Logf("last 20 s: target %.0f, sending %.0f, video %.0f; FEC sent %d of %d video packets", target, sending, video, st.Video.FECSent, st.Video.PacketsSent)
		if st.Video.FECSent == 0 {
			t.Fatal("no FEC sent")
		}
		if target > capacity || sending > 1.2*target || sending < 0.7*target {
			t.Errorf("target %.0f, sending %.0f on a %d bit/s link", target, sending, capacity)
		}
	})
}
