package rtprelay

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/transport/v5"
)

// callSetup places phone A, the PBX and phone B, each on its own
// transport.Net (possibly the same one).
type callSetup struct {
	pbxNet, aNet, bNet transport.Net
	pbxIP, aIP, bIP    netip.Addr
	minPort, maxPort   int
	bMux               bool          // phone B offered and uses rtcp-mux
	packets            int           // RTP packets each way
	interval           time.Duration // between packets; 0: as fast as they come back
}

// call is one bridged call through a relay, after runCall has checked it.
type call struct {
	relay    *Relay
	epA, epB *Endpoint
	a, b     *phone
	start    time.Time // when phone A sent its first packet
	firstAtB time.Time // when phone B received it
}

// runCall bridges phones A and B through a relay, sends RTP both ways and
// one RTCP report each way, and checks that everything arrived intact from
// the PBX's addresses and that the relay's counters match.
func runCall(t *testing.T, s callSetup) *call {
	t.Helper()
	alloc := mustAllocator(t, s.pbxNet, s.pbxIP, s.minPort, s.maxPort)
	c := &call{
		epA: mustAllocate(t, alloc),
		epB: mustAllocate(t, alloc),
		a:   newPhone(t, s.aNet, s.aIP),
		b:   newPhone(t, s.bNet, s.bIP),
	}
	c.epA.SetRemote(c.a.rtpAddr(), c.a.rtcpAddr())
	bRTCPIn, bRTCPConn, bRTCP, pbxBRTCP := c.b.rtcpIn, c.b.rtcp, c.b.rtcpAddr(), c.epB.RTCPAddr()
	if s.bMux {
		bRTCPIn, bRTCPConn, bRTCP, pbxBRTCP = c.b.rtpIn, c.b.rtp, c.b.rtpAddr(), c.epB.RTPAddr()
	}
	c.epB.SetRemote(c.b.rtpAddr(), bRTCP)

	var recorded [2]atomic.Uint64
	c.relay = NewRelay(c.epA, c.epB, WithRecorder(func(d Direction, _ []byte, _ time.Time) {
		recorded[d].Add(1)
	}))
	c.relay.Start()
	t.Cleanup(func() { _ = c.relay.Close() })

	var bytesAB, bytesBA uint64
	c.start = time.Now()
	for i := range s.packets {
		seq := uint16(1000 + i) //nolint:gosec // small
		toB := makeRTP(t, 0xA11CE, seq, 160)
		toA := makeRTP(t, 0xB0B, seq, 172)
		send(t, c.a.rtp, toB, c.epA.RTPAddr())
		send(t, c.b.rtp, toA, c.epB.RTPAddr())

		atB := expect(t, c.b.rtpIn, "RTP at phone B")
		atA := expect(t, c.a.rtpIn, "RTP at phone A")
		if i == 0 {
			c.firstAtB = atB.at
		}
		for _, got := range []struct {
			d         datagram
			sent      []byte
			from      netip.AddrPort
			ssrc, who string
		}{
			{atB, toB, c.epB.RTPAddr(), "A", "B"},
			{atA, toA, c.epA.RTPAddr(), "B", "A"},
		} {
			if !bytes.Equal(got.d.data, got.sent) {
				t.Fatalf("packet %d at phone %s differs from what %s sent", i, got.who, got.ssrc)
			}
			if p := parseRTP(t, got.d.data); p.SequenceNumber != seq {
				t.Fatalf("phone %s got seq %d, want %d", got.who, p.SequenceNumber, seq)
			}
			if got.d.from != got.from {
				t.Fatalf("phone %s got media from %s, want the PBX's %s", got.who, got.d.from, got.from)
			}
		}
		bytesAB += uint64(len(toB))
		bytesBA += uint64(len(toA))
		if s.interval > 0 {
			time.Sleep(s.interval)
		}
	}

	rrA := receiverReport(t, 0xA11CE)
	send(t, c.a.rtcp, rrA, c.epA.RTCPAddr())
	got := expect(t, bRTCPIn, "RTCP at phone B")
	if ssrc := reportSSRC(t, got.data); ssrc != 0xA11CE || got.from != pbxBRTCP {
		t.Fatalf("phone B got RTCP of SSRC %x from %s, want %x from %s", ssrc, got.from, 0xA11CE, pbxBRTCP)
	}
	rrB := receiverReport(t, 0xB0B)
	send(t, bRTCPConn, rrB, pbxBRTCP)
	got = expect(t, c.a.rtcpIn, "RTCP at phone A")
	if ssrc := reportSSRC(t, got.data); ssrc != 0xB0B || got.from != c.epA.RTCPAddr() {
		t.Fatalf("phone A got RTCP of SSRC %x from %s, want %x from %s", ssrc, got.from, 0xB0B, c.epA.RTCPAddr())
	}

	st := c.relay.Stats()
	n := uint64(s.packets) //nolint:gosec // small
	for _, want := range []struct {
		dir              Direction
		bytes, rtcpBytes uint64
		recorded         uint64
	}{
		{AToB, bytesAB, uint64(len(rrA)), recorded[AToB].Load()},
		{BToA, bytesBA, uint64(len(rrB)), recorded[BToA].Load()},
	} {
		d := st.Dir(want.dir)
		if d.Packets != n || d.Bytes != want.bytes || d.RTCPPackets != 1 || d.RTCPBytes != want.rtcpBytes {
			t.Errorf("%s: relayed %d RTP (%d bytes), %d RTCP (%d bytes); want %d (%d bytes), 1 (%d bytes)",
				want.dir, d.Packets, d.Bytes, d.RTCPPackets, d.RTCPBytes, n, want.bytes, want.rtcpBytes)
		}
		if d.Dropped+d.Stray+d.Invalid+d.SendErrors+d.Latches != 0 {
			t.Errorf("%s: unexpected drops or latches: %+v", want.dir, d)
		}
		if want.recorded != n+1 {
			t.Errorf("%s: recorder saw %d packets, want %d", want.dir, want.recorded, n+1)
		}
		if d.FirstPacket.Before(c.start) {
			t.Errorf("%s: first packet at %v, before the call started at %v", want.dir, d.FirstPacket, c.start)
		}
	}

	return c
}

