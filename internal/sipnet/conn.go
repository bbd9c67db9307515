package sipnet

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// conn is the socket as sipgo sees it. It reports reads on a closed socket as net.ErrClosed,
// refuses writes once closed (a closed vnet socket still sends), remembers every peer address sipgo put in its connection pool, lets Close stop sipgo's read
// loop from taking new packets while the socket stays open, and, before the read loop learns
// that reading failed (and so before it removes its pool entries), pins those addresses to a
// handle of its own.
type conn struct {
	net.PacketConn
	local  string // the socket's address, sipgo's pool key for it
	pool   *sip.ConnectionPool
	handle *sip.UDPConnection // Listener: sipgo never closes the socket through it

	served     chan struct{} // closed at sipgo's first read: the socket is in the pool
	servedOnce sync.Once

	closed atomic.Bool

	mu       sync.Mutex
	draining bool
	reading  bool          // sipgo's read loop is inside ReadFrom
	parked   chan struct{} // closed once the read loop is inside ReadFrom with draining set
	remotes  map[string]struct{}
}

func newConn(pc net.PacketConn, pool *sip.ConnectionPool) *conn {
	local := pc.LocalAddr().String()
	c := &conn{
		PacketConn: pc,
		local:      local,
		pool:       pool,
		handle:     &sip.UDPConnection{PacketAddr: local, Listener: true},
		served:     make(chan struct{}),
		parked:     make(chan struct{}),
		remotes:    map[string]struct{}{},
	}
	c.handle.PacketConn = c // writes through the handle see the close too
	return c
}

func (c *conn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.servedOnce.Do(func() { close(c.served) })
	for {
		c.mu.Lock()
		c.reading = true
		c.parkLocked()
		c.mu.Unlock()

		n, addr, err := c.PacketConn.ReadFrom(b)

		if err != nil {
			// sipgo's read loop ends on any error and drops its pool entries on the way out.
			c.pin()
			if c.closed.Load() && !errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("%w: %w", net.ErrClosed, err)
			}
			return n, addr, err
		}
		c.mu.Lock()
		if c.draining {
			c.mu.Unlock()
			continue // dropped: the stack is closing
		}
		c.reading = false
		c.remotes[addr.String()] = struct{}{}
		c.mu.Unlock()
		return n, addr, nil
	}
}

// pin points the socket's own address and every peer's at the handle. sipgo's read loop removes
// only the entries that still hold its own connection, so these stay.
func (c *conn) pin() {
	for _, a := range append(c.peers(), c.local) {
		c.pool.Add(a, c.handle)
	}
}

// pooledBySipgo reports whether the pool holds sipgo's own connection for the socket (ServeUDP
// has registered it), rather than the handle Listen put there.
func (c *conn) pooledBySipgo() bool {
	got := c.pool.Get(c.local)
	if got == nil {
		return false
	}
	_, _ = got.TryClose() // Get took a reference
	return got != sip.Connection(c.handle)
}

func (c *conn) parkLocked() {
	if c.draining && c.reading {
		select {
		case <-c.parked:
		default:
			close(c.parked)
		}
	}
}

// drain makes every later packet be dropped. The returned channel closes once sipgo's read loop
// is back in ReadFrom, so that it has finished with the last packet it took.
func (c *conn) drain() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.parkLocked()
	return c.parked
}

func (c *conn) peers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	addrs := make([]string, 0, len(c.remotes))
	for a := range c.remotes {
		addrs = append(addrs, a)
	}
	return addrs
}

// WriteTo fails once the socket is closed: vnet's closed sockets go on sending, and handlers or
// transaction timers still running after Close would put packets on the network from a port
// that is no longer theirs.
func (c *conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.closed.Load() {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: net.ErrClosed}
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.PacketConn.Close()
}
