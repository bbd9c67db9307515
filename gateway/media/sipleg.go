package media

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
)

var (
	errNoPort   = errors.New("media: no free RTP/RTCP port pair")
	errNoRemote = errors.New("media: SIP leg has no remote address yet")
)

// sipLeg is the plain RTP/RTCP socket pair toward the PBX. The latch fields belong to the
// SIP->WebRTC direction (its lock guards them); the destinations are read by the other
// direction and by the RTCP loop, so they are atomic.
type sipLeg struct {
	rtp, rtcp net.PacketConn
	local     netip.AddrPort // the RTP socket; RTCP is on the next port

	sdpRTCP netip.AddrPort // from the SIP SDP (a=rtcp, or the RTP port + 1)
	rtcpMux bool

	latched     netip.AddrPort
	latchedSeen time.Time

	dstRTP, dstRTCP atomic.Pointer[net.UDPAddr]
	rtcpLatched     atomic.Bool
}

// addrPortConn is what *net.UDPConn offers beyond net.PacketConn: reads and writes without
// allocating a net.Addr per packet. vnet's connections lack it and take the generic path.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// readFrom reads one datagram and its source.
func readFrom(c net.PacketConn, b []byte) (int, netip.AddrPort, error) {
	if fast, ok := c.(addrPortConn); ok {
		n, src, err := fast.ReadFromUDPAddrPort(b)
		return n, addrPort(src), err
	}
	n, addr, err := c.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	return n, udpAddrPort(addr), nil
}

func writeTo(c net.PacketConn, b []byte, dst *net.UDPAddr) (int, error) {
	if fast, ok := c.(addrPortConn); ok {
		return fast.WriteToUDPAddrPort(b, dst.AddrPort())
	}
	return c.WriteTo(b, dst)
}

// openSIPLeg opens an RTP socket on an even port and RTCP on the next one, within [min, max]
// (0, 0: any pair the system gives).
func openSIPLeg(n transport.Net, ip netip.Addr, minPort, maxPort uint16) (*sipLeg, error) {
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	listen := func(port uint16) (net.PacketConn, error) {
		return n.ListenPacket("udp4", netip.AddrPortFrom(ip, port).String())
	}
	pair := func(port uint16) (*sipLeg, error) {
		rtpConn, err := listen(port)
		if err != nil {
			return nil, err
		}
		local, err := netip.ParseAddrPort(rtpConn.LocalAddr().String())
		if err != nil || local.Port() == 0xffff {
			_ = rtpConn.Close()
			return nil, fmt.Errorf("%w: %v", errNoPort, rtpConn.LocalAddr())
		}
		rtcpConn, err := listen(local.Port() + 1)
		if err != nil {
			_ = rtpConn.Close()
			return nil, err
		}
		return &sipLeg{rtp: rtpConn, rtcp: rtcpConn, local: netip.AddrPortFrom(ip, local.Port())}, nil
	}
	if minPort == 0 {
		var last error
		for range 16 {
			l, err := pair(0)
			if err == nil {
				return l, nil
			}
			last = err
		}
		return nil, fmt.Errorf("%w: %w", errNoPort, last)
	}
	first := (minPort + 1) &^ 1 // even
	pairs := (int(maxPort) - int(first) + 1) / 2
	if pairs <= 0 {
		return nil, fmt.Errorf("%w in %d-%d", errNoPort, minPort, maxPort)
	}
	start := rand.IntN(pairs)
	for i := range pairs {
		if l, err := pair(first + uint16((start+i)%pairs)*2); err == nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%w in %d-%d", errNoPort, minPort, maxPort)
}

// setRemote points the leg at the addresses of the SIP SDP and forgets the latch: the next
// source latches again. Called with the SIP->WebRTC direction locked.
func (l *sipLeg) setRemote(rtpAddr, rtcpAddr netip.AddrPort, mux bool) {
	rtpAddr = addrPort(rtpAddr)
	if !rtcpAddr.IsValid() {
		rtcpAddr = netip.AddrPortFrom(rtpAddr.Addr(), rtpAddr.Port()+1)
	}
	if mux {
		rtcpAddr = rtpAddr
	}
	l.sdpRTCP, l.rtcpMux = addrPort(rtcpAddr), mux
	l.latched, l.latchedSeen = netip.AddrPort{}, time.Time{}
	l.dstRTP.Store(net.UDPAddrFromAddrPort(rtpAddr))
	l.dstRTCP.Store(net.UDPAddrFromAddrPort(l.sdpRTCP))
	l.rtcpLatched.Store(false)
}

// latchTo makes src the RTP destination, and its next port the RTCP one until RTCP arrives.
func (l *sipLeg) latchTo(src netip.AddrPort, at time.Time) {
	l.latched, l.latchedSeen = src, at
	l.dstRTP.Store(net.UDPAddrFromAddrPort(src))
	if !l.rtcpLatched.Load() {
		rtcp := netip.AddrPortFrom(src.Addr(), src.Port()+1)
		if l.rtcpMux {
			rtcp = src
		}
		l.dstRTCP.Store(net.UDPAddrFromAddrPort(rtcp))
	}
}

// latchRTCP makes the source of received RTCP the RTCP destination (symmetric RTCP).
func (l *sipLeg) latchRTCP(src netip.AddrPort) {
	if cur := l.dstRTCP.Load(); cur == nil || cur.AddrPort() != src || !l.rtcpLatched.Load() {
		l.dstRTCP.Store(net.UDPAddrFromAddrPort(src))
		l.rtcpLatched.Store(true)
	}
}

func (l *sipLeg) writeRTP(b []byte) error {
	dst := l.dstRTP.Load()
	if dst == nil {
		return errNoRemote
	}
	_, err := writeTo(l.rtp, b, dst)
	return err
}

func (l *sipLeg) writeRTCP(b []byte) error {
	dst := l.dstRTCP.Load()
	if dst == nil {
		return errNoRemote
	}
	_, err := writeTo(l.rtcp, b, dst)
	return err
}

func (l *sipLeg) close() error {
	return errors.Join(l.rtp.Close(), l.rtcp.Close())
}

// isRTCP tells RTCP from RTP on a multiplexed socket (RFC 5761 4): RTCP packet types 192-223
// put 64-95 in RTP's payload type field.
func isRTCP(b []byte) bool {
	return len(b) >= 2 && b[1]&0x7f >= 64 && b[1]&0x7f <= 95
}
