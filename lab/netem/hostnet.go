package netem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
)

// Ephemeral UDP ports, chosen in order (vnet picks at random in 5000-5999, which makes runs
// differ): the IANA dynamic range.
const (
	ephemeralFirst = 49152
	ephemeralLast  = 65535
)

var errNotUDPAddr = errors.New("not a UDP address")

// hostNet is a host's network stack (Host.Net): vnet's, with UDP sockets that shape what they
// send, TCP calls answered by the host's StreamNet, and vnet's socket quirks fixed: a read
// deadline in the past fails every read (vnet fails only the first), reads on a closed socket
// fail with net.ErrClosed, ReadFromUDP reports the real error, and port 0 picks a free port in
// order from 49152.
type hostNet struct {
	host  *Host
	inner *vnet.Net

	mu       sync.Mutex
	conns    map[*udpConn]struct{}
	nextPort int
}

var _ transport.Net = (*hostNet)(nil)

func newHostNet(h *Host) *hostNet {
	return &hostNet{host: h, inner: h.vnet, conns: map[*udpConn]struct{}{}, nextPort: ephemeralFirst}
}

// closeAll closes the sockets still open; Network.Close calls it.
func (hn *hostNet) closeAll() {
	hn.mu.Lock()
	conns := make([]*udpConn, 0, len(hn.conns))
	for c := range hn.conns {
		conns = append(conns, c)
	}
	hn.mu.Unlock()
	for _, c := range conns {
		c.byNetwork.Store(true)
		_ = c.Close()
	}
}

func isUDP(network string) bool { return network == "udp" || network == "udp4" || network == "udp6" }
func isTCP(network string) bool { return network == "tcp" || network == "tcp4" || network == "tcp6" }

// bind opens a vnet socket on laddr (copied: vnet writes the chosen port into it), choosing the
// port when it is 0.
func (hn *hostNet) bind(laddr *net.UDPAddr, open func(*net.UDPAddr) (transport.UDPConn, error)) (*udpConn, error) {
	la := net.UDPAddr{}
	if laddr != nil {
		la = *laddr
	}
	hn.mu.Lock()
	defer hn.mu.Unlock()
	var inner transport.UDPConn
	var err error
	if la.Port != 0 {
		a := la
		inner, err = open(&a)
	} else {
		for range ephemeralLast - ephemeralFirst + 1 {
			a := la
			a.Port = hn.nextPort
			hn.nextPort++
			if hn.nextPort > ephemeralLast {
				hn.nextPort = ephemeralFirst
			}
			inner, err = open(&a)
			if err == nil || !strings.Contains(err.Error(), "already in use") {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	c := &udpConn{inner: inner, hn: hn}
	c.local, _ = inner.LocalAddr().(*net.UDPAddr)
	c.remote, _ = inner.RemoteAddr().(*net.UDPAddr)
	hn.conns[c] = struct{}{}
	return c, nil
}

// ListenPacket opens a shaped UDP socket (other networks: vnet's answer).
func (hn *hostNet) ListenPacket(network, address string) (net.PacketConn, error) {
	if !isUDP(network) {
		return hn.inner.ListenPacket(network, address)
	}
	laddr, err := hn.inner.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, err
	}
	return hn.bind(laddr, func(a *net.UDPAddr) (transport.UDPConn, error) { return hn.inner.ListenUDP(network, a) })
}

// ListenUDP opens a shaped UDP socket.
func (hn *hostNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	return hn.bind(laddr, func(a *net.UDPAddr) (transport.UDPConn, error) { return hn.inner.ListenUDP(network, a) })
}

// DialUDP opens a shaped UDP socket connected to raddr.
func (hn *hostNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	if raddr == nil {
		return hn.inner.DialUDP(network, laddr, raddr)
	}
	if laddr == nil {
		laddr = &net.UDPAddr{IP: hn.sourceIP(raddr.IP)}
	}
	ra := *raddr
	return hn.bind(laddr, func(a *net.UDPAddr) (transport.UDPConn, error) { return hn.inner.DialUDP(network, a, &ra) })
}

func (hn *hostNet) sourceIP(dst net.IP) net.IP {
	if dst.IsLoopback() {
		return net.IPv4(127, 0, 0, 1)
	}
	return hn.host.IP.AsSlice()
}

// Dial connects a UDP socket, or a stream connection for "tcp".
func (hn *hostNet) Dial(network, address string) (net.Conn, error) {
	if isTCP(network) {
		return hn.host.Stream.DialContext(context.Background(), network, address)
	}
	if !isUDP(network) {
		return hn.inner.Dial(network, address)
	}
	raddr, err := hn.inner.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, err
	}
	return hn.DialUDP(network, nil, raddr)
}

// ListenTCP listens for stream connections.
func (hn *hostNet) ListenTCP(network string, laddr *net.TCPAddr) (transport.TCPListener, error) {
	address := ":0"
	if laddr != nil {
		address = laddr.String()
	}
	ln, err := hn.host.Stream.listen(network, address)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// DialTCP opens a stream connection (laddr is ignored: the host's address and a free port).
func (hn *hostNet) DialTCP(network string, _, raddr *net.TCPAddr) (transport.TCPConn, error) {
	if raddr == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("missing address")}
	}
	c, err := hn.host.Stream.dial(context.Background(), network, raddr.String())
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (hn *hostNet) ResolveIPAddr(network, address string) (*net.IPAddr, error) {
	return hn.inner.ResolveIPAddr(network, address)
}

func (hn *hostNet) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	return hn.inner.ResolveUDPAddr(network, address)
}

