package scenario

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
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
	// A container PBX's world is split: the PBX's and the phone's links are real.
	if _, err := New(Config{Emulated: true, Backend: pbx.BackendAsterisk, Links: map[string]Link{HostPhone: {}}}); err == nil {
		t.Error("a phone link in an emulated world with Asterisk was accepted")
	}
	if _, err := New(Config{Backend: "sipxecs"}); err == nil {
		t.Error("an unknown backend was accepted")
	}
	emb, err := pbx.LoadEmbedded(pbx.EmbeddedConfig{ConfDir: "../../freeswitch/conf"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PBX: emb.Control()}); err == nil {
		t.Error("an embedded PBX was accepted as a shared container PBX")
	}
	if !(Config{Emulated: true}).Virtual() || (Config{Emulated: true, Backend: pbx.BackendAsterisk}).Virtual() || (Config{}).Virtual() ||
		(Config{Emulated: true, PBX: fakeContainer{}}).Virtual() {
		t.Error("Virtual: want virtual time only on the emulated network with the embedded PBX")
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

// TestWorldAsterisk places a WebRTC -> SIP call client -> gateway -> Asterisk -> phone, with
// media both ways, in a world whose PBX is the Asterisk container: on loopback (the world starts
// its container), and on the emulated network (split: the client's link delays 40 ms each way
// while the PBX, the phone and the gateway's SIP leg are real) with a container the test shares
// with the world (Config.PBX), which outlives it and whose log the world passes on from its own
// start only. Both run in real time. Without Docker or the image the test skips with the
// reason, unless LAB_REQUIRE names asterisk.
func TestWorldAsterisk(t *testing.T) {
	for _, emulated := range []bool{false, true} {
		name := "loopback"
		if emulated {
			name = "emulated"
		}
		t.Run(name, func(t *testing.T) {
			pbx.RequireBackend(t, pbx.BackendAsterisk)
			delay := netem.LinkConfig{Delay: netem.DelayModel{Base: 40 * time.Millisecond}}
			var logs string
			cfg := Config{Emulated: emulated, Seed: 3, Backend: pbx.BackendAsterisk,
				PBXLogs: func(_ pbx.Backend, l string) { logs = l }}
			var shared pbx.Controlled
			if emulated {
				cfg.Links = map[string]Link{HostClient: {Up: delay, Down: delay}}
				p, err := StartPBX(context.Background(), pbx.BackendAsterisk, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				shared, cfg.PBX, cfg.Backend = p, p, ""
			}
			res, err := In(t, cfg, carryACall)
			if err != nil {
				t.Fatalf("%v\nAsterisk's output:\n%s", err, logs)
			}
			if shared != nil {
				if n, err := shared.ActiveCalls(context.Background()); err != nil || n != 0 {
					t.Errorf("the shared Asterisk after the world: %d calls, %v; want it running with none", n, err)
				}
				if strings.Contains(logs, "PBX UUID") || !strings.Contains(logs, "Dial(") {
					t.Errorf("the world passed on the shared container's output from before its start, or none of its call:\n%s", logs)
				}
			}
			if res.virtual || res.backend != pbx.BackendAsterisk {
				t.Errorf("world: virtual %v, backend %q; want real time with asterisk", res.virtual, res.backend)
			}
			min := 1 * time.Millisecond
			if emulated {
				min = 160 * time.Millisecond // signalling and ICE/DTLS cross the 80 ms round trip
			}
			if res.setup < min || res.setup > 5*time.Second {
				t.Errorf("set up in %v, want %v to 5 s", res.setup, min)
			}
			if res.phoneRx < 80 || res.webRx < 80 {
				t.Errorf("audio packets in 2 s: phone %d, client %d; want about 100 each way", res.phoneRx, res.webRx)
			}
			if res.pbxCalls != 1 {
				t.Errorf("Asterisk counted %d calls during the call, want 1", res.pbxCalls)
			}
			if emulated && !res.clientEmulated {
				t.Errorf("the client's selected pair is not on the emulated network: %s", res.pair)
			}
			t.Logf("set up in %v; phone got %d packets, client %d; client pair %s", res.setup, res.phoneRx, res.webRx, res.pair)
		})
	}
}

type callResult struct {
	setup          time.Duration
	phoneRx, webRx uint64
	pbxCalls       int
	virtual        bool
	backend        pbx.Backend
	pair           string
	clientEmulated bool
}

// carryACall places a call from client 1005 to phone 1010 and lets it carry audio for 2 s.
func carryACall(w *World) (callResult, error) {
	r := callResult{virtual: w.Virtual(), backend: w.Backend()}
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
	if r.pbxCalls, err = w.PBX().ActiveCalls(ctx); err != nil {
		return r, err
	}
	if p, err := c.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair(); err == nil && p != nil {
		r.pair = p.String()
		r.clientEmulated = p.Local.Address == w.Host(HostClient).IP.String() && p.Remote.Address == w.Host(HostGateway).IP.String()
	}
	if err := c.Hangup(ctx, "done"); err != nil {
		return r, err
	}
	return r, w.Quiesce(10 * time.Second)
}

// fakeContainer stands for a shared container PBX in configuration checks.
type fakeContainer struct{ pbx.Controlled }

func (fakeContainer) Backend() pbx.Backend { return pbx.BackendAsterisk }
