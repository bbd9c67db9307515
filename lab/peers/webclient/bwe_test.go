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

// bweCall places a video call from a client with bandwidth estimation whose uplink is limited
// to capacity (20 ms one way; schedule changes it later), and lets it run for d.
func bweCall(t *testing.T, ctx context.Context, capacity int64, schedule []netem.Phase, d time.Duration, bwe rtc.BWEConfig, opts ...Option) (*env, *Call) {
	return bweCallWith(t, ctx, capacity, schedule, d, bwe, nil, opts...)
}

// bweCallWith is bweCall with side adjusting the other side's rtc configuration.
func bweCallWith(t *testing.T, ctx context.Context, capacity int64, schedule []netem.Phase, d time.Duration, bwe rtc.BWEConfig,
	side func(*rtc.Config), opts ...Option) (*env, *Call) {
	t.Helper()
	e := netemEnv(t, 20*time.Millisecond)
	if side != nil {
		side(&e.side.rtcCfg)
	}
	host, _ := e.netem.Host("client")
	must(t, host.Up.Set(netem.LinkConfig{
		Delay:    netem.DelayModel{Base: 20 * time.Millisecond},
		Capacity: netem.CapacityModel{Rate: capacity},
		Schedule: schedule,
	}))
	cl := e.connected(t, ctx, "alice", func(c *Config) { c.Video = true },
		append([]Option{WithVideo(3_000_000, 30, 3*time.Second), WithBWE(bwe)}, opts...)...)
	c, err := cl.Call(ctx, "1001")
	must(t, err)
	_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
	must(t, err)
	must(t, c.WaitConnected(ctx))
	time.Sleep(d)
	return e, c
}

// meanOf averages f over the samples from `from` on.
func meanOf(samples []BWESample, from time.Time, f func(BWESample) int) float64 {
	return meanBetween(samples, from, from.Add(time.Hour), f)
}

// meanBetween averages f over the samples in [from, to).
func meanBetween(samples []BWESample, from, to time.Time, f func(BWESample) int) float64 {
	var sum, n float64
	for _, s := range samples {
		if !s.At.Before(from) && s.At.Before(to) {
			sum += float64(f(s))
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}

// TestBWECapacity: on a 1 Mbit/s uplink the estimate rises from its 300 kbit/s start, settles
// below the capacity, and what the client sends (the video encoder follows the estimate,
// through the pacer) tracks it. In virtual time.
func TestBWECapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		const capacity = 1_000_000
		_, c := bweCall(t, ctx, capacity, nil, 40*time.Second, rtc.BWEConfig{InitialBitrate: 300_000})
		samples := c.BWESamples()
		if len(samples) < 350 {
			t.Fatalf("%d samples", len(samples))
		}
		start := samples[0].At
		var reached time.Duration
		peak := 0
		for _, s := range samples {
			peak = max(peak, s.Target)
			if reached == 0 && s.Target >= 0.7*capacity {
				reached = s.At.Sub(start)
			}
		}
		for i, s := range samples {
			if i%10 == 0 {
				t.Logf("%5.1fs target %7d (loss %7d delay %7d) sending %7d video %7d loss %.3f %s/%s est %v thr %v",
					s.At.Sub(start).Seconds(), s.Target, s.LossTarget, s.DelayTarget, s.SendingRate, s.VideoBitrate,
					s.LossRate, s.DelayState, s.Usage, s.DelayEstimate, s.DelayThreshold)
			}
		}
		settled := start.Add(20 * time.Second)
		target := meanOf(samples, settled, func(s BWESample) int { return s.Target })
		sending := meanOf(samples, settled, func(s BWESample) int { return s.SendingRate })
		st := c.Stats()
		t.Logf("start %d, peak %d, 70%% of capacity after %v; last 20 s: target %.0f, sending %.0f; video sent %d packets, retransmitted %d; repair %+v",
			samples[0].Target, peak, reached, target, sending, st.Video.PacketsSent, st.Video.Retransmitted, st.Repair)
		if peak < 2*300_000 {
			t.Errorf("the target never rose: peak %d", peak)
		}
		if target > capacity || target < 0.5*capacity {
			t.Errorf("settled target %.0f bit/s on a %d bit/s link", target, capacity)
		}
		if sending < 0.75*target || sending > 1.25*target {
			t.Errorf("sending %.0f bit/s for a target of %.0f", sending, target)
		}
	})
}