func (hn *hostNet) ResolveTCPAddr(network, address string) (*net.TCPAddr, error) {
	return hn.inner.ResolveTCPAddr(network, address)
}

func (hn *hostNet) Interfaces() ([]*transport.Interface, error) { return hn.inner.Interfaces() }

func (hn *hostNet) InterfaceByIndex(index int) (*transport.Interface, error) {
	return hn.inner.InterfaceByIndex(index)
}

func (hn *hostNet) InterfaceByName(name string) (*transport.Interface, error) {
	return hn.inner.InterfaceByName(name)
}

// CreateDialer returns a dialer on this host: UDP through shaped sockets, TCP through Stream,
// honouring the dialer's Timeout and Deadline.
func (hn *hostNet) CreateDialer(d *net.Dialer) transport.Dialer { return &hostDialer{hn: hn, d: d} }

// CreateListenConfig returns a listen config on this host (vnet's would open a real OS socket
// for TCP).
func (hn *hostNet) CreateListenConfig(*net.ListenConfig) transport.ListenConfig {
	return &hostListenConfig{hn: hn}
}

type hostDialer struct {
	hn *hostNet
	d  *net.Dialer
}

func (hd *hostDialer) Dial(network, address string) (net.Conn, error) {
	if !isTCP(network) {
		return hd.hn.Dial(network, address)
	}
	ctx := context.Background()
	if hd.d != nil && hd.d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hd.d.Timeout)
		defer cancel()
	}
	if hd.d != nil && !hd.d.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, hd.d.Deadline)
		defer cancel()
	}
	return hd.hn.host.Stream.DialContext(ctx, network, address)
}

type hostListenConfig struct{ hn *hostNet }

func (lc *hostListenConfig) Listen(_ context.Context, network, address string) (net.Listener, error) {
	return lc.hn.host.Stream.Listen(network, address)
}

func (lc *hostListenConfig) ListenPacket(_ context.Context, network, address string) (net.PacketConn, error) {
	return lc.hn.ListenPacket(network, address)
}

// udpConn is a shaped UDP socket: what it sends goes through its host's Up and the destination
// host's Down before vnet delivers it.
type udpConn struct {
	inner         transport.UDPConn
	hn            *hostNet
	local, remote *net.UDPAddr
	readDeadline  atomic.Int64 // UnixNano; 0: none
	closed        atomic.Bool
	byNetwork     atomic.Bool // closed by Network.Close
}

