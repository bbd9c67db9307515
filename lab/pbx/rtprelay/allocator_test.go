package rtprelay

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var pbxIP = netip.MustParseAddr("10.77.0.2")

func TestNewAllocatorRejectsBadRanges(t *testing.T) {
	l := newLab(t, 0, "10.77.0.2")
	host := l.hosts["10.77.0.2"]
	for _, tc := range []struct {
		name             string
		ip               netip.Addr
		minPort, maxPort int
		want             error
		mentions         []string
	}{
		{"odd min", pbxIP, 16385, 32768, ErrPortRange, []string{"16385", "odd"}},
		{"min equals max", pbxIP, 20000, 20000, ErrPortRange, []string{"20000"}},
		{"min above max", pbxIP, 30000, 20000, ErrPortRange, []string{"30000", "20000"}},
		{"zero min", pbxIP, 0, 100, ErrPortRange, []string{"0-100", "1-65535"}},
		{"max beyond 65535", pbxIP, 60000, 70000, ErrPortRange, []string{"60000-70000"}},
		{"invalid IP", netip.Addr{}, 16384, 32768, ErrAddress, []string{"invalid IP"}},
		{"unspecified IP", netip.IPv4Unspecified(), 16384, 32768, ErrAddress, []string{"0.0.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAllocator(host, tc.ip, tc.minPort, tc.maxPort)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	if _, err := NewAllocator(host, pbxIP, 16384, 32768); err != nil {
		t.Fatalf("FreeSWITCH's default range 16384-32768: %v", err)
	}
}

func TestAllocatorExhaustionAndRelease(t *testing.T) {
	l := newLab(t, 0, "10.77.0.2")
	alloc := mustAllocator(t, l.hosts["10.77.0.2"], pbxIP, 10000, 10003) // two pairs
	e1 := mustAllocate(t, alloc)
	e2 := mustAllocate(t, alloc)
	if got := []uint16{e1.RTPAddr().Port(), e1.RTCPAddr().Port(), e2.RTPAddr().Port()}; got[0] != 10000 || got[1] != 10001 || got[2] != 10002 {
		t.Fatalf("ports %v, want RTP 10000 (RTCP 10001) then 10002", got)
	}
	if e1.RTPAddr().Addr() != pbxIP {
		t.Fatalf("endpoint on %s, want %s", e1.RTPAddr().Addr(), pbxIP)
	}

	_, err := alloc.Allocate()
	if !errors.Is(err, ErrNoPorts) || !strings.Contains(err.Error(), "10000-10003") {
		t.Fatalf("third allocation: got %v, want ErrNoPorts naming the range", err)
	}
	if alloc.InUse() != 2 {
		t.Fatalf("in use %d, want 2", alloc.InUse())
	}

	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e1.Close(); !errors.Is(err, ErrEndpointClosed) {
		t.Fatalf("second close: got %v, want ErrEndpointClosed", err)
	}
	e3 := mustAllocate(t, alloc)
	if e3.RTPAddr().Port() != 10000 {
		t.Fatalf("after release got port %d, want the released 10000", e3.RTPAddr().Port())
	}
}

func TestAllocatorRoundRobinWrapsAndSkipsBusyPorts(t *testing.T) {
	l := newLab(t, 0, "10.77.0.2")
	host := l.hosts["10.77.0.2"]
	alloc := mustAllocator(t, host, pbxIP, 10000, 10007) // four pairs

	// Someone else holds 10002 (an RTP port) and 10005 (an RTCP port).
	for _, port := range []int{10002, 10005} {
		c, err := host.ListenUDP("udp4", &net.UDPAddr{IP: pbxIP.AsSlice(), Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	e1 := mustAllocate(t, alloc)
	e2 := mustAllocate(t, alloc)
	if e1.RTPAddr().Port() != 10000 || e2.RTPAddr().Port() != 10006 {
		t.Fatalf("got %d and %d, want 10000 and 10006 (10002 and 10004 busy)", e1.RTPAddr().Port(), e2.RTPAddr().Port())
	}
	_, err := alloc.Allocate()
	if !errors.Is(err, ErrNoPorts) || !strings.Contains(err.Error(), "last bind error") {
		t.Fatalf("got %v, want ErrNoPorts with the last bind error", err)
	}

	// Released ports come back only after the rest of the range: wrap-around.
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	e3 := mustAllocate(t, alloc)
	if e3.RTPAddr().Port() != 10000 {
		t.Fatalf("after wrap-around got %d, want 10000", e3.RTPAddr().Port())
	}
}

func TestAllocatorOnLoopback(t *testing.T) {
	alloc := mustAllocator(t, newStdNet(t), loopback, loopbackMinPort, loopbackMaxPort)
	e := mustAllocate(t, alloc)
	if p := e.RTPAddr().Port(); p%2 != 0 || e.RTCPAddr().Port() != p+1 || e.RTPAddr().Addr() != loopback {
		t.Fatalf("endpoint %s / %s: want an even RTP port on 127.0.0.1 and RTCP on the next", e.RTPAddr(), e.RTCPAddr())
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if alloc.InUse() != 0 {
		t.Fatalf("in use %d after close, want 0", alloc.InUse())
	}
}

func TestAllocatorDoesNotReuseAJustReleasedPort(t *testing.T) {
	l := newLab(t, 0, "10.77.0.2")
	alloc := mustAllocator(t, l.hosts["10.77.0.2"], pbxIP, 10000, 10005) // three pairs
	e1 := mustAllocate(t, alloc)
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint16{10002, 10004, 10000} {
		if got := mustAllocate(t, alloc).RTPAddr().Port(); got != want {
			t.Fatalf("got port %d, want %d (round-robin)", got, want)
		}
	}
}
