package netem_test

// Each model against its configured value, in virtual time (testing/synctest): the measurements
// come from what a receiver reads, and the bounds are statistical (99% intervals) or exact where
// the model is deterministic.

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

func TestBernoulliLossWithinCI(t *testing.T) {
	const n, rate = 20000, 0.05
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: rate}}))
		})
		f.sendEvery(n, 100, 10, time.Millisecond)
		got := f.close(100 * time.Millisecond)
		lost := lostSeqs(got, n)
		lo, hi := binomialCI99(n, rate)
		up, down := f.a.Up.Stats(), f.b.Down.Stats()
		t.Logf("bernoulli %.2f: lost %d of %d (99%% interval %.0f..%.0f); a/up %+v", rate, len(lost), n, lo, hi, up)
		if float64(len(lost)) < lo || float64(len(lost)) > hi {
			t.Errorf("lost %d of %d, want within %.0f..%.0f", len(lost), n, lo, hi)
		}
		if up.OfferedPackets != n || up.DroppedLoss != int64(len(lost)) || up.DeliveredPackets != int64(n-len(lost)) {
			t.Errorf("a/up counted offered %d, lost %d, delivered %d; want %d, %d, %d",
				up.OfferedPackets, up.DroppedLoss, up.DeliveredPackets, n, len(lost), n-len(lost))
		}
		if down.OfferedPackets != up.DeliveredPackets || down.DeliveredPackets != int64(len(got)) {
			t.Errorf("b/down offered %d delivered %d, want %d and %d", down.OfferedPackets, down.DeliveredPackets, up.DeliveredPackets, len(got))
		}
	})
}

// bursts returns the lengths of the runs of consecutive lost sequence numbers.
func bursts(lost []int) []int {
	var runs []int
	for i := 0; i < len(lost); {
		j := i + 1
		for j < len(lost) && lost[j] == lost[j-1]+1 {
			j++
		}
		runs = append(runs, j-i)
		i = j
	}
	return runs
}

func TestGilbertElliottMatchesTheory(t *testing.T) {
	const n = 40000
	for _, tc := range []struct {
		name string
		m    netem.LossModel
		// burst: the mean burst length is 1/R (only with LossGood 0 and LossBad 1).
		burst bool
	}{
		{"gilbert", netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.01, R: 0.25, LossGood: 0, LossBad: 1}, true},
		{"elliott", netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.02, R: 0.2, LossGood: 0.01, LossBad: 0.6}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFlow(t, func(a, _ *netem.Host) { must(t, a.Up.Set(netem.LinkConfig{Loss: tc.m})) })
				f.sendEvery(n, 100, 20, time.Millisecond)
				lost := lostSeqs(f.close(100*time.Millisecond), n)
				m := tc.m
				piBad := m.P / (m.P + m.R)
				want := piBad*m.LossBad + (1-piBad)*m.LossGood
				// The chain's memory makes losses correlated: the variance of the loss fraction
				// grows by (1+rho)/(1-rho), rho = 1-P-R (and a 1.5 margin for the per-state draws).
				rho := 1 - m.P - m.R
				half := 2.576 * math.Sqrt(want*(1-want)/n*(1+rho)/(1-rho)) * 1.5
				got := float64(len(lost)) / n
				runs := bursts(lost)
				var sum int
				for _, r := range runs {
					sum += r
				}
				meanBurst := float64(sum) / float64(len(runs))
				t.Logf("%s %+v: loss %.4f (theory %.4f +- %.4f), %d bursts of mean length %.2f", tc.name, m, got, want, half, len(runs), meanBurst)
				if math.Abs(got-want) > half {
					t.Errorf("loss rate %.4f, want %.4f +- %.4f", got, want, half)
				}
				if tc.burst {
					wantBurst := 1 / m.R
					// Burst lengths are geometric: deviation sqrt(1-R)/R.
					bhalf := 2.576 * math.Sqrt(1-m.R) / m.R / math.Sqrt(float64(len(runs)))
					if math.Abs(meanBurst-wantBurst) > bhalf {
						t.Errorf("mean burst %.2f packets, want %.2f +- %.2f", meanBurst, wantBurst, bhalf)
					}
				}
			})
		})
	}
}

