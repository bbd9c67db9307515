package scenario

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

// TestWorldCarriesACall places a WebRTC -> SIP call across an emulated world whose client link
// has 40 ms of delay each way: the call is set up, audio flows both ways, and Close ends every
// goroutine (synctest would panic otherwise).
func TestWorldCarriesACall(t *testing.T) {
	type result struct {
		setup          time.Duration
		phoneRx, webRx uint64
	}
	delay := netem.LinkConfig{Delay: netem.DelayModel{Base: 40 * time.Millisecond}}
	cfg := Config{Emulated: true, Seed: 3, Links: map[string]Link{HostClient: {Up: delay, Down: delay}}}
	res, err := In(t, cfg, func(w *World) (result, error) {
		var r result
		ctx, cancel := context.WithTimeout(w.Context(), time.Minute)
		defer cancel()
		ph, err := w.Phone("1010")
		if err != nil {
			return r, err
		}
		cl, err := w.Client("1005")
		if err != nil {
			return r, err
		}
		start := time.Now()
		c, err := cl.Call(ctx, "1010")
		if err != nil {
			return r, err
		}
		if err := c.WaitConnected(ctx); err != nil {
			return r, err
		}
		r.setup = time.Since(start)
		time.Sleep(2 * time.Second)
		calls := ph.Calls()
		if len(calls) != 1 {
			return r, fmt.Errorf("phone has %d calls", len(calls))
		}
		r.phoneRx = calls[0].Media().Stats().PacketsReceived
		r.webRx = c.Stats().Audio.PacketsReceived
		return r, c.Hangup(ctx, "done")
	})
	if err != nil {
		t.Fatal(err)
	}
	// Signalling and ICE/DTLS cross the 80 ms round trip several times, and nothing else delays.
	if res.setup < 160*time.Millisecond || res.setup > 2*time.Second {
		t.Errorf("set up in %v", res.setup)
	}
	if res.phoneRx < 80 || res.webRx < 80 {
		t.Errorf("audio packets in 2 s: phone %d, client %d; want about 100 each way", res.phoneRx, res.webRx)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Links: map[string]Link{"nobody": {}}}); err == nil {
		t.Error("a link for an unknown host was accepted")
	}
	var cfg Config
	s := &netem.Scenario{Name: "x", Hosts: []netem.HostSpec{{Name: "sender"}}}
	if err := cfg.ApplyScenario(s, nil); err == nil {
		t.Error("an unmapped scenario host was accepted")
	}
	if err := cfg.ApplyScenario(s, map[string]string{"sender": HostClient}); err != nil {
		t.Error(err)
	}
}
