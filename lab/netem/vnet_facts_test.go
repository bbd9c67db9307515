package netem_test

// Facts about pion/transport/v5's vnet that the lab's impairment models rely on (see FACTS.md).
// Each test pins one fact, so an upgrade that changes it fails here first.

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
)

const (
	txIP   = "10.0.0.1"
	rxIP   = "10.0.0.2"
	rxPort = 5000
)

type arrival struct {
	seq    int
	sentAt time.Time
	at     time.Time
	bytes  int
}

// link is one UDP flow tx -> rx across a vnet router; wrap (optional) wraps rx's NIC, which is
// how vnet's filters and queues attach: they shape what the router delivers to that host.
type link struct {
	router   *vnet.Router
	tx, rx   net.PacketConn
	dst      net.Addr
	closer   interface{ Close() error } // the wrapper, if it has a Close
	wg       sync.WaitGroup
	mu       sync.Mutex
	arrivals []arrival
	next     int
}

func newLink(t *testing.T, cfg vnet.RouterConfig, wrap func(*vnet.Net) (vnet.NIC, error)) *link {
	t.Helper()
	cfg.CIDR = "10.0.0.0/24"
	if cfg.LoggerFactory == nil {
		cfg.LoggerFactory = logging.NewDefaultLoggerFactory()
	}
	r, err := vnet.NewRouter(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	txNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{txIP}})
	if err != nil {
		t.Fatal(err)
	}
	rxNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{rxIP}})
	if err != nil {
		t.Fatal(err)
	}
	l := &link{router: r, dst: &net.UDPAddr{IP: net.ParseIP(rxIP), Port: rxPort}}
	var rxNIC vnet.NIC = rxNet
	if wrap != nil {
		if rxNIC, err = wrap(rxNet); err != nil {
			t.Fatal(err)
		}
		l.closer, _ = rxNIC.(interface{ Close() error })
	}
	if err = r.AddNet(txNet); err != nil {
		t.Fatal(err)
	}
	if err = r.AddNet(rxNIC); err != nil {
		t.Fatal(err)
	}
	if l.tx, err = txNet.ListenPacket("udp4", txIP+":0"); err != nil {
		t.Fatal(err)
	}
	if l.rx, err = rxNet.ListenPacket("udp4", l.dst.String()); err != nil {
		t.Fatal(err)
	}
	if err = r.Start(); err != nil {
		t.Fatal(err)
	}
	l.wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := l.rx.ReadFrom(buf)
			if err != nil {
				return
			}
			a := arrival{at: time.Now(), bytes: n}
			if n >= 16 {
				a.seq = int(binary.BigEndian.Uint64(buf))
				a.sentAt = time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:])))
			}
			l.mu.Lock()
			l.arrivals = append(l.arrivals, a)
			l.mu.Unlock()
		}
	})
	return l
}

// send writes one datagram of size bytes carrying its sequence number and send time.
func (l *link) send(t *testing.T, size int) {
	t.Helper()
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(l.next))
	binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	l.next++
	if _, err := l.tx.WriteTo(b, l.dst); err != nil {
		t.Fatal(err)
	}
}

