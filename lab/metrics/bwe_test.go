package metrics

import (
	"testing"
	"time"
)

// fiveSeconds: one sample a second, rates in kbit/s (×1000 below).
//
//	t  target sending delivered capacity queue
//	0   800    800     800      1000     10 ms
//	1  1200   1200    1000      1000     50 ms
//	2  1000   1000    1000      1000     30 ms
//	3  1000   1000     500       500    200 ms
//	4   500    500     500       500     20 ms
func fiveSeconds() []Sample {
	rows := [][5]float64{
		{800, 800, 800, 1000, 10},
		{1200, 1200, 1000, 1000, 50},
		{1000, 1000, 1000, 1000, 30},
		{1000, 1000, 500, 500, 200},
		{500, 500, 500, 500, 20},
	}
	var s []Sample
	for i, r := range rows {
		s = append(s, Sample{
			At: at(time.Duration(i) * time.Second), Target: r[0] * 1000, Sending: r[1] * 1000,
			Delivered: r[2] * 1000, Capacity: r[3] * 1000, QueueDelay: ms(r[4]),
		})
	}
	return s
}

func TestAnalyzeBWE(t *testing.T) {
	// Default window [0, 4 s]: the samples at 0..3 hold one second each; the last has no
	// extent.
	st := AnalyzeBWE(fiveSeconds(), Window{})
	eq(t, "From", st.From, at(0))
	eq(t, "To", st.To, at(4*time.Second))
	eq(t, "Duration", st.Duration, 4*time.Second)
	eq(t, "Samples", st.Samples, 5)
	near(t, "MeanTarget", st.MeanTarget, 1000e3, 1e-6)                // (800+1200+1000+1000)/4
	near(t, "MeanSending", st.MeanSending, 1000e3, 1e-6)              // same
	near(t, "MeanDelivered", st.MeanDelivered, 825e3, 1e-6)           // (800+1000+1000+500)/4
	near(t, "MeanCapacity", st.MeanCapacity, 875e3, 1e-6)             // (3·1000+500)/4
	near(t, "Utilization", st.Utilization, 0.95, 1e-12)               // mean(0.8, 1, 1, 1)
	near(t, "SendingUtilization", st.SendingUtilization, 1.25, 1e-12) // mean(0.8, 1.2, 1, 2)
	near(t, "OvershootFraction", st.OvershootFraction, 0.5, 1e-12)    // at 1 and 3
	near(t, "OvershootMean", st.OvershootMean, 350e3, 1e-6)           // (200+500)/2
	near(t, "LossRate", st.LossRate, 0.175, 1e-12)                    // 1 - 3300/4000
	// Queue delays 10, 20, 30, 50, 200 ms: p50 is rank 3, p95 rank 5; mean 62 ms.
	eq(t, "QueueDelay", st.QueueDelay, DurationSummary{
		N: 5, Min: ms(10), Mean: ms(62), P50: ms(30), P95: ms(200), P99: ms(200), Max: ms(200),
	})

	// Window [1.5 s, 3.5 s]: 0.5 s of sample 1, 1 s of sample 2, 0.5 s of sample 3.
	st = AnalyzeBWE(fiveSeconds(), Window{From: at(1500 * time.Millisecond), To: at(3500 * time.Millisecond)})
	eq(t, "window Duration", st.Duration, 2*time.Second)
	eq(t, "window Samples", st.Samples, 2)
	near(t, "window MeanDelivered", st.MeanDelivered, 875e3, 1e-6)          // (500+1000+250)/2
	near(t, "window SendingUtilization", st.SendingUtilization, 1.3, 1e-12) // (1.2·0.5 + 1 + 2·0.5)/2
	near(t, "window OvershootFraction", st.OvershootFraction, 0.5, 1e-12)   // 0.5 s + 0.5 s
	near(t, "window LossRate", st.LossRate, 1-1750.0/2100, 1e-12)           // sent 600+1000+500

	// A window reaching past the last sample holds it: [4 s, 6 s] is all sample 4.
	st = AnalyzeBWE(fiveSeconds(), Window{From: at(4 * time.Second), To: at(6 * time.Second)})
	near(t, "tail MeanTarget", st.MeanTarget, 500e3, 1e-6)
	near(t, "tail Utilization", st.Utilization, 1, 1e-12)

	// Unsorted input gives the same result.
	s := fiveSeconds()
	s[0], s[3] = s[3], s[0]
	if a, b := AnalyzeBWE(s, Window{}), AnalyzeBWE(fiveSeconds(), Window{}); a != b {
		t.Errorf("unsorted: %+v\nsorted: %+v", a, b)
	}
	eq(t, "empty", AnalyzeBWE(nil, Window{}), BWEStats{})

	sameKeys(t, st, "from", "to", "duration_ns", "samples", "mean_target_bps", "mean_sending_bps",
		"mean_delivered_bps", "mean_capacity_bps", "utilization", "sending_utilization",
		"overshoot_fraction", "overshoot_mean_bps", "loss_rate", "queue_delay")
	sameKeys(t, Sample{}, "at", "target_bps", "sending_bps", "delivered_bps", "capacity_bps", "queue_delay_ns")
	sameKeys(t, Window{}, "from", "to")
}

// stepDown: capacity 1 Mbit/s until 1 s, then 500 kbit/s; a sample every 200 ms until 3 s.
func stepDown() []Sample {
	delivered := map[int]float64{ // ms -> kbit/s after the change
		1000: 900, 1200: 700, 1400: 550, 1600: 600, 1800: 520, 2000: 450,
		2200: 500, 2400: 500, 2600: 500, 2800: 510, 3000: 500,
	}
	var s []Sample
	for t := 0; t <= 3000; t += 200 {
		x := Sample{At: at(time.Duration(t) * time.Millisecond), Capacity: 1e6, Delivered: 1e6, Target: 1e6}
		if t >= 1000 {
			x.Capacity, x.Delivered = 5e5, delivered[t]*1000
			if t >= 1200 {
				x.Target = 5e5
			}
		}
		s = append(s, x)
	}
	return s
}