// TestJitterPercentiles: with Reorder, each packet's delay is Base plus its own draw, so the
// measured percentiles are the distribution's.
func TestJitterPercentiles(t *testing.T) {
	const (
		n     = 10000
		base  = 20 * time.Millisecond
		mean  = 10 * time.Millisecond
		std   = 3 * time.Millisecond
		shape = 2.5
	)
	z := map[float64]float64{0.5: 0, 0.9: 1.2815516, 0.99: 2.3263479}
	m, sd, lambda := float64(mean), float64(std), float64(mean)*(shape-1)
	for _, tc := range []struct {
		kind netem.JitterKind
		// quantile of the jitter and the density there, in nanoseconds
		quantile func(q float64) float64
		density  func(q float64) float64
	}{
		{netem.JitterUniform, func(q float64) float64 { return 2 * m * q }, func(float64) float64 { return 1 / (2 * m) }},
		{netem.JitterNormal, func(q float64) float64 { return m + sd*z[q] },
			func(q float64) float64 { return math.Exp(-z[q]*z[q]/2) / (sd * math.Sqrt(2*math.Pi)) }},
		{netem.JitterExponential, func(q float64) float64 { return -m * math.Log(1-q) }, func(q float64) float64 { return (1 - q) / m }},
		{netem.JitterPareto, func(q float64) float64 { return lambda * (math.Pow(1-q, -1/shape) - 1) },
			func(q float64) float64 { return shape / lambda * math.Pow(1-q, (shape+1)/shape) }},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dm := netem.DelayModel{Base: base, Jitter: tc.kind, Mean: mean, Std: std, Shape: shape, Reorder: true}
				f := newFlow(t, func(_, b *netem.Host) { must(t, b.Down.Set(netem.LinkConfig{Delay: dm})) })
				f.sendEvery(n, 100, 5, 10*time.Millisecond)
				got := f.close(2 * time.Second)
				if len(got) != n {
					t.Fatalf("%d of %d arrived", len(got), n)
				}
				delays := make([]time.Duration, len(got))
				var sum time.Duration
				for i, r := range got {
					delays[i] = r.delay()
					sum += delays[i] - base
				}
				slices.Sort(delays)
				st := f.b.Down.Stats().OneWayDelay
				t.Logf("%s: measured mean jitter %v; stats %v", tc.kind, sum/n, st)
				if delays[0] < base {
					t.Errorf("a packet took %v, less than the base delay %v", delays[0], base)
				}
				for _, q := range []float64{0.5, 0.9, 0.99} {
					want := base + time.Duration(tc.quantile(q))
					have := quantile(delays, q)
					// The sample quantile's standard error is sqrt(q(1-q)/n)/density; allow 3.3 of
					// them (a 0.1% chance to fail for a correct model).
					se := math.Sqrt(q*(1-q)/n) / tc.density(q)
					tol := max(time.Duration(3.3*se), 100*time.Microsecond)
					if !within(have, want, tol) {
						t.Errorf("p%.0f %v, want %v +- %v", q*100, have, want, tol)
					}
					// The direction's own distribution agrees with the receiver's (histogram: 0.4%).
					var stq time.Duration
					switch q {
					case 0.5:
						stq = st.P50
					case 0.9:
						stq = st.P90
					case 0.99:
						stq = st.P99
					}
					if !within(stq, have, have/200+time.Microsecond) {
						t.Errorf("stats p%.0f %v, receiver measured %v", q*100, stq, have)
					}
				}
			})
		})
	}
}

// TestJitterWithoutReorderKeepsOrder: without Reorder a late packet holds back the ones behind
// it, so packets arrive in order and none earlier than its own draw.
func TestJitterWithoutReorderKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dm := netem.DelayModel{Base: 30 * time.Millisecond, Jitter: netem.JitterExponential, Mean: 10 * time.Millisecond}
		f := newFlow(t, func(a, _ *netem.Host) { must(t, a.Up.Set(netem.LinkConfig{Delay: dm})) })
		f.sendEvery(5000, 100, 1, 2*time.Millisecond)
		got := f.close(time.Second)
		if len(got) != 5000 {
			t.Fatalf("%d of 5000 arrived", len(got))
		}
		for i, r := range got {
			if r.seq != i {
				t.Fatalf("arrival %d is packet %d: reordered", i, r.seq)
			}
			if r.delay() < dm.Base {
				t.Fatalf("packet %d took %v, less than the base", r.seq, r.delay())
			}
		}
	})
}

