package rtprelay

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/transport/v5"
)

// Allocator hands out even RTP ports (RTCP = RTP+1) from [min,max] on one IP
// of one transport.Net. It walks the range round-robin, like FreeSWITCH, so a
// port that was just released is the last one handed out again and late
// packets of an old call do not land in a new one.
type Allocator struct {
	net     transport.Net
	ip      netip.Addr
	network string // "udp4" or "udp6"
	minPort int    // even: first RTP port
	maxPort int    // last RTP port: even, maxPort+1 <= the configured max

	mu    sync.Mutex
	next  int          // next RTP port to try
	inUse map[int]bool // RTP ports held by open endpoints
}

// NewAllocator returns an allocator of port pairs in [minPort,maxPort] on ip.
// minPort must be even (RTP uses even ports, RFC 3550 §11) and at least one
// pair must fit: minPort+1 <= maxPort <= 65535. An even maxPort is allowed
// (FreeSWITCH's default range is 16384-32768); its last port then goes
// unused. ip must be a specific address of n: it is what the PBX writes into
// its SDP.
func NewAllocator(n transport.Net, ip netip.Addr, minPort, maxPort int) (*Allocator, error) {
	switch {
	case n == nil:
		return nil, fmt.Errorf("%w: nil transport.Net", ErrAddress)
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast():
		return nil, fmt.Errorf("%w: %q is not a unicast address the PBX can advertise", ErrAddress, ip)
	case minPort < 1 || maxPort > 65535:
		return nil, fmt.Errorf("%w: %d-%d is outside 1-65535", ErrPortRange, minPort, maxPort)
	case minPort%2 != 0:
		return nil, fmt.Errorf("%w: min port %d is odd, RTP needs an even port", ErrPortRange, minPort)
	case minPort >= maxPort:
		return nil, fmt.Errorf("%w: min port %d is not below max port %d", ErrPortRange, minPort, maxPort)
	}
	ip = ip.Unmap()
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	last := maxPort - 1
	if last%2 != 0 {
		last--
	}

	return &Allocator{
		net:     n,
		ip:      ip,
		network: network,
		minPort: minPort,
		maxPort: last,
		next:    minPort,
		inUse:   map[int]bool{},
	}, nil
}

// IP is the address every endpoint of this allocator is bound to.
func (a *Allocator) IP() netip.Addr { return a.ip }

// InUse is the number of endpoints allocated and not yet closed.
func (a *Allocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()

	return len(a.inUse)
}

// Allocate binds the next free RTP/RTCP port pair. Pairs whose ports cannot
// be bound (another process holds them) are skipped. It returns ErrNoPorts
// when no pair in the range can be had.
func (a *Allocator) Allocate() (*Endpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()

	pairs := (a.maxPort-a.minPort)/2 + 1
	var lastErr error
	for range pairs {
		port := a.next
		a.next += 2
		if a.next > a.maxPort {
			a.next = a.minPort
		}
		if a.inUse[port] {
			continue
		}
		rtpConn, err := a.listen(port)
		if err != nil {
			lastErr = err

			continue
		}
		rtcpConn, err := a.listen(port + 1)
		if err != nil {
			_ = rtpConn.Close()
			lastErr = err

			continue
		}
		a.inUse[port] = true

		return newEndpoint(a, port, rtpConn, rtcpConn), nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%w in %d-%d on %s (last bind error: %w)",
			ErrNoPorts, a.minPort, a.maxPort+1, a.ip, lastErr)
	}

	return nil, fmt.Errorf("%w in %d-%d on %s: all %d pairs allocated",
		ErrNoPorts, a.minPort, a.maxPort+1, a.ip, pairs)
}

func (a *Allocator) listen(port int) (transport.UDPConn, error) {
	return a.net.ListenUDP(a.network, &net.UDPAddr{IP: a.ip.AsSlice(), Port: port})
}

func (a *Allocator) release(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inUse, port)
}
