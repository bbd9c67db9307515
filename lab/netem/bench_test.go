package netem_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

// inBubble runs f inside a synctest bubble from a benchmark: synctest.Test needs a *testing.T,
// which testing.RunTests provides.
func inBubble(b *testing.B, f func(t *testing.T)) {
	b.Helper()
	ok := testing.RunTests(func(_, _ string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: b.Name() + "/bubble", F: func(t *testing.T) { synctest.Test(t, f) }}})
	if !ok {
		b.Fatal("the bubble failed")
	}
}

// benchLink is the impaired access link of the benchmark's call, both directions.
var benchLink = netem.LinkConfig{
	Loss:     netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.02},
	Delay:    netem.DelayModel{Base: 40 * time.Millisecond, Jitter: netem.JitterUniform, Mean: 5 * time.Millisecond},
	Capacity: netem.CapacityModel{Rate: 2_000_000},
}

const (
	benchCall     = 10 * time.Second
	audioBytes    = 160
	audioInterval = 20 * time.Millisecond // 50 packets/s
	videoBytes    = 1200
	videoInterval = 9600 * time.Microsecond // 1200 B every 9.6 ms: 1 Mbit/s
)

// BenchmarkCall measures emulated seconds per wall second for a two-party call: each party
// sends 50 pps of 160 B audio and 1 Mbit/s of 1200 B video over raw UDP sockets, across alice's
// access link (2% loss, 40 ms delay, uniform jitter of mean 5 ms, 2 Mbit/s capacity, both ways),
// in virtual time.
func BenchmarkCall(b *testing.B) {
	var emulated, wall time.Duration
	var sent, received atomic.Int64
	for b.Loop() {
		start := time.Now()
		inBubble(b, func(t *testing.T) {
			t0 := time.Now()
			runRawCall(t, benchCall, &sent, &received)
			emulated += time.Since(t0)
		})
		wall += time.Since(start)
	}
	b.ReportMetric(emulated.Seconds()/wall.Seconds(), "emul-s/s")
	b.ReportMetric(1-float64(received.Load())/float64(sent.Load()), "loss")
}

func runRawCall(t *testing.T, d time.Duration, sent, received *atomic.Int64) {
	nw, err := netem.New("")
	must(t, err)
	alice, _ := nw.AddHost("alice", "")
	bob, _ := nw.AddHost("bob", "")
	must(t, alice.Up.Set(benchLink))
	must(t, alice.Down.Set(benchLink))
	must(t, nw.Start())

	var readers, senders sync.WaitGroup
	var conns []net.PacketConn
	open := func(h *netem.Host) net.PacketConn {
		c, err := h.Net.ListenPacket("udp4", h.IP.String()+":0")
		must(t, err)
		conns = append(conns, c)
		readers.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
				received.Add(1)
			}
		})
		return c
	}
	stream := func(from, to net.PacketConn, size int, every time.Duration) {
		senders.Go(func() {
			payload := make([]byte, size)
			tick := time.NewTicker(every)
			defer tick.Stop()
			for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
				if _, err := from.WriteTo(payload, to.LocalAddr()); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		})
	}
	aAudio, aVideo, bAudio, bVideo := open(alice), open(alice), open(bob), open(bob)
	stream(aAudio, bAudio, audioBytes, audioInterval)
	stream(bAudio, aAudio, audioBytes, audioInterval)
	stream(aVideo, bVideo, videoBytes, videoInterval)
	stream(bVideo, aVideo, videoBytes, videoInterval)
	senders.Wait()
	time.Sleep(200 * time.Millisecond) // the last packets arrive
	for _, c := range conns {
		_ = c.Close()
	}
	readers.Wait()
	must(t, nw.Close())
}
