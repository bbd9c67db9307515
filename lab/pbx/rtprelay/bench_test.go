package rtprelay

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRelay measures RTP packets per second through one relay direction
// on loopback: phone A sends 172-byte RTP packets to the PBX, the relay sends
// them on to phone B. At most `window` packets are in flight, so the figure is
// the relay's throughput rather than the socket buffers' overflow rate.
func BenchmarkRelay(b *testing.B) {
	n := newStdNet(b)
	alloc := mustAllocator(b, n, loopback, loopbackMinPort, loopbackMaxPort)
	epA, epB := mustAllocate(b, alloc), mustAllocate(b, alloc)
	phoneA, phoneB := listen(b, n, loopback), listen(b, n, loopback)
	epA.SetRemote(addrOf(phoneA), netip.AddrPort{})
	epB.SetRemote(addrOf(phoneB), netip.AddrPort{})
	relay := NewRelay(epA, epB)
	relay.Start()
	b.Cleanup(func() { _ = relay.Close() })

	const window = 64
	credits := make(chan struct{}, window)
	var received atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := phoneB.ReadFrom(buf); err != nil {
				return
			}
			received.Add(1)
			select {
			case <-credits:
			default:
			}
		}
	}()

	pkt := makeRTP(b, 0xA11CE, 1, 160)
	dst := net.UDPAddrFromAddrPort(epA.RTPAddr())
	stall := time.NewTimer(time.Hour)
	lost := 0
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		select {
		case credits <- struct{}{}:
		default:
			stall.Reset(200 * time.Millisecond)
			select {
			case credits <- struct{}{}:
			case <-stall.C:
				lost++ // a packet in flight never arrived: take its credit back
				<-credits
				credits <- struct{}{}
			}
			stall.Stop()
		}
		if _, err := phoneA.WriteTo(pkt, dst); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Second); received.Load()+int64(lost) < int64(b.N) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	got := received.Load()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "pkt/s")
	b.ReportMetric(float64(int64(b.N)-got)/float64(b.N), "loss")
	if st := relay.Stats().AToB; st.Packets+st.Dropped+st.SendErrors > uint64(b.N) { //nolint:gosec // b.N > 0
		b.Fatalf("relay counted %d packets for %d sent", st.Packets, b.N)
	}
}