// close stops the router first (a DelayFilter closed while the router still delivers to it blocks
// the router forever), then the sockets, then the wrapper. It returns the arrivals.
func (l *link) close(t *testing.T) []arrival {
	t.Helper()
	if err := l.router.Stop(); err != nil {
		t.Error(err)
	}
	for _, c := range []net.PacketConn{l.tx, l.rx} {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	l.wg.Wait()
	if l.closer != nil {
		if err := l.closer.Close(); err != nil {
			t.Error(err)
		}
	}
	return l.arrivals
}

// TestTBFQueueDeliversCapAndDrains: vnet.NewQueue(nic, vnet.NewTBFQueue(bit/s, burst bytes, queue
// bytes)) wraps the receiver's NIC. A sender at twice the cap gets exactly the cap through, with a
// steady queue delay of queueBytes*8/rate, and the queue keeps draining on its own timer after
// the sender stops.
func TestTBFQueueDeliversCapAndDrains(t *testing.T) {
	const (
		rate       = 500_000 // bit/s
		burst      = 2000    // bytes
		queueBytes = 50_000
		size       = 1000 // UDP payload bytes
		interval   = 8 * time.Millisecond
	)
	sendFor := 10 * time.Second
	if testing.Short() {
		sendFor = 4 * time.Second
	}
	var arrivals []arrival
	var start, lastSend time.Time
	var sent int
	synctest.Test(t, func(t *testing.T) {
		l := newLink(t, vnet.RouterConfig{}, func(n *vnet.Net) (vnet.NIC, error) {
			return vnet.NewQueue(n, vnet.NewTBFQueue(rate, burst, queueBytes))
		})
		start = time.Now()
		for time.Since(start) < sendFor {
			l.send(t, size)
			time.Sleep(interval)
		}
		lastSend = time.Now().Add(-interval)
		sent = l.next
		time.Sleep(3 * time.Second) // the sender pauses; the queue must drain by itself
		arrivals = l.close(t)
	})
	if t.Failed() {
		return
	}

	var inWindow int
	var delays []time.Duration
	var afterStop []arrival
	for _, a := range arrivals {
		if a.at.Before(start.Add(sendFor)) {
			inWindow += a.bytes
		}
		if a.at.After(start.Add(sendFor/2)) && !a.sentAt.After(lastSend) && a.at.Before(start.Add(sendFor)) {
			delays = append(delays, a.at.Sub(a.sentAt))
		}
		if a.at.After(lastSend) {
			afterStop = append(afterStop, a)
		}
	}
	delivered := float64(inWindow*8) / sendFor.Seconds()
	slices.Sort(delays)
	median := delays[len(delays)/2]
	wantDelay := time.Duration(queueBytes * 8 * int64(time.Second) / rate)
	t.Logf("TBF %d bit/s: sent %d x %d B at %d bit/s; delivered %.1f kbit/s over %v, %d of %d packets; "+
		"queue delay median %v (min %v, max %v, full queue %v); %d packets arrived after the sender stopped, the last %v later",
		rate, sent, size, size*8*int(time.Second/interval), delivered/1000, sendFor, len(arrivals), sent,
		median, delays[0], delays[len(delays)-1], wantDelay, len(afterStop), afterStop[len(afterStop)-1].at.Sub(lastSend))

	if delivered < rate*0.98 || delivered > rate*1.02 {
		t.Errorf("delivered %.0f bit/s, want %d within 2%%", delivered, rate)
	}
	if median < wantDelay*95/100 || median > wantDelay*105/100 {
		t.Errorf("steady queue delay %v, want %v within 5%%", median, wantDelay)
	}
	// The queue held about queueBytes when the sender stopped: that much must still come out, paced
	// at the rate, with no new packet to trigger it.
	if want := queueBytes/size - 3; len(afterStop) < want {
		t.Fatalf("%d packets arrived after the sender stopped, want at least %d", len(afterStop), want)
	}
	pace := time.Duration(size * 8 * int64(time.Second) / rate)
	for i := 1; i < len(afterStop); i++ {
		if gap := afterStop[i].at.Sub(afterStop[i-1].at); gap < pace*9/10 || gap > pace*11/10 {
			t.Errorf("draining: gap %v between packets %d and %d, want %v", gap, afterStop[i-1].seq, afterStop[i].seq, pace)
			break
		}
	}
}

// TestTBFBurstBelowOnePacketDeliversNothing: a burst smaller than one packet never lets it through,
// without any error or log.
func TestTBFBurstBelowOnePacketDeliversNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLink(t, vnet.RouterConfig{}, func(n *vnet.Net) (vnet.NIC, error) {
			return vnet.NewQueue(n, vnet.NewTBFQueue(1_000_000, 999, 100_000))
		})
		for range 10 {
			l.send(t, 1000)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(5 * time.Second)
		if got := len(l.close(t)); got != 0 {
			t.Errorf("%d packets delivered with a 999-byte burst, want 0", got)
		}
	})
}

// TestRouterConfigRequiresLoggerFactory: vnet.NewRouter dereferences RouterConfig.LoggerFactory.
func TestRouterConfigRequiresLoggerFactory(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("vnet.NewRouter without LoggerFactory did not panic")
		}
	}()
	_, _ = vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24"})
}

// TestVnetHasNoTCP: TCP is still unsupported, and CreateListenConfig(...).Listen is not virtual at
// all: it opens a real OS socket.
func TestVnetHasNoTCP(t *testing.T) {
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{rxIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err = r.AddNet(n); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.ParseIP(rxIP), Port: 5060}
	if _, err := n.ListenTCP("tcp4", addr); !errors.Is(err, transport.ErrNotSupported) {
		t.Errorf("ListenTCP: %v, want ErrNotSupported", err)
	}
	if _, err := n.DialTCP("tcp4", nil, addr); !errors.Is(err, transport.ErrNotSupported) {
		t.Errorf("DialTCP: %v, want ErrNotSupported", err)
	}
	if c, err := n.Dial("tcp", addr.String()); err == nil {
		_ = c.Close()
		t.Error(`Dial("tcp") succeeded`)
	}
	if c, err := n.CreateDialer(&net.Dialer{}).Dial("tcp", addr.String()); err == nil {
		_ = c.Close()
		t.Error(`CreateDialer().Dial("tcp") succeeded`)
	}

	// The hole in the seam: this listener is the host's, on 127.0.0.1, reachable with net.Dial.
	ln, err := n.CreateListenConfig(&net.ListenConfig{}).Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("CreateListenConfig().Listen: %v", err)
	}
	defer func() { _ = ln.Close() }()
	if _, real := ln.(*net.TCPListener); !real {
		t.Errorf("CreateListenConfig().Listen returned %T, expected the OS's *net.TCPListener", ln)
	}
	c, err := net.DialTimeout("tcp4", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("a real dial to the \"virtual\" listener: %v", err)
	}
	_ = c.Close()
}

