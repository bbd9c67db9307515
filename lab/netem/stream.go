package netem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v5"
)

// The stream link stands in for TCP, which vnet lacks: in-memory connections between hosts of
// the network whose bytes arrive, in order, after the path's one-way delay (the sender's Up then
// the receiver's Down: base delay plus a jitter draw per segment). Each Write is cut into
// MSS-sized segments; a segment is lost with the path's loss models (and while a direction is
// down) and then arrives one retransmission timeout later (RTO = max(200 ms, 2*RTT), doubling on
// each repeated loss, as TCP backs off), holding back everything behind it (head-of-line
// blocking). After 15 retransmissions of one segment the connection breaks (the writer gets
// ETIMEDOUT, the reader ECONNRESET). Connecting takes a round trip (SYN, SYN-ACK; a lost
// handshake segment is resent after 1 s, doubling).
//
// Capacity: the segments of one connection direction are paced at the path's smallest Rate
// (wire size: payload plus 40 header bytes), but they do not share the datagrams' queue and
// nothing is ever dropped for lack of room; there is no congestion control. Stream traffic draws
// its own random numbers (loss, jitter), so it never shifts the datagrams' loss pattern, and it
// is not counted in DirectionStats. A segment's fate is decided when it is written, with the
// models in force (schedule included) at the instants it crosses each direction; a later Set
// does not change segments already written.
//
// Writes never block (the send buffer is unbounded). Deadlines work as on a real connection.
// Connecting to an address where nothing listens fails with ECONNREFUSED after a round trip;
// listening on a port in use fails with EADDRINUSE; a host address that is not in the network
// fails at once with EHOSTUNREACH.

const (
	streamMSS       = 1448 // payload bytes per segment
	streamHeader    = 40   // TCP+IP header bytes per segment
	minRTO          = 200 * time.Millisecond
	maxRTO          = 120 * time.Second
	synRTO          = time.Second // RFC 6298 initial RTO, for the handshake
	maxRetransmits  = 15          // Linux tcp_retries2
	acceptBacklog   = 128
	streamPortFirst = 32768 // Linux's ephemeral range
	streamPortLast  = 60999
)

var errStreamNotStarted = errors.New("network not started")

// StreamNet opens a host's stream connections (Host.Stream).
type StreamNet struct {
	host *Host
}

