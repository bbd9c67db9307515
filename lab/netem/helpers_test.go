package netem_test

import (
	"encoding/binary"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

// recv is one datagram a flow's receiver read.
type recv struct {
	seq    int
	sentAt time.Time
	at     time.Time
	size   int
}

func (r recv) delay() time.Duration { return r.at.Sub(r.sentAt) }

// flow is one UDP flow between two hosts of a fresh network: datagrams carry a sequence number
// and their send time, the receiver records what arrives. Use it inside a synctest bubble.
type flow struct {
	t      *testing.T
	nw     *netem.Network
	a, b   *netem.Host
	tx, rx net.PacketConn
	dst    net.Addr
	sent   int
	sentAt []time.Time

	wg  sync.WaitGroup
	mu  sync.Mutex
	got []recv
}

// newFlow builds hosts a (sender) and b (receiver), lets setup configure them (before Start), and
// starts the network.
func newFlow(t *testing.T, setup func(a, b *netem.Host), opts ...netem.Option) *flow {
	t.Helper()
	nw, err := netem.New("", opts...)
	if err != nil {
		t.Fatal(err)
	}
	f := &flow{t: t, nw: nw}
	if f.a, err = nw.AddHost("a", ""); err != nil {
		t.Fatal(err)
	}
	if f.b, err = nw.AddHost("b", ""); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(f.a, f.b)
	}
	if err := nw.Start(); err != nil {
		t.Fatal(err)
	}
	if f.tx, err = f.a.Net.ListenPacket("udp4", f.a.IP.String()+":0"); err != nil {
		t.Fatal(err)
	}
	if f.rx, err = f.b.Net.ListenPacket("udp4", f.b.IP.String()+":4000"); err != nil {
		t.Fatal(err)
	}
	f.dst = f.rx.LocalAddr()
	f.wg.Go(func() { f.read(f.rx) })
	return f
}

func (f *flow) read(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		r := recv{at: time.Now(), size: n}
		if n >= 16 {
			r.seq = int(binary.BigEndian.Uint64(buf))
			r.sentAt = time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:])))
		}
		f.mu.Lock()
		f.got = append(f.got, r)
		f.mu.Unlock()
	}
}

// send writes one datagram of size bytes (at least 16) from a to b.
func (f *flow) send(size int) {
	b := make([]byte, max(size, 16))
	now := time.Now()
	binary.BigEndian.PutUint64(b, uint64(f.sent))
	binary.BigEndian.PutUint64(b[8:], uint64(now.UnixNano()))
	f.sent++
	f.sentAt = append(f.sentAt, now)
	if _, err := f.tx.WriteTo(b, f.dst); err != nil {
		f.t.Fatal(err)
	}
}

// sendEvery sends n datagrams of size bytes, burst at a time, one burst per interval.
func (f *flow) sendEvery(n, size, burst int, interval time.Duration) {
	for i := range n {
		f.send(size)
		if i%burst == burst-1 {
			time.Sleep(interval)
		}
	}
}

// close waits for what is in flight, closes everything and returns what arrived.
func (f *flow) close(wait time.Duration) []recv {
	time.Sleep(wait)
	_ = f.tx.Close()
	_ = f.rx.Close()
	f.wg.Wait()
	if err := f.nw.Close(); err != nil {
		f.t.Error(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// lostSeqs lists the sequence numbers of [0, sent) that never arrived.
func lostSeqs(got []recv, sent int) []int {
	seen := make([]bool, sent)
	for _, r := range got {
		if r.seq < sent {
			seen[r.seq] = true
		}
	}
	var lost []int
	for i, ok := range seen {
		if !ok {
			lost = append(lost, i)
		}
	}
	return lost
}

// binomialCI99 is the 99% interval of a Binomial(n, p) count.
func binomialCI99(n int, p float64) (lo, hi float64) {
	mean := float64(n) * p
	half := 2.576 * math.Sqrt(float64(n)*p*(1-p))
	return mean - half, mean + half
}

// quantile is the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func within(got, want, tol time.Duration) bool {
	d := got - want
	return d >= -tol && d <= tol
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
