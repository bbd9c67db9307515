package scenario

import (
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

func TestSetupIntervalBounds(t *testing.T) {
	for _, dir := range []Direction{WebRTCToSIP, SIPToWebRTC} {
		ivs := SetupIntervals(dir)
		if len(ivs) != 4 {
			t.Fatalf("%v: %d intervals", dir, len(ivs))
		}
		for _, iv := range ivs {
			b := iv.Bound(100 * time.Millisecond)
			want := time.Duration(iv.Legs)*50*time.Millisecond + SetupSlack
			if iv.Media {
				want += SetupFrame
			}
			if b.Limit() != want {
				t.Errorf("%v %s: limit %v, want %v", dir, iv.Name, b.Limit(), want)
			}
			if p := iv.LosslessProbability(0); p != 1 {
				t.Errorf("%s: lossless probability without loss %v", iv.Name, p)
			}
			if iv.Packets < 1 {
				t.Errorf("%s: no critical packet", iv.Name)
			}
		}
	}
	sig := SetupInterval{SignallingOnly: true}
	if got := sig.RetransmissionAllowance(400 * time.Millisecond); got != 2400*time.Millisecond {
		t.Errorf("signalling allowance at 400 ms: %v, want 3 RTOs of 800 ms", got)
	}
	if got := (SetupInterval{}).RetransmissionAllowance(50 * time.Millisecond); got != 3*time.Second {
		t.Errorf("allowance at 50 ms: %v, want a DTLS flight resent after 1 s then 2 s", got)
	}
	if got := (SetupInterval{Packets: 2}).LosslessProbability(0.5); got != 0.25 {
		t.Errorf("lossless probability of 2 packets at 50%%: %v", got)
	}
}

// TestMeasureSetupMatchesTheFlow checks the derivation of SetupIntervals against one lossless
// call each way at 100 ms: every interval takes exactly its one-way crossings (media: up to one
// packet interval more), nothing less and nothing more.
func TestMeasureSetupMatchesTheFlow(t *testing.T) {
	const rtt = 100 * time.Millisecond
	l := netem.LinkConfig{Delay: netem.DelayModel{Base: rtt / 2}}
	cfg := Config{Emulated: true, Seed: 1, Links: map[string]Link{HostClient: {Up: l, Down: l}}}
	for _, dir := range []Direction{WebRTCToSIP, SIPToWebRTC} {
		res, err := In(t, cfg, func(w *World) (SetupResult, error) { return MeasureSetup(w, dir, SetupOptions{}) })
		if err != nil {
			t.Fatalf("%v: %v", dir, err)
		}
		if len(res.Calls) != 1 || res.Summary.Count != 1 {
			t.Fatalf("%v: %d calls", dir, len(res.Calls))
		}
		for _, iv := range SetupIntervals(dir) {
			d, ok := iv.Of(res.Calls[0])
			if !ok {
				t.Fatalf("%v: no %s", dir, iv.Name)
			}
			lo := time.Duration(iv.Legs) * rtt / 2
			hi := lo
			if iv.Media {
				hi += SetupFrame
			}
			if d < lo || d > hi {
				t.Errorf("%v %s: %v, want %v (%d one-way crossings)%s", dir, iv.Name, d, lo, iv.Legs, map[bool]string{true: " + up to 20 ms"}[iv.Media])
			}
			if !iv.Bound(rtt).Within(d) {
				t.Errorf("%v %s: %v beyond its bound %v", dir, iv.Name, d, iv.Bound(rtt).Limit())
			}
		}
	}
}
