package rtprelay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/transport/v5"
)

// Endpoint is one PBX-side media port pair (RTP on an even port, RTCP on the
// next) for one m-line of one leg, together with where that leg receives
// media. It belongs to at most one running [Relay] at a time; a relay that is
// closed leaves it open, so a leg can be re-bridged (transfer, echo then
// bridge) without changing the port in its SDP.
type Endpoint struct {
	alloc *Allocator
	port  int
	rtp   transport.UDPConn
	rtcp  transport.UDPConn

	mu         sync.Mutex
	rtpRemote  remote
	rtcpRemote remote
	mux        bool // RTCP to this leg goes to its RTP address, from the RTP socket
	closed     bool
}

// socket names one of the two sockets of an endpoint.
type socket int

const (
	rtpSocket socket = iota
	rtcpSocket
)

func (s socket) String() string {
	if s == rtcpSocket {
		return "rtcp"
	}

	return "rtp"
}

// remote is where one socket of an endpoint sends to, and what it has learnt
// about where the leg really sends from.
type remote struct {
	sdp       netip.AddrPort // as set from SDP; invalid: not known yet
	addr      netip.AddrPort // where packets to the leg go; invalid: nowhere yet
	udp       *net.UDPAddr   // addr, built once per change for WriteTo
	hold      bool           // SDP says send nothing (0.0.0.0 or port 0)
	confirmed int            // consecutive packets from addr, up to the latch window
}

func (r *remote) set(addr netip.AddrPort) {
	r.addr = addr
	r.udp = net.UDPAddrFromAddrPort(addr)
}

func newEndpoint(a *Allocator, port int, rtp, rtcp transport.UDPConn) *Endpoint {
	return &Endpoint{alloc: a, port: port, rtp: rtp, rtcp: rtcp}
}

// RTPAddr is the PBX's RTP address of this endpoint: what goes into c= and m=.
func (e *Endpoint) RTPAddr() netip.AddrPort {
	return netip.AddrPortFrom(e.alloc.ip, uint16(e.port)) //nolint:gosec // port is within 1..65535
}

// RTCPAddr is the PBX's RTCP address of this endpoint (RTP port + 1).
func (e *Endpoint) RTCPAddr() netip.AddrPort {
	return netip.AddrPortFrom(e.alloc.ip, uint16(e.port+1)) //nolint:gosec // port is within 1..65535
}

// SetRemote sets where the leg receives media, from its SDP: rtp from c= and
// m=, rtcp from a=rtcp, or RTP port + 1 when rtcp is the zero AddrPort. rtcp
// equal to rtp means rtcp-mux: RTCP to this leg then goes to its RTP address,
// out of the RTP socket. An unspecified address (0.0.0.0, hold) or port 0
// (rejected m-line) stops sending to the leg. See the package documentation
// for how latching then adjusts the remote.
func (e *Endpoint) SetRemote(rtp, rtcp netip.AddrPort) {
	rtp = unmap(rtp)
	rtcp = unmap(rtcp)
	hold := rtp.IsValid() && (rtp.Addr().IsUnspecified() || rtp.Port() == 0)
	mux := rtp.IsValid() && rtcp == rtp
	if !rtcp.IsValid() && rtp.IsValid() && !hold {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.mux = mux
	e.rtpRemote.reset(rtp, hold)
	e.rtcpRemote.reset(rtcp, hold)
}

// SetRemoteMedia is SetRemote with the addresses of a parsed m-line.
func (e *Endpoint) SetRemoteMedia(m Media) {
	e.SetRemote(m.RTPAddr(), m.RTCP)
}

func (r *remote) reset(sdp netip.AddrPort, hold bool) {
	if sdp == r.sdp && hold == r.hold && sdp.IsValid() {
		return // a session refresh: keep what was learnt
	}
	*r = remote{sdp: sdp, hold: hold}
	if sdp.IsValid() && !hold {
		r.set(sdp)
	}
}

// Remote returns where this endpoint currently sends RTP and RTCP to (after
// latching); a zero AddrPort means nowhere.
func (e *Endpoint) Remote() (rtp, rtcp netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rtpRemote.hold {
		return netip.AddrPort{}, netip.AddrPort{}
	}
	if e.mux {
		return e.rtpRemote.addr, e.rtpRemote.addr
	}

	return e.rtpRemote.addr, e.rtcpRemote.addr
}

// Close releases both sockets and gives the port pair back to the allocator.
// A relay still running on the endpoint stops reading from it.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()

		return fmt.Errorf("%w: %s", ErrEndpointClosed, e.RTPAddr())
	}
	e.closed = true
	e.mu.Unlock()

	err := errors.Join(e.rtp.Close(), e.rtcp.Close())
	e.alloc.release(e.port)
	if err != nil {
		return fmt.Errorf("rtprelay: close endpoint %s: %w", e.RTPAddr(), err)
	}

	return nil
}

func (e *Endpoint) conn(s socket) transport.UDPConn {
	if s == rtcpSocket {
		return e.rtcp
	}

	return e.rtp
}

// admission is what latching decided about one incoming packet.
type admission int

const (
	admitted admission = iota
	latched            // admitted, and the remote now follows its source
	stray              // from a source other than the settled remote: drop
)

// admit applies the latching rule of the package documentation to a packet
// from src that arrived on socket s. It returns the previous remote when the
// socket latched.
func (e *Endpoint) admit(s socket, src netip.AddrPort, latching bool, window int) (admission, netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &e.rtpRemote
	if s == rtcpSocket {
		r = &e.rtcpRemote
	}
	if !latching || r.hold {
		return admitted, netip.AddrPort{}
	}
	if src == r.addr {
		if r.confirmed < window {
			r.confirmed++
		}

		return admitted, netip.AddrPort{}
	}
	if r.addr.IsValid() && r.confirmed >= window {
		return stray, netip.AddrPort{}
	}
	prev := r.addr
	r.set(src)
	r.confirmed = 1

	return latched, prev
}

// route returns the socket to send from and the address to send to for a
// packet going to this endpoint's leg; a nil address means nowhere.
func (e *Endpoint) route(isRTCP bool) (transport.UDPConn, netip.AddrPort, *net.UDPAddr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.rtpRemote.hold:
		return nil, netip.AddrPort{}, nil
	case !isRTCP, e.mux:
		return e.rtp, e.rtpRemote.addr, e.rtpRemote.udp
	default:
		return e.rtcp, e.rtcpRemote.addr, e.rtcpRemote.udp
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}

	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