// TestCapacitySaturated: a sender at twice the rate gets the rate through (headers counted),
// the queue delay never exceeds the configured queue, and the queue drains on its own after the
// sender stops.
func TestCapacitySaturated(t *testing.T) {
	const (
		rate     = 1_000_000
		queue    = 100 * time.Millisecond
		size     = 1000
		interval = 4 * time.Millisecond // 2 Mbit/s of payload
		sendFor  = 10 * time.Second
	)
	wire := size + 28
	pace := time.Duration(int64(wire) * 8 * int64(time.Second) / rate)
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Capacity: netem.CapacityModel{Rate: rate, QueueDelay: queue}}))
		})
		start := time.Now()
		f.sendEvery(int(sendFor/interval), size, 1, interval)
		lastSend := f.sentAt[len(f.sentAt)-1]
		got := f.close(2 * time.Second)
		st := f.a.Up.Stats()

		var bits int
		var maxDelay time.Duration
		var after []recv
		for _, r := range got {
			if r.at.After(start.Add(2*time.Second)) && !r.at.After(start.Add(sendFor)) {
				bits += (r.size + 28) * 8
			}
			maxDelay = max(maxDelay, r.delay())
			if r.at.After(lastSend) {
				after = append(after, r)
			}
		}
		delivered := float64(bits) / (sendFor - 2*time.Second).Seconds()
		t.Logf("capacity %d bit/s: delivered %.0f bit/s; max delay %v (queue %v); stats queue delay %v; dropped %d; %d drained after the sender stopped",
			rate, delivered, maxDelay, queue, st.QueueDelay, st.DroppedQueue, len(after))
		if math.Abs(delivered-rate)/rate > 0.02 {
			t.Errorf("delivered %.0f bit/s, want %d within 2%%", delivered, rate)
		}
		if maxDelay > queue || st.QueueDelay.Max > queue {
			t.Errorf("queue delay up to %v (stats %v), want at most %v", maxDelay, st.QueueDelay.Max, queue)
		}
		if st.QueueDelay.P50 < queue*9/10 {
			t.Errorf("steady queue delay %v, want about %v (the queue stays full)", st.QueueDelay.P50, queue)
		}
		if st.DroppedQueue == 0 || st.DeliveredPackets+st.DroppedQueue != st.OfferedPackets {
			t.Errorf("offered %d, delivered %d, dropped %d: want drops and nothing unaccounted", st.OfferedPackets, st.DeliveredPackets, st.DroppedQueue)
		}
		if len(after) < 10 {
			t.Fatalf("%d packets left the queue after the sender stopped, want the queue's 12", len(after))
		}
		for i := 1; i < len(after); i++ {
			if gap := after[i].at.Sub(after[i-1].at); !within(gap, pace, time.Microsecond) {
				t.Errorf("draining gap %v, want %v", gap, pace)
			}
		}
	})
}

// TestCapacitySharedDownlink: two senders into one host's downlink share its capacity.
func TestCapacitySharedDownlink(t *testing.T) {
	const rate = 2_000_000
	synctest.Test(t, func(t *testing.T) {
		nw, err := netem.New("")
		must(t, err)
		b, _ := nw.AddHost("b", "")
		s1, _ := nw.AddHost("s1", "")
		s2, _ := nw.AddHost("s2", "")
		must(t, b.Down.Set(netem.LinkConfig{Capacity: netem.CapacityModel{Rate: rate, QueueBytes: 30000}}))
		must(t, nw.Start())
		rx, err := b.Net.ListenPacket("udp4", b.IP.String()+":4000")
		must(t, err)
		var bits int
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			buf := make([]byte, 2000)
			for {
				n, _, err := rx.ReadFrom(buf)
				if err != nil {
					return
				}
				if since := time.Since(start); since > time.Second && since <= 6*time.Second {
					bits += (n + 28) * 8
				}
			}
		}()
		payload := make([]byte, 1200)
		for _, h := range []*netem.Host{s1, s2} {
			tx, err := h.Net.ListenPacket("udp4", h.IP.String()+":0")
			must(t, err)
			go func() {
				defer tx.Close()
				for time.Since(start) < 6*time.Second {
					_, _ = tx.WriteTo(payload, rx.LocalAddr())
					time.Sleep(4 * time.Millisecond) // 2.4 Mbit/s each
				}
			}()
		}
		time.Sleep(7 * time.Second)
		_ = rx.Close()
		<-done
		must(t, nw.Close())
		delivered := float64(bits) / 5
		t.Logf("two senders into a %d bit/s downlink: %.0f bit/s delivered; b/down %+v", rate, delivered, b.Down.Stats().QueueDelay)
		if math.Abs(delivered-rate)/rate > 0.02 {
			t.Errorf("delivered %.0f bit/s, want %d within 2%%", delivered, rate)
		}
	})
}

