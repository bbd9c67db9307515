package rtprelay

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// latchCall is a loopback call where phone A's SDP names one socket
// (sdpSock, which never sends) while A really sends from another (realSock).
type latchCall struct {
	relay             *Relay
	epA, epB          *Endpoint
	sdpSock, realSock *phone
	b                 *phone
	seqToA, seqToB    uint16
}

func newLatchCall(t *testing.T, opts ...Option) *latchCall {
	t.Helper()
	n := newStdNet(t)
	alloc := mustAllocator(t, n, loopback, loopbackMinPort, loopbackMaxPort)
	c := &latchCall{
		epA:      mustAllocate(t, alloc),
		epB:      mustAllocate(t, alloc),
		sdpSock:  newPhone(t, n, loopback),
		realSock: newPhone(t, n, loopback),
		b:        newPhone(t, n, loopback),
	}
	c.epA.SetRemote(c.sdpSock.rtpAddr(), netip.AddrPort{})
	c.epB.SetRemote(c.b.rtpAddr(), c.b.rtcpAddr())
	c.relay = NewRelay(c.epA, c.epB, opts...)
	c.relay.Start()
	t.Cleanup(func() { _ = c.relay.Close() })

	return c
}

// bToA sends one packet from phone B and returns it.
func (c *latchCall) bToA(t *testing.T) []byte {
	t.Helper()
	c.seqToA++
	pkt := makeRTP(t, 0xB0B, c.seqToA, 160)
	send(t, c.b.rtp, pkt, c.epB.RTPAddr())

	return pkt
}

// aToB sends one packet from the given socket of phone A and returns it.
func (c *latchCall) aToB(t *testing.T, from *phone) []byte {
	t.Helper()
	c.seqToB++
	pkt := makeRTP(t, 0xA11CE, c.seqToB, 160)
	send(t, from.rtp, pkt, c.epA.RTPAddr())

	return pkt
}

func expectPacket(t *testing.T, ch <-chan datagram, want []byte, what string) {
	t.Helper()
	got := expect(t, ch, what)
	if !bytes.Equal(got.data, want) {
		t.Fatalf("%s: got another packet than the one sent", what)
	}
}

func TestLatchingFollowsTheRealSource(t *testing.T) {
	c := newLatchCall(t, WithLatchWindow(5))

	// Before A has sent anything, B's media goes where A's SDP says.
	expectPacket(t, c.sdpSock.rtpIn, c.bToA(t), "before latching, at A's SDP address")

	// A sends from another port: the relay takes it and latches to it.
	expectPacket(t, c.b.rtpIn, c.aToB(t, c.realSock), "A's first packet at B")
	if rtp, _ := c.epA.Remote(); rtp != c.realSock.rtpAddr() {
		t.Fatalf("A's remote is %s after latching, want the real source %s", rtp, c.realSock.rtpAddr())
	}
	if got := c.relay.Stats().AToB.Latches; got != 1 {
		t.Fatalf("latches = %d, want 1", got)
	}

	// Return traffic now goes to the real source, not to the SDP one.
	expectPacket(t, c.realSock.rtpIn, c.bToA(t), "after latching, at A's real source")
	expectNothing(t, c.sdpSock.rtpIn, 50*time.Millisecond, "A's SDP address after latching")

	// Four more packets from the real source settle it (window 5) ...
	for range 4 {
		expectPacket(t, c.b.rtpIn, c.aToB(t, c.realSock), "A's packet at B")
	}
	// ... after which a third party's packets are strays: dropped, no latch.
	intruder := newPhone(t, newStdNet(t), loopback)
	c.aToB(t, intruder)
	eventually(t, "intruder's packet counted as stray", func() bool { return c.relay.Stats().AToB.Stray == 1 })
	expectNothing(t, c.b.rtpIn, 50*time.Millisecond, "phone B, intruder's packet")
	st := c.relay.Stats().AToB
	if st.Stray != 1 || st.Latches != 1 || st.Packets != 5 {
		t.Fatalf("after the intruder: stray %d, latches %d, packets %d; want 1, 1, 5", st.Stray, st.Latches, st.Packets)
	}
	expectPacket(t, c.realSock.rtpIn, c.bToA(t), "A's real source after the intruder")

	// A session refresh with the same SDP keeps what was learnt.
	c.epA.SetRemote(c.sdpSock.rtpAddr(), netip.AddrPort{})
	expectPacket(t, c.realSock.rtpIn, c.bToA(t), "A's real source after a refresh re-INVITE")

	// A new SDP address starts learning again.
	c.epA.SetRemote(c.sdpSock.rtcpAddr(), netip.AddrPort{})
	expectPacket(t, c.sdpSock.rtcpIn, c.bToA(t), "A's new SDP address")
}

