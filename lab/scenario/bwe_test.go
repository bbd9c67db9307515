package scenario

import (
	"math"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

func TestRFC8867Cases(t *testing.T) {
	want := map[string]struct {
		duration time.Duration
		flows    int
	}{"5.1": {100 * time.Second, 1}, "5.2": {125 * time.Second, 2}, "5.3": {100 * time.Second, 1}, "5.4": {120 * time.Second, 3}, "5.8": {120 * time.Second, 3}}
	for _, sec := range RFC8867Sections {
		c, err := RFC8867(sec, BWEUplink)
		if err != nil {
			t.Fatalf("%s: %v", sec, err)
		}
		c = c.WithDefaults()
		if c.Duration != want[sec].duration || len(c.Flows) != want[sec].flows {
			t.Errorf("%s: duration %v, %d flows; want %v, %d", sec, c.Duration, len(c.Flows), want[sec].duration, want[sec].flows)
		}
		if _, err := c.Config(); err != nil {
			t.Errorf("%s: %v", sec, err)
		}
	}
	if _, err := RFC8867("5.5", BWEUplink); err == nil {
		t.Error("section 5.5 was accepted")
	}

	// The forward path is the client's uplink, or its downlink the other way.
	up, _ := RFC8867("5.1", BWEUplink)
	cfg, err := up.Config()
	if err != nil {
		t.Fatal(err)
	}
	client := cfg.Links[HostClient]
	if got := capacityAt(client.Up, 61*time.Second); got != 600_000 {
		t.Errorf("uplink capacity at 61 s = %d, want 600000", got)
	}
	if client.Down.Capacity.Rate != 0 || len(client.Down.Schedule) != 0 || client.Down.Delay.Base != 50*time.Millisecond {
		t.Errorf("uplink case's client downlink = %+v", client.Down)
	}
	down, _ := RFC8867("5.1", BWEDownlink)
	cfg, err = down.Config()
	if err != nil {
		t.Fatal(err)
	}
	client = cfg.Links[HostClient]
	if got := capacityAt(client.Down, 41*time.Second); got != 2_500_000 {
		t.Errorf("downlink capacity at 41 s = %d, want 2500000", got)
	}
	if len(client.Up.Schedule) != 0 {
		t.Errorf("downlink case's client uplink has a schedule: %+v", client.Up.Schedule)
	}
	if _, err := (BWECase{Scenario: up.Scenario, Flows: make([]BWEFlow, 6)}).Config(); err == nil {
		t.Error("six flows were accepted")
	}
}

func TestBWEScheduleHelpers(t *testing.T) {
	rate := func(r int64) *netem.CapacityModel { return &netem.CapacityModel{Rate: r} }
	l := netem.LinkConfig{
		Capacity: netem.CapacityModel{Rate: 1_000_000, QueueDelay: 300 * time.Millisecond},
		Schedule: []netem.Phase{{At: 10 * time.Second, Capacity: rate(2_000_000)}, {At: 20 * time.Second, Delay: &netem.DelayModel{}},
			{At: 30 * time.Second, Capacity: rate(2_000_000)}, {At: 40 * time.Second, Capacity: rate(500_000)}},
		Outages: []netem.Outage{{Start: 5 * time.Second, Duration: time.Second}},
	}
	for _, c := range []struct {
		at   time.Duration
		want int64
	}{{0, 1_000_000}, {9 * time.Second, 1_000_000}, {10 * time.Second, 2_000_000}, {35 * time.Second, 2_000_000}, {50 * time.Second, 500_000}} {
		if got := capacityAt(l, c.at); got != c.want {
			t.Errorf("capacityAt(%v) = %d, want %d", c.at, got, c.want)
		}
	}
	if got := changes(l, 45*time.Second); len(got) != 2 || got[0] != 10*time.Second || got[1] != 40*time.Second {
		t.Errorf("changes = %v, want [10s 40s] (a phase that keeps the rate is no change)", got)
	}
	s := shiftLink(l, 2*time.Second)
	if s.Schedule[0].At != 12*time.Second || s.Outages[0].Start != 7*time.Second || l.Schedule[0].At != 10*time.Second {
		t.Errorf("shiftLink: %v %v, original %v", s.Schedule[0].At, s.Outages[0].Start, l.Schedule[0].At)
	}
	if got := GCCRampTime(1e6, 1.08e6); math.Abs(got.Seconds()-1) > 1e-9 {
		t.Errorf("GCCRampTime(1, 1.08 Mbps) = %v, want 1s", got)
	}
	if GCCRampTime(2e6, 1e6) != 0 || GCCRampTime(0, 1e6) != 0 {
		t.Error("GCCRampTime of no increase is not 0")
	}
}

// TestMeasureBWE runs two short flows on a 3.5 Mbps uplink, the second paused from 4 to 8 s:
// the samples cover the run, the estimators and the feedback work, the pause stops the
// paused flow's video (its audio goes on) and cuts the epochs.
func TestMeasureBWE(t *testing.T) {
	base, err := RFC8867("5.4", BWEUplink)
	if err != nil {
		t.Fatal(err)
	}
	c := BWECase{Name: "short", Scenario: base.Scenario, Duration: 12 * time.Second,
		Flows: []BWEFlow{{}, {Pauses: []BWEPause{{At: 4 * time.Second, Resume: 8 * time.Second}}}}}
	res, err := RunBWE(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Aggregate); n < 110 || n > 121 {
		t.Errorf("%d aggregate samples in 12 s, want about 120", n)
	}
	for _, s := range res.Aggregate {
		if s.Capacity != 3_500_000 {
			t.Fatalf("capacity %v at %v", s.Capacity, s.At)
		}
	}
	if len(res.Flows) != 2 || res.Flows[0].Stats.MeanTarget <= 0 || res.Flows[1].Stats.MeanTarget <= 0 {
		t.Fatalf("flows: %+v", res.Flows)
	}
	if res.Gateway.TWCCFeedbackSent < 150 {
		t.Errorf("the gateway sent %d TWCC feedback packets for 2 calls over 12 s, want about 240", res.Gateway.TWCCFeedbackSent)
	}
	// The paused flow sends its audio only (64 kbit/s of PCMU and its headers), the other one
	// its video too.
	paused := res.FlowWindow(1, 5*time.Second, 7*time.Second).MeanSending
	if paused < 40_000 || paused > 120_000 {
		t.Errorf("paused flow sent %.0f bit/s, want its audio's ~70 kbit/s", paused)
	}
	if other := res.FlowWindow(0, 5*time.Second, 7*time.Second).MeanSending; other < 2*paused {
		t.Errorf("running flow sent %.0f bit/s while the other was paused at %.0f", other, paused)
	}
	if resumed := res.FlowWindow(1, 9*time.Second, 12*time.Second).MeanSending; resumed < 1.5*paused {
		t.Errorf("resumed flow sent %.0f bit/s", resumed)
	}
	var cuts []time.Duration
	for _, e := range res.Epochs {
		cuts = append(cuts, e.From)
	}
	if len(cuts) != 3 || cuts[1] != 4*time.Second || cuts[2] != 8*time.Second {
		t.Errorf("epochs start at %v, want [0s 4s 8s]", cuts)
	}
	if e := res.Epochs[1]; len(e.Active) != 1 || e.Active[0] != 0 {
		t.Errorf("active flows during the pause: %v", e.Active)
	}
}