// TestScheduleCapacitySwitch: a capacity phase changes the drain rate at its instant, within one
// packet time, and keeps the queue.
func TestScheduleCapacitySwitch(t *testing.T) {
	const size = 1000
	wire := size + 28
	at := 2 * time.Second
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{
				Capacity: netem.CapacityModel{Rate: 1_000_000, QueueBytes: 20000},
				Schedule: []netem.Phase{{At: at, Capacity: &netem.CapacityModel{Rate: 500_000, QueueBytes: 20000}}},
			}))
		})
		start := f.nw.StartTime()
		f.sendEvery(1000, size, 1, 4*time.Millisecond)
		got := f.close(time.Second)
		oldPace := time.Duration(int64(wire) * 8 * int64(time.Second) / 1_000_000)
		newPace := 2 * oldPace
		switchAt := start.Add(at)
		for i := 1; i < len(got); i++ {
			gap := got[i].at.Sub(got[i-1].at)
			prev, cur := got[i-1].at, got[i].at
			switch {
			case cur.Before(switchAt) && prev.After(start.Add(200*time.Millisecond)):
				if !within(gap, oldPace, time.Microsecond) {
					t.Fatalf("gap %v at %v before the switch, want %v", gap, cur.Sub(start), oldPace)
				}
			case !prev.Before(switchAt):
				if !within(gap, newPace, time.Microsecond) {
					t.Fatalf("gap %v at %v after the switch, want %v", gap, cur.Sub(start), newPace)
				}
			default: // the packet on the wire at the switch: finished at the new rate
				if cur.Sub(switchAt) > newPace {
					t.Errorf("first packet after the switch at %v, more than one packet time (%v) late", cur.Sub(start), newPace)
				}
			}
		}
		if st := f.a.Up.Stats(); st.DeliveredPackets+st.DroppedQueue != st.OfferedPackets {
			t.Errorf("offered %d, delivered %d, dropped %d: the switch lost packets", st.OfferedPackets, st.DeliveredPackets, st.DroppedQueue)
		}
	})
}

// TestScheduleLiftsCapacity lifts the limit while the queue holds packets (a schedule's
// `capacity: {rate: unlimited}`): the queue leaves at once and nothing is lost. It panicked with
// a division by zero once (found by the scenario-file suite on example.yaml).
func TestScheduleLiftsCapacity(t *testing.T) {
	at := time.Second
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{
				Capacity: netem.CapacityModel{Rate: 200_000, QueueBytes: 100_000},
				Schedule: []netem.Phase{{At: at, Capacity: &netem.CapacityModel{}}},
			}))
		})
		start := f.nw.StartTime()
		// 1000-byte packets every 4 ms: 2 Mbit/s into 200 kbit/s, the queue fills.
		f.sendEvery(500, 1000, 1, 4*time.Millisecond)
		got := f.close(time.Second)
		st := f.a.Up.Stats()
		if st.DeliveredPackets+st.DroppedQueue != st.OfferedPackets || st.DeliveredPackets == 0 {
			t.Fatalf("offered %d, delivered %d, dropped %d", st.OfferedPackets, st.DeliveredPackets, st.DroppedQueue)
		}
		var afterLift int
		for _, g := range got {
			if !g.at.Before(start.Add(at)) {
				afterLift++
				if g.at.Sub(start) > 2*time.Second+10*time.Millisecond {
					t.Fatalf("a packet left at %v, after the last was sent (2 s): the queue did not flush", g.at.Sub(start))
				}
			}
		}
		if afterLift == 0 {
			t.Error("nothing delivered after the limit was lifted")
		}
	})
}