// TestBWECapacityDrop: when the uplink falls from 1.5 Mbit/s to 500 kbit/s the estimate follows
// it down and the video encoder with it, with gcc's leaky-bucket pacer and without a pacer.
func TestBWECapacityDrop(t *testing.T) {
	for _, pacer := range []rtc.BWEPacer{rtc.PacerLeakyBucket, rtc.PacerNone} {
		t.Run(string(pacer), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				low := &netem.CapacityModel{Rate: 500_000}
				_, c := bweCall(t, ctx, 1_500_000, []netem.Phase{{At: 25 * time.Second, Capacity: low}}, 45*time.Second,
					rtc.BWEConfig{InitialBitrate: 800_000, Pacer: pacer})
				samples := c.BWESamples()
				start := samples[0].At
				before := meanBetween(samples, start.Add(15*time.Second), start.Add(23*time.Second), func(s BWESample) int { return s.Target })
				after := meanOf(samples, start.Add(35*time.Second), func(s BWESample) int { return s.Target })
				sending := meanOf(samples, start.Add(35*time.Second), func(s BWESample) int { return s.SendingRate })
				video := meanOf(samples, start.Add(35*time.Second), func(s BWESample) int { return s.VideoBitrate })
				st := c.Stats()
				t.Logf("target before the drop %.0f, after %.0f; sending %.0f, video %.0f; state %s; lost %.3f; retransmitted %d",
					before, after, sending, video, st.BWE.State, st.BWE.AverageLoss, st.Video.Retransmitted)
				if before < 900_000 || before > 1_500_000 {
					t.Errorf("target %.0f bit/s before the drop, on 1.5 Mbit/s", before)
				}
				if after > 500_000 || after < 150_000 {
					t.Errorf("target %.0f bit/s after the drop to 500 kbit/s", after)
				}
				if sending > 1.25*after || video >= after {
					t.Errorf("sending %.0f, video %.0f for a target of %.0f", sending, video, after)
				}
			})
		})
	}
}

// TestRepairedFlags: under 3% loss each way, what NACK repairs shows in both logs: the audio
// the SIP side resends on its SSRC arrives marked "nack", its video resent over RTX "rtx"; the
// client's sent log marks its own retransmissions, RTX included (they pass the estimator's
// pacer under their RTX SSRC). In virtual time.
func TestRepairedFlags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e := netemEnv(t, 20*time.Millisecond)
		host, _ := e.netem.Host("client")
		lossy := netem.LinkConfig{Delay: netem.DelayModel{Base: 20 * time.Millisecond}, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.03}}
		must(t, host.Up.Set(lossy))
		must(t, host.Down.Set(lossy))
		cl := e.connected(t, ctx, "alice", func(c *Config) { c.Video = true },
			WithVideo(500_000, 30, 3*time.Second), WithBWE(rtc.BWEConfig{}), WithNACK(50*time.Millisecond, 5))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitConnected(ctx))
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
		st := c.Stats()
		t.Logf("received: audio nack %d, video rtx %d; sent: audio nack %d, video rtx %d; stats audio %+v video %+v",
			count(received, "audio", RepairNACK), count(received, "video", RepairRTX),
			count(sent, "audio", RepairNACK), count(sent, "video", RepairRTX), st.Audio, st.Video.MediaStats)
		if count(received, "audio", RepairNACK) == 0 || count(received, "video", RepairRTX) == 0 {
			t.Error("no repaired packet received")
		}
		if count(received, "audio", RepairRTX) != 0 || count(received, "video", RepairNACK) != 0 {
			t.Error("audio repaired over RTX, or video without it")
		}
		if count(sent, "audio", RepairNACK) == 0 || count(sent, "video", RepairRTX) == 0 {
			t.Error("no retransmission in the sent log")
		}
		for _, r := range sent {
			if r.Retransmission != (r.Repaired == RepairNACK || r.Repaired == RepairRTX) {
				t.Fatalf("sent %+v", r)
			}
		}
		if st.Audio.NACKRepaired == 0 || st.Video.RTXRepaired == 0 || st.Video.Retransmitted == 0 {
			t.Errorf("repair counters: audio %+v video %+v", st.Audio, st.Video.MediaStats)
		}
		if st.Audio.Lost > 3 || st.Video.Lost > 10 {
			t.Errorf("lost after repair: audio %d video %d", st.Audio.Lost, st.Video.Lost)
		}
	})
}