// TestRouterMaxJitterStallsRouter: RouterConfig.MaxJitter still sleeps in processChunks with the
// router's mutex held, so every host's write blocks meanwhile. (Inside synctest this is a hang: a
// goroutine blocked on a mutex is not durably blocked, so the clock never advances. This test uses
// real time.)
func TestRouterMaxJitterStallsRouter(t *testing.T) {
	writes := func(jitter time.Duration) time.Duration {
		l := newLink(t, vnet.RouterConfig{MaxJitter: jitter}, nil)
		var took time.Duration
		for range 10 {
			time.Sleep(2 * time.Millisecond) // let the router pick up the previous chunk
			start := time.Now()
			l.send(t, 100)
			took += time.Since(start)
		}
		l.close(t)
		return took
	}
	without, with := writes(0), writes(50*time.Millisecond)
	t.Logf("10 WriteTo calls 2 ms apart spent %v blocked without MaxJitter, %v with MaxJitter 50ms", without, with)
	if with < 30*time.Millisecond {
		t.Errorf("writes took %v with MaxJitter 50ms: the router no longer blocks senders", with)
	}
}

// TestDelayFilterV5: NewDelayFilter(nic, WithDelay(d)) starts itself (Run is a no-op now), applies
// exactly d, and is FIFO: lowering the delay never lets a packet overtake an earlier one.
func TestDelayFilterV5(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var df *vnet.DelayFilter
		l := newLink(t, vnet.RouterConfig{}, func(n *vnet.Net) (vnet.NIC, error) {
			var err error
			df, err = vnet.NewDelayFilter(n, vnet.WithDelay(50*time.Millisecond))
			return df, err
		})
		l.send(t, 100) // seq 0, 50 ms
		time.Sleep(time.Second)
		df.SetDelay(200 * time.Millisecond)
		l.send(t, 100) // seq 1, 200 ms
		// The filter reads the delay when the router hands it the chunk, not when the host sends
		// it: let the router take seq 1 before changing the delay.
		synctest.Wait()
		df.SetDelay(10 * time.Millisecond)
		l.send(t, 100) // seq 2, 10 ms, but behind seq 1
		time.Sleep(time.Second)
		arr := l.close(t)
		if len(arr) != 3 {
			t.Fatalf("%d arrivals, want 3", len(arr))
		}
		got := []time.Duration{arr[0].at.Sub(arr[0].sentAt), arr[1].at.Sub(arr[1].sentAt), arr[2].at.Sub(arr[2].sentAt)}
		t.Logf("delays: seq %d %v, seq %d %v, seq %d %v", arr[0].seq, got[0], arr[1].seq, got[1], arr[2].seq, got[2])
		if want := []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("delays %v, want %v (FIFO: seq 2 waits behind seq 1)", got, want)
		}
		if !sort.SliceIsSorted(arr, func(i, j int) bool { return arr[i].seq < arr[j].seq }) {
			t.Error("delay filter reordered packets")
		}
	})
}

// TestLossFilterV5: NewLossFilter(nic, percent, options...) with WithLossSeed is reproducible, and
// WithShuffleLossHandler(block) drops exactly round(block*percent/100) per block.
func TestLossFilterV5(t *testing.T) {
	const packets = 2000
	run := func(opts ...vnet.LossFilterOption) []int {
		var lost []int
		synctest.Test(t, func(t *testing.T) {
			l := newLink(t, vnet.RouterConfig{}, func(n *vnet.Net) (vnet.NIC, error) {
				return vnet.NewLossFilter(n, 5, opts...)
			})
			for range packets {
				l.send(t, 100)
				time.Sleep(time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			got := map[int]bool{}
			for _, a := range l.close(t) {
				got[a.seq] = true
			}
			for i := range packets {
				if !got[i] {
					lost = append(lost, i)
				}
			}
		})
		return lost
	}
	a, b := run(vnet.WithLossSeed(42)), run(vnet.WithLossSeed(42))
	shuffled := run(vnet.WithShuffleLossHandler(20), vnet.WithLossSeed(7))
	t.Logf("5%% loss of %d packets: seeded random lost %d (twice the same: %v); shuffle block 20 lost %d",
		packets, len(a), slices.Equal(a, b), len(shuffled))
	if len(a) < packets*3/100 || len(a) > packets*7/100 {
		t.Errorf("seeded random loss dropped %d of %d, want about 5%%", len(a), packets)
	}
	if !slices.Equal(a, b) {
		t.Error("the same seed dropped different packets")
	}
	if len(shuffled) != packets/20 {
		t.Errorf("shuffle loss dropped %d, want exactly %d", len(shuffled), packets/20)
	}
}