// TestScheduleSwitchesAtInstants: delay, down and loss phases and an outage take effect for the
// first packet sent at or after their instant, and not before.
func TestScheduleSwitchesAtInstants(t *testing.T) {
	down, up := true, false
	cfg := netem.LinkConfig{
		Delay:   netem.DelayModel{Base: 10 * time.Millisecond},
		Outages: []netem.Outage{{Start: 5 * time.Second, Duration: 500 * time.Millisecond}},
		Schedule: []netem.Phase{
			{At: 2 * time.Second, Delay: &netem.DelayModel{Base: 50 * time.Millisecond}},
			{At: 3 * time.Second, Down: &down},
			{At: 4 * time.Second, Down: &up},
			{At: 6 * time.Second, Loss: &netem.LossModel{Kind: netem.LossBernoulli, Rate: 1}},
			{At: 6500 * time.Millisecond, Loss: &netem.LossModel{}},
		},
	}
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(_, b *netem.Host) { must(t, b.Down.Set(cfg)) })
		start := f.nw.StartTime()
		f.sendEvery(7000, 100, 1, time.Millisecond)
		got := f.close(time.Second)
		arrived := map[int]recv{}
		for _, r := range got {
			arrived[r.seq] = r
		}
		for seq, sentAt := range f.sentAt {
			since := sentAt.Sub(start)
			r, ok := arrived[seq]
			wantLost := (since >= 3*time.Second && since < 4*time.Second) ||
				(since >= 5*time.Second && since < 5500*time.Millisecond) ||
				(since >= 6*time.Second && since < 6500*time.Millisecond)
			if ok == wantLost {
				t.Fatalf("packet sent at %v: arrived %v, want lost %v", since, ok, wantLost)
			}
			if !ok {
				continue
			}
			want := 10 * time.Millisecond
			if since >= 2*time.Second {
				want = 50 * time.Millisecond
			}
			// A packet sent just before the switch to 50 ms is not overtaken: no reordering.
			if r.delay() != want {
				t.Fatalf("packet sent at %v took %v, want %v", since, r.delay(), want)
			}
		}
		st := f.b.Down.Stats()
		t.Logf("b/down: %d offered, %d dropped by outage or down, %d by loss", st.OfferedPackets, st.DroppedOutage, st.DroppedLoss)
		if st.DroppedOutage != 1500 || st.DroppedLoss != 500 {
			t.Errorf("dropped %d by outage, %d by loss; want 1500 and 500", st.DroppedOutage, st.DroppedLoss)
		}
	})
}

// TestSameSeedSameLoss: the loss pattern is a function of the seed and the packet order: the
// same seed gives the same lost packets on every run, another seed others; a direction's own
// Seed overrides the network's.
func TestSameSeedSameLoss(t *testing.T) {
	run := func(netSeed, dirSeed int64) []int {
		var lost []int
		synctest.Test(t, func(t *testing.T) {
			f := newFlow(t, func(a, b *netem.Host) {
				must(t, a.Up.Set(netem.LinkConfig{Seed: dirSeed,
					Loss:  netem.LossModel{Kind: netem.LossGilbertElliott, P: 0.02, R: 0.3, LossBad: 1},
					Delay: netem.DelayModel{Base: 20 * time.Millisecond, Jitter: netem.JitterNormal, Mean: 5 * time.Millisecond, Std: 2 * time.Millisecond}}))
				must(t, b.Down.Set(netem.LinkConfig{Seed: dirSeed, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.03}}))
			}, netem.WithSeed(netSeed))
			f.sendEvery(3000, 100, 3, time.Millisecond)
			lost = lostSeqs(f.close(time.Second), 3000)
		})
		return lost
	}
	a, b, c := run(7, 0), run(7, 0), run(8, 0)
	d, e := run(1, 99), run(2, 99)
	t.Logf("seed 7: %d lost, first %v; seed 8: %d lost", len(a), a[:min(8, len(a))], len(c))
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("seed 7 twice lost different packets: %d and %d", len(a), len(b))
	}
	if slices.Equal(a, c) {
		t.Error("seeds 7 and 8 lost the same packets")
	}
	if !slices.Equal(d, e) {
		t.Error("a direction's own seed did not override the network's")
	}
}

