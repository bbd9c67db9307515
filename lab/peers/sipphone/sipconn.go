package sipphone

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// shutdownSIP stops sipgo without letting it open a socket of its own. sipgo's server side looks
// a request's connection up in its pool by the peer's address and, when it finds none, creates
// one with net.ListenConfig: an OS socket, bypassing the phone's transport.Net. Its read loop
// removes the pool entries when the socket closes, and TransportLayer.Close clears the pool, while
// requests read just before are still being handled on their own goroutines. So: stop taking
// packets, point every pool entry at a second handle on the same socket (which the read loop's
// clean-up leaves alone), terminate the transactions, and only then close the socket. The
// transport layer is not closed: its pool keeps those handles, whose writes fail once closed.
func (p *Phone) shutdownSIP() {
	select {
	case <-p.pc.drain():
	case <-p.serve:
	}
	local := p.addr.String()
	handle := &sip.UDPConnection{PacketConn: p.pc, PacketAddr: local, Listener: true}
	pool := p.ua.TransportLayer().Pool("udp")
	for _, addr := range append(p.pc.peers(), local) {
		pool.Add(addr, handle)
	}
	p.ua.TransactionLayer().Close()
	_ = p.pc.Close()
	<-p.serve
}

// sipConn is the SIP socket as sipgo sees it. Besides reporting reads on a closed socket as
// net.ErrClosed (vnet has its own error, which sipgo would log as a failure), it lets Close stop
// sipgo's read loop from taking new packets while the socket stays open, and it remembers every
// peer address sipgo put in its connection pool (see Phone.shutdownSIP).
type sipConn struct {
	net.PacketConn
	mu       sync.Mutex
	closed   bool
	draining bool
	reading  bool          // sipgo's read loop is inside ReadFrom
	parked   chan struct{} // closed once the read loop is inside ReadFrom with draining set
	remotes  map[string]struct{}
}

func newSIPConn(pc net.PacketConn) *sipConn {
	return &sipConn{PacketConn: pc, parked: make(chan struct{}), remotes: map[string]struct{}{}}
}

func (c *sipConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		c.reading = true
		c.parkLocked()
		c.mu.Unlock()

		n, addr, err := c.PacketConn.ReadFrom(b)

		c.mu.Lock()
		if err != nil {
			closed := c.closed
			c.mu.Unlock()
			if closed && !errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("%w: %w", net.ErrClosed, err)
			}
			return n, addr, err
		}
		if c.draining {
			c.mu.Unlock()
			continue // dropped: the phone is closing
		}
		c.reading = false
		c.remotes[addr.String()] = struct{}{}
		c.mu.Unlock()
		return n, addr, nil
	}
}

func (c *sipConn) parkLocked() {
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
func (c *sipConn) drain() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.parkLocked()
	return c.parked
}

func (c *sipConn) peers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	addrs := make([]string, 0, len(c.remotes))
	for a := range c.remotes {
		addrs = append(addrs, a)
	}
	return addrs
}

func (c *sipConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.PacketConn.Close()
}