func TestLatchingOff(t *testing.T) {
	c := newLatchCall(t, WithLatching(false))

	// A's packets from anywhere are relayed ...
	expectPacket(t, c.b.rtpIn, c.aToB(t, c.realSock), "A's packet at B")
	// ... but B's media keeps going where A's SDP says.
	expectPacket(t, c.sdpSock.rtpIn, c.bToA(t), "A's SDP address")
	expectNothing(t, c.realSock.rtpIn, 50*time.Millisecond, "A's real source")
	if st := c.relay.Stats().AToB; st.Latches != 0 || st.Stray != 0 {
		t.Fatalf("latching off: latches %d, stray %d; want 0, 0", st.Latches, st.Stray)
	}
}

func TestLatchingWithoutSDPAddress(t *testing.T) {
	c := newLatchCall(t)
	c.epA.SetRemote(netip.AddrPort{}, netip.AddrPort{}) // a late offer: no address yet

	c.bToA(t)
	eventually(t, "B's packet dropped for want of a remote", func() bool { return c.relay.Stats().BToA.Dropped == 1 })
	expectNothing(t, c.sdpSock.rtpIn, 50*time.Millisecond, "A's SDP address before any SDP")
	expectPacket(t, c.b.rtpIn, c.aToB(t, c.realSock), "A's first packet at B")
	expectPacket(t, c.realSock.rtpIn, c.bToA(t), "A's learnt address")
}

func TestHoldSendsNothing(t *testing.T) {
	c := newLatchCall(t)
	held := netip.AddrPortFrom(netip.IPv4Unspecified(), c.sdpSock.rtpAddr().Port())
	c.epA.SetRemote(held, netip.AddrPort{}) // c=IN IP4 0.0.0.0

	c.bToA(t)
	eventually(t, "B's packet to held A dropped", func() bool { return c.relay.Stats().BToA.Dropped == 1 })
	expectNothing(t, c.sdpSock.rtpIn, 50*time.Millisecond, "held phone A")
	// What the held leg sends (music on hold, say) is still relayed, and it
	// does not latch.
	expectPacket(t, c.b.rtpIn, c.aToB(t, c.realSock), "held A's packet at B")
	st := c.relay.Stats()
	if st.BToA.Dropped != 1 || st.AToB.Latches != 0 {
		t.Fatalf("hold: dropped %d, latches %d; want 1, 0", st.BToA.Dropped, st.AToB.Latches)
	}
	if rtp, rtcp := c.epA.Remote(); rtp.IsValid() || rtcp.IsValid() {
		t.Fatalf("held endpoint reports remote %s/%s, want none", rtp, rtcp)
	}
}

func TestRelayDropsNonRTP(t *testing.T) {
	c := newLatchCall(t)
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	send(t, c.sdpSock.rtp, stun, c.epA.RTPAddr())
	eventually(t, "STUN counted as invalid", func() bool { return c.relay.Stats().AToB.Invalid == 1 })
	expectNothing(t, c.b.rtpIn, 50*time.Millisecond, "phone B, STUN")
}

func TestEcho(t *testing.T) {
	n := newStdNet(t)
	alloc := mustAllocator(t, n, loopback, loopbackMinPort, loopbackMaxPort)
	ep := mustAllocate(t, alloc)
	p := newPhone(t, n, loopback)
	ep.SetRemote(p.rtpAddr(), p.rtcpAddr())
	echo := NewEcho(ep)
	echo.Start()
	t.Cleanup(func() { _ = echo.Close() })

	send(t, p.rtcp, receiverReport(t, 0xA11CE), ep.RTCPAddr())
	const ssrc = 0xA11CE
	for seq := uint16(1); seq <= 20; seq++ {
		sent := parseRTP(t, makeRTP(t, ssrc, seq, 160))
		send(t, p.rtp, makeRTP(t, ssrc, seq, 160), ep.RTPAddr())
		got := expect(t, p.rtpIn, "echo")
		back := parseRTP(t, got.data)
		if got.from != ep.RTPAddr() {
			t.Fatalf("echo came from %s, want %s", got.from, ep.RTPAddr())
		}
		if back.SSRC == ssrc {
			t.Fatalf("echo kept the phone's own SSRC %x", ssrc)
		}
		if back.SequenceNumber != seq || back.Timestamp != sent.Timestamp || !bytes.Equal(back.Payload, sent.Payload) {
			t.Fatalf("echo of seq %d came back as seq %d ts %d, or with another payload", seq, back.SequenceNumber, back.Timestamp)
		}
	}
	expectNothing(t, p.rtcpIn, 50*time.Millisecond, "RTCP (the echo consumes it)")
	if st := echo.Stats(); st.AToB.Packets != 20 || st.AToB.RTCPPackets != 0 || st.BToA.Packets != 0 {
		t.Fatalf("echo stats %+v, want 20 RTP packets echoed and nothing else", st)
	}
}

func TestRelayCloseLeavesEndpointsReusable(t *testing.T) {
	c := newLatchCall(t)
	expectPacket(t, c.sdpSock.rtpIn, c.bToA(t), "first relay")
	if err := c.relay.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.relay.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	again := NewRelay(c.epA, c.epB)
	again.Start()
	t.Cleanup(func() { _ = again.Close() })
	expectPacket(t, c.sdpSock.rtpIn, c.bToA(t), "second relay on the same endpoints")
}