// TestLiveSet: Set while a sender runs takes effect for the next packet; with -race this also
// checks the concurrency.
func TestLiveSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: 10 * time.Millisecond}}))
		})
		start := f.nw.StartTime()
		setDone := make(chan struct{})
		go func() {
			defer close(setDone)
			time.Sleep(5*time.Second + 500*time.Microsecond)
			must(t, f.a.Up.Set(netem.LinkConfig{
				Loss:  netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.2},
				Delay: netem.DelayModel{Base: 30 * time.Millisecond},
			}))
			_ = f.a.Up.Stats() // read while traffic flows
		}()
		f.sendEvery(10000, 100, 1, time.Millisecond)
		<-setDone
		got := f.close(time.Second)
		arrived := map[int]recv{}
		for _, r := range got {
			arrived[r.seq] = r
		}
		var after, lostAfter int
		for seq, sentAt := range f.sentAt {
			r, ok := arrived[seq]
			if sentAt.Sub(start) < 5*time.Second+500*time.Microsecond {
				if !ok || r.delay() != 10*time.Millisecond {
					t.Fatalf("packet %d before the Set: arrived %v after %v, want 10ms", seq, ok, r.delay())
				}
				continue
			}
			after++
			if !ok {
				lostAfter++
			} else if r.delay() != 30*time.Millisecond {
				t.Fatalf("packet %d after the Set took %v, want 30ms", seq, r.delay())
			}
		}
		lo, hi := binomialCI99(after, 0.2)
		t.Logf("after the Set: lost %d of %d (99%% interval %.0f..%.0f)", lostAfter, after, lo, hi)
		if float64(lostAfter) < lo || float64(lostAfter) > hi {
			t.Errorf("lost %d of %d after the Set, want %.0f..%.0f", lostAfter, after, lo, hi)
		}
		if c := f.a.Up.Config(); c.Loss.Rate != 0.2 {
			t.Errorf("Config() = %+v, want the last Set", c)
		}
	})
}

// TestLiveSetOverSchedule: a live Set on a link with a schedule is in force from then on: a
// phase already past is not replayed over it, a later one still applies at its instant.
func TestLiveSetOverSchedule(t *testing.T) {
	cfg := netem.LinkConfig{
		Delay: netem.DelayModel{Base: 10 * time.Millisecond},
		Schedule: []netem.Phase{
			{At: 2 * time.Second, Delay: &netem.DelayModel{Base: 50 * time.Millisecond}},
			{At: 8 * time.Second, Delay: &netem.DelayModel{Base: 70 * time.Millisecond}},
		},
	}
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) { must(t, a.Up.Set(cfg)) })
		start := f.nw.StartTime()
		go func() {
			time.Sleep(5*time.Second + 500*time.Microsecond)
			live := cfg
			live.Delay = netem.DelayModel{Base: 30 * time.Millisecond}
			must(t, f.a.Up.Set(live))
		}()
		f.sendEvery(10000, 100, 1, time.Millisecond)
		got := f.close(time.Second)
		sent := map[int]time.Duration{}
		for seq, at := range f.sentAt {
			sent[seq] = at.Sub(start)
		}
		if len(got) != 10000 {
			t.Fatalf("%d of 10000 packets arrived on a lossless link", len(got))
		}
		for _, r := range got {
			since := sent[r.seq]
			want := 10 * time.Millisecond
			switch {
			case since >= 8*time.Second:
				want = 70 * time.Millisecond
			case since >= 5*time.Second+500*time.Microsecond:
				want = 30 * time.Millisecond
			case since >= 2*time.Second:
				want = 50 * time.Millisecond
			}
			// A packet sent just after a switch to a shorter delay may wait for the one before
			// it (no reordering): allow that, never less than the model's delay.
			if d := r.delay(); d < want || (d > want && since%time.Second > 50*time.Millisecond) {
				t.Fatalf("packet sent at %v took %v, want %v", since, d, want)
			}
		}
	})
}