// Listen listens on "tcp", "tcp4" or "tcp6" at "ip:port" (the host's address, or an empty or
// unspecified one; port 0 picks a free one).
func (s *StreamNet) Listen(network, address string) (net.Listener, error) {
	ln, err := s.listen(network, address)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// DialContext connects to "ip:port" (or "hostname:port" with a host's name) over the stream
// link; it can serve as http.Transport.DialContext or a WebSocket dialer's NetDialContext.
func (s *StreamNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := s.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// streamTable is the network's registry of stream listeners and connections.
type streamTable struct {
	mu        sync.Mutex
	listeners map[netip.AddrPort]*streamListener
	ports     map[netip.AddrPort]int // local ports in use: listeners and dialled connections
	next      map[netip.Addr]int     // ephemeral port cursor per host
	conns     map[*streamConn]struct{}
	closed    bool
}

func (t *streamTable) init() {
	t.listeners = map[netip.AddrPort]*streamListener{}
	t.ports = map[netip.AddrPort]int{}
	t.next = map[netip.Addr]int{}
	t.conns = map[*streamConn]struct{}{}
}

// ephemeralLocked picks a free local port on ip.
func (t *streamTable) ephemeralLocked(ip netip.Addr) (uint16, bool) {
	cur := t.next[ip]
	if cur == 0 {
		cur = streamPortFirst
	}
	for range streamPortLast - streamPortFirst + 1 {
		p := cur
		cur++
		if cur > streamPortLast {
			cur = streamPortFirst
		}
		if t.ports[netip.AddrPortFrom(ip, uint16(p))] == 0 {
			t.next[ip] = cur
			return uint16(p), true
		}
	}
	return 0, false
}

func (t *streamTable) releaseLocked(ap netip.AddrPort) {
	if t.ports[ap]--; t.ports[ap] <= 0 {
		delete(t.ports, ap)
	}
}

// closeAll closes every listener and connection; Network.Close calls it.
func (t *streamTable) closeAll() {
	t.mu.Lock()
	t.closed = true
	lns := make([]*streamListener, 0, len(t.listeners))
	for _, ln := range t.listeners {
		lns = append(lns, ln)
	}
	conns := make([]*streamConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range conns {
		c.abort()
	}
}

func opErr(op, network string, src, dst net.Addr, err error) error {
	return &net.OpError{Op: op, Net: network, Source: src, Addr: dst, Err: err}
}

// resolve parses "host:port"; host is an address, a host name of the network, or empty.
func (s *StreamNet) resolve(network, address string) (netip.AddrPort, error) {
	hostPart, portPart, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portPart, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort(network, portPart)
		if lerr != nil {
			return netip.AddrPort{}, lerr
		}
		port = uint64(p)
	}
	var ip netip.Addr
	switch hostPart {
	case "", "0.0.0.0", "::":
		ip = s.host.IP
	default:
		a, err := s.host.hnet.inner.ResolveIPAddr("ip4", hostPart)
		if err != nil {
			return netip.AddrPort{}, err
		}
		var ok bool
		if ip, ok = netip.AddrFromSlice(a.IP); !ok {
			return netip.AddrPort{}, &net.AddrError{Err: "bad address", Addr: hostPart}
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsUnspecified() {
			ip = s.host.IP
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

func (s *StreamNet) listen(network, address string) (*streamListener, error) {
	if !isTCP(network) {
		return nil, opErr("listen", network, nil, nil, net.UnknownNetworkError(network))
	}
	ap, err := s.resolve(network, address)
	if err != nil {
		return nil, opErr("listen", network, nil, nil, err)
	}
	if ap.Addr() != s.host.IP {
		return nil, opErr("listen", network, nil, net.TCPAddrFromAddrPort(ap), os.NewSyscallError("bind", syscall.EADDRNOTAVAIL))
	}
	t := &s.host.nw.streams
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, opErr("listen", network, nil, net.TCPAddrFromAddrPort(ap), net.ErrClosed)
	}
	if ap.Port() == 0 {
		p, ok := t.ephemeralLocked(ap.Addr())
		if !ok {
			return nil, opErr("listen", network, nil, net.TCPAddrFromAddrPort(ap), os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
		ap = netip.AddrPortFrom(ap.Addr(), p)
	} else if t.ports[ap] > 0 {
		return nil, opErr("listen", network, nil, net.TCPAddrFromAddrPort(ap), os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	ln := &streamListener{
		tbl: t, key: ap, addr: net.TCPAddrFromAddrPort(ap), network: network,
		backlog: make(chan *streamConn, acceptBacklog), done: make(chan struct{}),
	}
	t.listeners[ap] = ln
	t.ports[ap]++
	return ln, nil
}

// path is the list of directions a segment from src to dst crosses (none within a host).
func path(src, dst *Host) []*Direction {
	if src == dst {
		return nil
	}
	return []*Direction{src.Up, dst.Down}
}

func (s *StreamNet) dial(ctx context.Context, network, address string) (*streamConn, error) {
	if !isTCP(network) {
		return nil, opErr("dial", network, nil, nil, net.UnknownNetworkError(network))
	}
	ap, err := s.resolve(network, address)
	if err != nil {
		return nil, opErr("dial", network, nil, nil, err)
	}
	raddr := net.TCPAddrFromAddrPort(ap)
	src, nw := s.host, s.host.nw
	dst := nw.hostByIP(ap.Addr())
	if dst == nil {
		return nil, opErr("dial", network, nil, raddr, os.NewSyscallError("connect", syscall.EHOSTUNREACH))
	}
	if nw.StartTime().IsZero() {
		return nil, opErr("dial", network, nil, raddr, fmt.Errorf("%w: %w", errStreamNotStarted, syscall.ENETDOWN))
	}
	t := &nw.streams
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, opErr("dial", network, nil, raddr, net.ErrClosed)
	}
	lport, ok := t.ephemeralLocked(src.IP)
	if !ok {
		t.mu.Unlock()
		return nil, opErr("dial", network, nil, raddr, os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
	}
	local := netip.AddrPortFrom(src.IP, lport)
	t.ports[local]++
	t.mu.Unlock()
	laddr := net.TCPAddrFromAddrPort(local)
	release := func() {
		t.mu.Lock()
		t.releaseLocked(local)
		t.mu.Unlock()
	}
	fail := func(err error) (*streamConn, error) {
		release()
		return nil, opErr("dial", network, laddr, raddr, err)
	}

	fwd, rev := path(src, dst), path(dst, src)
	synAt, ok := crossPath(fwd, time.Now(), synRTO)
	if !ok {
		return fail(os.NewSyscallError("connect", syscall.ETIMEDOUT))
	}
	if err := sleepUntil(ctx, synAt); err != nil {
		return fail(ctxErr(err))
	}

	client, server := newStreamPair(t, local, ap, fwd, rev)
	t.mu.Lock()
	ln := t.listeners[ap]
	accepted := false
	if ln != nil && !t.closed {
		select {
		case ln.backlog <- server:
			accepted = true
			t.conns[client] = struct{}{}
			t.conns[server] = struct{}{}
		default: // backlog full: refused, as a SYN to a full queue eventually is
		}
	}
	t.mu.Unlock()
	if !accepted {
		// The RST comes back one way.
		back, _ := crossPath(rev, time.Now(), 0)
		if err := sleepUntil(ctx, back); err != nil {
			return fail(ctxErr(err))
		}
		return fail(os.NewSyscallError("connect", syscall.ECONNREFUSED))
	}
	synAckAt, ok := crossPath(rev, time.Now(), synRTO)
	if !ok {
		client.abort()
		return nil, opErr("dial", network, laddr, raddr, os.NewSyscallError("connect", syscall.ETIMEDOUT))
	}
	if err := sleepUntil(ctx, synAckAt); err != nil {
		_ = client.Close()
		return nil, opErr("dial", network, laddr, raddr, ctxErr(err))
	}
	return client, nil
}

// ctxErr turns a context's end into what net.Dialer returns: a timeout for a deadline.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// crossPath is when a segment sent at send arrives across the directions of p, retransmitted
// every rto (doubling) while lost; rto 0 means the segment is never lost (an RST: if it were,
// the dialler would time out later instead, which the lab does not need). ok is false when the
// segment was lost more than maxRetransmits times; at is then when the sender gives up.
func crossPath(p []*Direction, send time.Time, rto time.Duration) (at time.Time, ok bool) {
	attempt := send
	for tries := 0; ; tries++ {
		t, lost := attempt, false
		for _, d := range p {
			delay, l := d.streamHop(t, rto > 0)
			if l {
				lost = true
				break
			}
			t = t.Add(delay)
		}
		if !lost {
			return t, true
		}
		if tries == maxRetransmits {
			return attempt, false
		}
		attempt = attempt.Add(rto)
		rto = min(2*rto, maxRTO)
	}
}

// streamHop is a stream segment's crossing of d at t: its delay, or lost. The models are those
// in force at t (the schedule's phases up to t included).
func (d *Direction) streamHop(t time.Time, canLose bool) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		d.advanceLocked(time.Now())
	}
	loss, delay, down := d.loss, d.delay, d.down
	if d.running {
		for i := d.phase; i < len(d.cfg.Schedule) && !d.start.Add(d.cfg.Schedule[i].At).After(t); i++ {
			ph := d.cfg.Schedule[i]
			if ph.Loss != nil {
				loss = *ph.Loss
			}
			if ph.Delay != nil {
				delay = *ph.Delay
			}
			if ph.Down != nil {
				down = *ph.Down
			}
		}
	}
	if canLose && (down || d.inOutageLocked(t) || lose(loss, d.stream.rng, &d.stream.bad)) {
		return 0, true
	}
	return delay.Base + drawJitter(delay, d.stream.rng), false
}

// pathTiming is the path's mean one-way delay and its smallest capacity (0: unlimited), now.
func pathTiming(p []*Direction) (oneWay time.Duration, rate int64) {
	for _, d := range p {
		d.mu.Lock()
		oneWay += d.delay.Base + jitterMean(d.delay)
		if r := d.capacity.Rate; r > 0 && (rate == 0 || r < rate) {
			rate = r
		}
		d.mu.Unlock()
	}
	return oneWay, rate
}

// streamListener is a listening stream socket.
type streamListener struct {
	tbl       *streamTable
	key       netip.AddrPort
	addr      *net.TCPAddr
	network   string
	backlog   chan *streamConn
	done      chan struct{}
	closeOnce sync.Once
	deadline  atomic.Int64 // UnixNano; 0: none
}

var _ transport.TCPListener = (*streamListener)(nil)

func (l *streamListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for the next connection (its SYN has arrived).
func (l *streamListener) AcceptTCP() (transport.TCPConn, error) {
	var timeout <-chan time.Time
	if dl := l.deadline.Load(); dl != 0 {
		d := time.Until(time.Unix(0, dl))
		if d <= 0 {
			return nil, opErr("accept", l.network, nil, l.addr, os.ErrDeadlineExceeded)
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, opErr("accept", l.network, nil, l.addr, net.ErrClosed)
	case <-timeout:
		return nil, opErr("accept", l.network, nil, l.addr, os.ErrDeadlineExceeded)
	}
}

// SetDeadline bounds the Accept calls that start after it.
func (l *streamListener) SetDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	l.deadline.Store(ns)
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.addr }

// Close stops listening; connections not yet accepted are closed (their peers read EOF).
func (l *streamListener) Close() error {
	err := opErr("close", l.network, nil, l.addr, net.ErrClosed)
	l.closeOnce.Do(func() {
		err = nil
		l.tbl.mu.Lock()
		if l.tbl.listeners[l.key] == l {
			delete(l.tbl.listeners, l.key)
			l.tbl.releaseLocked(l.key)
		}
		close(l.done)
		l.tbl.mu.Unlock()
		for {
			select {
			case c := <-l.backlog:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return err
}

// streamPipe is one direction of a connection: the writer's segments in arrival order, read by
// the reader once they are due.
type streamPipe struct {
	mu      sync.Mutex
	segs    []streamSeg
	head    int
	changed chan struct{} // closed and replaced on every change the reader may wait for

	lastArrive time.Time // in-order delivery: no segment arrives before the one ahead
	sendFree   time.Time // the writer's pacing at the path's capacity
	fin        bool      // the writer closed: EOF at finAt, after the data
	finAt      time.Time
	reset      bool // the path gave up: the reader gets ECONNRESET at resetAt
	resetAt    time.Time
	readClosed bool // the reader closed its side
	aborted    bool // Network.Close
	deadline   time.Time
}

type streamSeg struct {
	data []byte
	at   time.Time
}

func newPipe() *streamPipe { return &streamPipe{changed: make(chan struct{})} }

func (p *streamPipe) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// streamConn is one end of a stream connection.
type streamConn struct {
	tbl           *streamTable
	localKey      netip.AddrPort // released on Close (dialled side only)
	ownsPort      bool
	local, remote *net.TCPAddr
	in, out       *streamPipe
	fwd, rev      []*Direction // what this end sends crosses fwd; acknowledgements rev
	closed        atomic.Bool
	writeDeadline atomic.Int64
}

var _ transport.TCPConn = (*streamConn)(nil)

func newStreamPair(t *streamTable, local, remote netip.AddrPort, fwd, rev []*Direction) (client, server *streamConn) {
	a, b := newPipe(), newPipe()
	client = &streamConn{tbl: t, localKey: local, ownsPort: true, local: net.TCPAddrFromAddrPort(local),
		remote: net.TCPAddrFromAddrPort(remote), in: a, out: b, fwd: fwd, rev: rev}
	server = &streamConn{tbl: t, localKey: remote, local: net.TCPAddrFromAddrPort(remote),
		remote: net.TCPAddrFromAddrPort(local), in: b, out: a, fwd: rev, rev: fwd}
	return client, server
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// Read returns the bytes that have arrived, waiting for the next segment if none has.
func (c *streamConn) Read(b []byte) (int, error) {
	p := c.in
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		if p.readClosed || p.aborted || c.closed.Load() {
			p.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		now := time.Now()
		if !p.deadline.IsZero() && !now.Before(p.deadline) {
			p.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			p.mu.Unlock()
			return 0, nil
		}
		n := 0
		for p.head < len(p.segs) && !p.segs[p.head].at.After(now) && n < len(b) {
			s := &p.segs[p.head]
			k := copy(b[n:], s.data)
			n += k
			s.data = s.data[k:]
			if len(s.data) == 0 {
				p.segs[p.head] = streamSeg{}
				p.head++
			}
		}
		if p.head == len(p.segs) {
			p.segs, p.head = p.segs[:0], 0
		}
		if n > 0 {
			p.mu.Unlock()
			return n, nil
		}
		var wait time.Time
		switch {
		case p.head < len(p.segs):
			wait = p.segs[p.head].at
		case p.reset && !now.Before(p.resetAt):
			p.mu.Unlock()
			return 0, c.opError("read", os.NewSyscallError("read", syscall.ECONNRESET))
		case p.reset:
			wait = p.resetAt
		case p.fin && !now.Before(p.finAt):
			p.mu.Unlock()
			return 0, io.EOF
		case p.fin:
			wait = p.finAt
		}
		if !p.deadline.IsZero() && (wait.IsZero() || p.deadline.Before(wait)) {
			wait = p.deadline
		}
		ch := p.changed
		p.mu.Unlock()
		if wait.IsZero() {
			<-ch
			continue
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(wait))
		} else {
			timer.Reset(time.Until(wait))
		}
		select {
		case <-ch:
		case <-timer.C:
		}
	}
}

// Write sends b; it never blocks: each segment's arrival is decided now (see the package's
// stream link notes).
func (c *streamConn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	now := time.Now()
	if dl := c.writeDeadline.Load(); dl != 0 && now.UnixNano() >= dl {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	p := c.out
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.aborted:
		return 0, c.opError("write", net.ErrClosed)
	case p.fin:
		return 0, c.opError("write", os.NewSyscallError("write", syscall.EPIPE))
	case p.reset && !now.Before(p.resetAt):
		return 0, c.opError("write", os.NewSyscallError("write", syscall.ETIMEDOUT))
	case p.reset, p.readClosed:
		return len(b), nil // nobody will read it
	}
	if len(b) == 0 {
		return 0, nil
	}
	data := append([]byte(nil), b...)
	for off := 0; off < len(data); off += streamMSS {
		seg := data[off:min(off+streamMSS, len(data))]
		if !c.sendLocked(p, now, seg) {
			break
		}
	}
	p.signalLocked()
	return len(b), nil
}

// sendLocked decides one segment's arrival (or the connection's end) and queues it.
func (c *streamConn) sendLocked(p *streamPipe, now time.Time, seg []byte) bool {
	fwdDelay, rate := pathTiming(c.fwd)
	revDelay, _ := pathTiming(c.rev)
	rto := max(minRTO, 2*(fwdDelay+revDelay))
	send := now
	if rate > 0 {
		send = maxTime(now, p.sendFree)
		p.sendFree = send.Add(time.Duration(int64(len(seg)+streamHeader) * 8 * int64(time.Second) / rate))
	}
	at, ok := crossPath(c.fwd, send, rto)
	if !ok {
		p.reset, p.resetAt = true, at
		return false
	}
	at = maxTime(at, p.lastArrive)
	p.lastArrive = at
	if seg == nil {
		p.fin, p.finAt = true, at
		return true
	}
	p.segs = append(p.segs, streamSeg{data: seg, at: at})
	return true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// CloseWrite sends FIN: the peer reads EOF after the data written so far.
func (c *streamConn) CloseWrite() error {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	c.finish()
	return nil
}

func (c *streamConn) finish() {
	p := c.out
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fin || p.reset || p.aborted {
		return
	}
	c.sendLocked(p, time.Now(), nil)
	p.signalLocked()
}

// CloseRead stops reading: later reads fail, and what arrives is discarded.
func (c *streamConn) CloseRead() error {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	p := c.in
	p.mu.Lock()
	p.readClosed = true
	p.segs, p.head = nil, 0
	p.signalLocked()
	p.mu.Unlock()
	return nil
}

// Close closes both directions: the peer reads EOF once the data already written has arrived.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.finish()
	p := c.in
	p.mu.Lock()
	p.readClosed = true
	p.segs, p.head = nil, 0
	p.signalLocked()
	p.mu.Unlock()
	c.tbl.mu.Lock()
	delete(c.tbl.conns, c)
	if c.ownsPort {
		c.tbl.releaseLocked(c.localKey)
		c.ownsPort = false
	}
	c.tbl.mu.Unlock()
	return nil
}

// abort ends the connection at once, both ends' readers failing with net.ErrClosed (Network.Close).
func (c *streamConn) abort() {
	for _, p := range []*streamPipe{c.in, c.out} {
		p.mu.Lock()
		p.aborted = true
		p.segs, p.head = nil, 0
		p.signalLocked()
		p.mu.Unlock()
	}
	c.tbl.mu.Lock()
	delete(c.tbl.conns, c)
	if c.ownsPort {
		c.tbl.releaseLocked(c.localKey)
		c.ownsPort = false
	}
	c.tbl.mu.Unlock()
}

func (c *streamConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	p := c.in
	p.mu.Lock()
	p.deadline = t
	p.signalLocked()
	p.mu.Unlock()
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
	return nil
}

// ReadFrom copies r into the connection (io.ReaderFrom).
func (c *streamConn) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// The socket options are accepted and have no effect.
func (c *streamConn) SetLinger(int) error                    { return nil }
func (c *streamConn) SetKeepAlive(bool) error                { return nil }
func (c *streamConn) SetKeepAlivePeriod(time.Duration) error { return nil }
func (c *streamConn) SetNoDelay(bool) error                  { return nil }
func (c *streamConn) SetWriteBuffer(int) error               { return nil }
func (c *streamConn) SetReadBuffer(int) error                { return nil }