func TestRelayLoopback(t *testing.T) {
	n := newStdNet(t)
	for _, mux := range []bool{false, true} {
		t.Run(muxName(mux), func(t *testing.T) {
			runCall(t, callSetup{
				pbxNet: n, aNet: n, bNet: n,
				pbxIP: loopback, aIP: loopback, bIP: loopback,
				minPort: loopbackMinPort, maxPort: loopbackMaxPort,
				bMux: mux, packets: 200,
			})
		})
	}
}

func TestRelayVNet(t *testing.T) {
	for _, mux := range []bool{false, true} {
		t.Run(muxName(mux), func(t *testing.T) {
			l := newLab(t, 0, "10.77.0.1", "10.77.0.2", "10.77.0.3")
			runCall(t, callSetup{
				aNet:    l.hosts["10.77.0.1"],
				pbxNet:  l.hosts["10.77.0.2"],
				bNet:    l.hosts["10.77.0.3"],
				aIP:     netip.MustParseAddr("10.77.0.1"),
				pbxIP:   netip.MustParseAddr("10.77.0.2"),
				bIP:     netip.MustParseAddr("10.77.0.3"),
				minPort: 16384, maxPort: 32768,
				bMux: mux, packets: 200,
			})
		})
	}
}

// TestRelaySynctest runs a 1 s call over a vnet with a 10 ms router delay in
// virtual time: every timing is exact, and the bubble only ends because
// Close ended the relay's goroutines.
func TestRelaySynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hop = 10 * time.Millisecond
		l := newLab(t, hop, "10.77.0.1", "10.77.0.2", "10.77.0.3")
		wallStart := time.Now()
		c := runCall(t, callSetup{
			aNet:    l.hosts["10.77.0.1"],
			pbxNet:  l.hosts["10.77.0.2"],
			bNet:    l.hosts["10.77.0.3"],
			aIP:     netip.MustParseAddr("10.77.0.1"),
			pbxIP:   netip.MustParseAddr("10.77.0.2"),
			bIP:     netip.MustParseAddr("10.77.0.3"),
			minPort: 16384, maxPort: 32768,
			packets: 50, interval: 20 * time.Millisecond,
		})

		st := c.relay.Stats()
		if got := st.AToB.FirstPacket.Sub(c.start); got != hop {
			t.Errorf("first packet reached the PBX after %v, want exactly one hop (%v)", got, hop)
		}
		if got := c.firstAtB.Sub(c.start); got != 2*hop {
			t.Errorf("first packet reached phone B after %v, want exactly two hops (%v)", got, 2*hop)
		}
		// 50 packets, each waited for (two hops) and followed by 20 ms, then
		// one RTCP report each way.
		if got, want := time.Since(wallStart), 50*(2*hop+20*time.Millisecond)+4*hop; got != want {
			t.Errorf("virtual call time %v, want %v", got, want)
		}

		if err := c.relay.Close(); err != nil {
			t.Fatalf("close relay: %v", err)
		}
		// The endpoints stay open, but nobody relays any more.
		send(t, c.a.rtp, makeRTP(t, 0xA11CE, 1, 160), c.epA.RTPAddr())
		expectNothing(t, c.b.rtpIn, time.Second, "phone B after Close")
		if after := c.relay.Stats(); after.AToB.Packets != st.AToB.Packets {
			t.Errorf("relayed %d packets after Close", after.AToB.Packets-st.AToB.Packets)
		}
		synctest.Wait()
		// Cleanups close the sockets and stop the router; synctest.Test then
		// fails if any goroutine is left.
	})
}

func muxName(mux bool) string {
	if mux {
		return "rtcp-mux"
	}

	return "rtcp on port+1"
}