func TestConvergenceTime(t *testing.T) {
	change := at(time.Second)
	check := func(name string, o ConvergenceOptions, want time.Duration, wantOK bool) {
		t.Helper()
		d, ok := ConvergenceTime(stepDown(), change, o)
		if d != want || ok != wantOK {
			t.Errorf("%s: %v, %v; want %v, %v", name, d, ok, want, wantOK)
		}
	}
	// ±15% of 500 is [425, 575]: in band at 1.4, out at 1.6 (600), in from 1.8 on; a 1 s hold
	// is complete at the 2.8 s sample: 1.8 - 1.0 = 800 ms.
	check("default", ConvergenceOptions{}, ms(800), true)
	check("explicit reference", ConvergenceOptions{Reference: 5e5, Tolerance: 0.15, Hold: time.Second, Rate: RateDelivered}, ms(800), true)
	// The hold may end exactly at the last sample (3.0 - 1.8 = 1.2 s), not later.
	check("hold 1.2 s", ConvergenceOptions{Hold: 1200 * time.Millisecond}, ms(800), true)
	check("hold 1.4 s", ConvergenceOptions{Hold: 1400 * time.Millisecond}, 0, false)
	// ±25% is [375, 625]: in band from 1.4.
	check("tolerance 25%", ConvergenceOptions{Tolerance: 0.25}, ms(400), true)
	// The target is exactly 500 from 1.2 s.
	check("target", ConvergenceOptions{Rate: RateTarget}, ms(200), true)
	// A fair share of 250 kbit/s (two flows) is never reached.
	check("fair share", ConvergenceOptions{Reference: 2.5e5}, 0, false)
	// Judged from 0.5 s against 1 Mbit/s: in band from 0.5 s (the sample at 0.4 s holds) until
	// 1.2 s (900 kbit/s at 1.0 s is within 15%), then out: never 1 s long.
	d, ok := ConvergenceTime(stepDown(), at(500*time.Millisecond), ConvergenceOptions{Reference: 1e6})
	if ok {
		t.Errorf("before the change: %v, %v", d, ok)
	}
	// ... but with a 400 ms hold it is immediately converged (0 s).
	d, ok = ConvergenceTime(stepDown(), at(500*time.Millisecond), ConvergenceOptions{Reference: 1e6, Hold: 400 * time.Millisecond})
	if d != 0 || !ok {
		t.Errorf("already converged: %v, %v", d, ok)
	}
	if _, ok := ConvergenceTime(nil, change, ConvergenceOptions{}); ok {
		t.Error("no samples converged")
	}
	sameKeys(t, ConvergenceOptions{}, "reference_bps", "tolerance", "hold_ns", "rate")
}

func TestJain(t *testing.T) {
	near(t, "equal", Jain([]float64{3, 3, 3, 3}), 1, 1e-15)
	near(t, "one of four", Jain([]float64{1, 0, 0, 0}), 0.25, 1e-15)
	near(t, "1,2,3", Jain([]float64{1, 2, 3}), 36.0/42, 1e-15)      // 6² / (3·14)
	near(t, "two flows 1:3", Jain([]float64{1e6, 3e6}), 0.8, 1e-15) // 16 / (2·10)
	eq(t, "empty", Jain(nil), 0.0)
	eq(t, "all zero", Jain([]float64{0, 0}), 1.0)
}

func TestResample(t *testing.T) {
	// 1.5 s steps over [0, 4 s]: floor(4/1.5) + 1 = 3 points, the last holding sample 4.
	se := Resample(fiveSeconds(), 1500*time.Millisecond)
	eq(t, "Len", se.Len(), 3)
	eq(t, "Start", se.Start, at(0))
	eq(t, "At(2)", se.At(2), at(3*time.Second))
	// [0, 1.5): 1 s of 800 and 0.5 s of 1200 -> 933.33; [1.5, 3): 0.5·1200 + 1·1000 -> 1066.67;
	// [3, 4.5): 1·1000 + 0.5·500 -> 833.33.
	near(t, "Target[0]", se.Target[0], 2800e3/3, 1e-6)
	near(t, "Target[1]", se.Target[1], 3200e3/3, 1e-6)
	near(t, "Target[2]", se.Target[2], 2500e3/3, 1e-6)
	near(t, "Delivered[2]", se.Delivered[2], 500e3, 1e-6) // (500·1 + 500·0.5)/1.5
	// Queue [0, 1.5): (10·1 + 50·0.5)/1.5 = 23.333 ms.
	eq(t, "QueueDelay[0]", se.QueueDelay[0], time.Duration(23333333))
	sameKeys(t, se, "start", "step_ns", "target_bps", "sending_bps", "delivered_bps", "capacity_bps", "queue_delay_ns")

	// At the samples' own step the series is the samples, and analyzing it agrees.
	one := Resample(fiveSeconds(), time.Second)
	back := one.Samples()
	orig := fiveSeconds()
	if len(back) != len(orig) {
		t.Fatalf("Samples: %d, want %d", len(back), len(orig))
	}
	for i := range orig {
		if back[i] != orig[i] {
			t.Errorf("sample %d: %+v, want %+v", i, back[i], orig[i])
		}
	}
	eq(t, "empty", Resample(nil, time.Second).Len(), 0)
	eq(t, "zero step", Resample(fiveSeconds(), 0).Len(), 0)
}