// TestLiveCapacityChangeKeepsQueue: lowering the rate mid-flow keeps the queued packets and
// drains them at the new rate.
func TestLiveCapacityChangeKeepsQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		capacity := netem.CapacityModel{Rate: 1_000_000, QueueBytes: 12336}
		f := newFlow(t, func(a, _ *netem.Host) { must(t, a.Up.Set(netem.LinkConfig{Capacity: capacity})) })
		go func() {
			time.Sleep(3 * time.Second)
			capacity.Rate = 250_000
			must(t, f.a.Up.Set(netem.LinkConfig{Capacity: capacity}))
		}()
		f.sendEvery(1250, 1000, 1, 4*time.Millisecond)
		got := f.close(2 * time.Second)
		st := f.a.Up.Stats()
		if st.DeliveredPackets+st.DroppedQueue != st.OfferedPackets || int(st.DeliveredPackets) != len(got) {
			t.Errorf("offered %d, delivered %d (received %d), dropped %d: packets vanished", st.OfferedPackets, st.DeliveredPackets, len(got), st.DroppedQueue)
		}
		// After the change the queue (12 packets) drains at the new rate: 12 packets take
		// 12*32.9 ms, so the queue delay reaches about 395 ms for packets queued before it.
		if st.QueueDelay.Max < 350*time.Millisecond {
			t.Errorf("max queue delay %v: the queued packets did not wait at the new rate", st.QueueDelay.Max)
		}
	})
}

func TestDuplication(t *testing.T) {
	const n, rate = 10000, 0.1
	synctest.Test(t, func(t *testing.T) {
		f := newFlow(t, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: 10 * time.Millisecond},
				Duplicate: netem.DuplicateModel{Rate: rate, Delay: 5 * time.Millisecond}}))
		})
		f.sendEvery(n, 100, 1, time.Millisecond)
		got := f.close(time.Second)
		first := map[int]recv{}
		dups := 0
		for _, r := range got {
			if o, ok := first[r.seq]; ok {
				dups++
				if d := r.at.Sub(o.at); d != 5*time.Millisecond {
					t.Fatalf("copy of %d came %v after the original, want 5ms", r.seq, d)
				}
				continue
			}
			first[r.seq] = r
		}
		lo, hi := binomialCI99(n, rate)
		if float64(dups) < lo || float64(dups) > hi || len(first) != n {
			t.Errorf("%d duplicates of %d (%d distinct), want %.0f..%.0f", dups, n, len(first), lo, hi)
		}
		if st := f.a.Up.Stats(); st.Duplicated != int64(dups) {
			t.Errorf("stats count %d duplicates, received %d", st.Duplicated, dups)
		}
	})
}

func TestValidateLinkConfig(t *testing.T) {
	bad := netem.LinkConfig{
		Loss:     netem.LossModel{Kind: netem.LossBernoulli, Rate: 1.5},
		Delay:    netem.DelayModel{Base: -time.Millisecond, Jitter: "gauss"},
		Capacity: netem.CapacityModel{Rate: -1},
		Outages:  []netem.Outage{{Start: time.Second}},
		Schedule: []netem.Phase{{At: 2 * time.Second}, {At: time.Second, Loss: &netem.LossModel{Kind: netem.LossGilbertElliott, P: 2}}},
	}
	err := netem.ValidateLinkConfig(bad)
	if err == nil {
		t.Fatal("no error for an impossible config")
	}
	for _, want := range []string{
		"loss.rate 1.5: must be within 0..1",
		"delay.base -1ms: must be >= 0",
		`delay.jitter.dist "gauss": unknown`,
		"capacity.rate -1: must be >= 0",
		"outages[0].duration 0s: must be > 0",
		"schedule[1].at 1s: before the previous phase's 2s",
		"schedule[1].loss.p 2: must be within 0..1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var ce *netem.ConfigError
	if !errors.As(err, &ce) || ce.Field != "loss.rate" {
		t.Errorf("errors.As found %+v, want the loss.rate ConfigError first", ce)
	}
	if err := netem.ValidateLinkConfig(netem.LinkConfig{}); err != nil {
		t.Errorf("the zero config is invalid: %v", err)
	}

	nw, _ := netem.New("")
	h, _ := nw.AddHost("pbx", "")
	good := netem.LinkConfig{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.1}}
	must(t, h.Up.Set(good))
	err = h.Up.Set(bad)
	if err == nil || !strings.Contains(err.Error(), "pbx/up: loss.rate 1.5") {
		t.Errorf("Set error %v, want it to name the direction and the field", err)
	}
	if got := h.Up.Config(); got.Loss != good.Loss {
		t.Errorf("a rejected Set changed the config to %+v", got)
	}
	if h.Up.Name() != "pbx/up" || h.Down.Name() != "pbx/down" {
		t.Errorf("names %q %q", h.Up.Name(), h.Down.Name())
	}
}