var _ transport.UDPConn = (*udpConn)(nil)

func (c *udpConn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

func (c *udpConn) RemoteAddr() net.Addr { return c.inner.RemoteAddr() }

func (c *udpConn) Close() error {
	if c.closed.Swap(true) {
		if c.byNetwork.Load() {
			return nil
		}
		return c.opError("close", nil, net.ErrClosed)
	}
	c.hn.mu.Lock()
	delete(c.hn.conns, c)
	c.hn.mu.Unlock()
	return c.inner.Close()
}

func (c *udpConn) opError(op string, addr net.Addr, err error) error {
	e := &net.OpError{Op: op, Net: "udp", Source: c.local, Addr: addr, Err: err}
	if op == "read" || op == "close" {
		e.Source, e.Addr = nil, c.local
	}
	return e
}

func (c *udpConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *udpConn) SetReadDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.readDeadline.Store(ns)
	return c.inner.SetReadDeadline(t)
}

// SetWriteDeadline is accepted and has no effect: writes never block.
func (c *udpConn) SetWriteDeadline(time.Time) error { return nil }

func (c *udpConn) SetReadBuffer(bytes int) error  { return c.inner.SetReadBuffer(bytes) }
func (c *udpConn) SetWriteBuffer(bytes int) error { return c.inner.SetWriteBuffer(bytes) }

func (c *udpConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFrom(b)
	return n, err
}

func (c *udpConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.closed.Load() {
		return 0, nil, c.opError("read", nil, net.ErrClosed)
	}
	if dl := c.readDeadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
	}
	n, addr, err := c.inner.ReadFrom(b)
	if err != nil && n == 0 {
		var ne net.Error
		switch {
		case c.closed.Load():
			err = c.opError("read", nil, net.ErrClosed)
		case errors.As(err, &ne) && ne.Timeout():
			err = c.opError("read", nil, os.ErrDeadlineExceeded)
		}
	}
	return n, addr, err
}

func (c *udpConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, addr, err := c.ReadFrom(b)
	ua, _ := addr.(*net.UDPAddr)
	return n, ua, err
}

func (c *udpConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, addr, err = c.ReadFromUDP(b)
	return n, 0, 0, addr, err
}

func (c *udpConn) Write(b []byte) (int, error) {
	if c.remote == nil {
		return c.inner.Write(b) // vnet's error: not connected
	}
	return c.send(b, c.remote)
}

func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opError("write", addr, fmt.Errorf("%w: %T", errNotUDPAddr, addr))
	}
	return c.send(b, ua)
}

func (c *udpConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) { return c.send(b, addr) }

func (c *udpConn) WriteMsgUDP(b, _ []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if addr == nil {
		addr = c.remote
	}
	n, err = c.send(b, addr)
	return n, 0, err
}

// send shapes one datagram: the sender's Up, then the destination host's Down (only Up when no
// host has that address), then vnet at its departure time. Loopback and the host's own address
// go straight to vnet.
func (c *udpConn) send(b []byte, ua *net.UDPAddr) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", ua, net.ErrClosed)
	}
	if ua == nil {
		return 0, c.opError("write", nil, errNotUDPAddr)
	}
	h := c.hn.host
	ip, ok := netip.AddrFromSlice(ua.IP)
	ip = ip.Unmap()
	if !ok || ip.IsLoopback() || ip == h.IP {
		return c.inner.WriteTo(b, ua)
	}
	p := getPacket(b)
	p.conn = c
	p.addr = net.UDPAddr{IP: ua.IP, Port: ua.Port, Zone: ua.Zone}
	p.path[0], p.hops = h.Up, 1
	if dst := h.nw.hostByIP(ip); dst != nil {
		p.path[1], p.hops = dst.Down, 2
	}
	h.Up.offer(p, time.Now())
	return len(b), nil
}
