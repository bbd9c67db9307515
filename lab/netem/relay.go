package netem

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// A Relay bridges UDP between two networks in real time: typically the real loopback network of
// this machine, where a PBX container listens (host networking, 127.0.0.1), and a host of the
// emulated network. It listens on one socket; every source that sends to it gets a flow of its
// own: a socket on the other network, dedicated to that source, from which its datagrams go to
// the target, and on which whatever comes back is returned to that source from the listening
// socket. So the mapping is symmetric and several peers work at once: the target sees each peer
// as a distinct address (a distinct loopback port), and each peer sees the relay's listening
// address as the target.
//
// RelayToReal (vnet peers -> a real target) is what a container PBX on 127.0.0.1 needs: the
// lab's phones and gateway on the emulated network send to the relay's vnet address, the PBX
// sees them at loopback ports (so it must answer where requests come from: force_rport,
// rewrite_contact, symmetric RTP), and its requests to those ports reach the phones.
// RelayFromReal is the reverse: real peers (a loopback socket) -> a vnet target.
//
// A relay forwards datagrams unchanged: addresses inside payloads (SIP Via/Contact, SDP c=) are
// not rewritten. Traffic on the emulated side goes through the host's links (Up, Down) like any
// other. Flows idle for IdleTimeout are closed. Close ends every goroutine the relay started.
type Relay struct {
	cfg    RelayConfig
	listen net.PacketConn
	log    *slog.Logger

	mu     sync.Mutex
	flows  map[netip.AddrPort]*relayFlow
	closed bool

	stats struct{ in, out, dropped atomic.Uint64 }

	done chan struct{}
	wg   sync.WaitGroup
}

// RelayConfig describes a relay.
type RelayConfig struct {
	// ListenNet and ListenAddr: where the relay receives (port 0 picks one).
	ListenNet  transport.Net
	ListenAddr netip.AddrPort
	// TargetNet opens one socket per flow, bound to TargetIP with a free port; Target is where
	// the flows send.
	TargetNet transport.Net
	TargetIP  netip.Addr
	Target    netip.AddrPort
	// IdleTimeout closes a flow without traffic either way for that long (default 2 minutes; a
	// negative value keeps flows until Close).
	IdleTimeout time.Duration
	// Logger receives flow creation and removal at debug level (default: discard).
	Logger *slog.Logger
}

// RelayFlow describes one flow.
type RelayFlow struct {
	Peer    netip.AddrPort // the source on the listening side
	Local   netip.AddrPort // the flow's socket on the target side (what the target sees)
	In, Out uint64         // datagrams peer -> target and target -> peer
	Last    time.Time      // last datagram either way
}

// RelayStats counts datagrams.
type RelayStats struct {
	Flows   int
	In, Out uint64 // forwarded to the target, and back to peers
	Dropped uint64 // not forwarded: flow socket failures, writes after Close
}

type relayFlow struct {
	peer  netip.AddrPort
	conn  net.PacketConn
	local netip.AddrPort
	in    atomic.Uint64
	out   atomic.Uint64
	last  atomic.Int64 // unix nanoseconds
}

var errRelayClosed = errors.New("netem: relay closed")

// RelayToReal relays datagrams sent to vnetPort of the host (0 picks a free port) to target, a
// real address (loopback), one loopback socket per vnet peer.
func (h *Host) RelayToReal(vnetPort int, target netip.AddrPort) (*Relay, error) {
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("netem: relay: standard network: %w", err)
	}
	return NewRelay(RelayConfig{
		ListenNet: h.Net, ListenAddr: netip.AddrPortFrom(h.IP, uint16(vnetPort)),
		TargetNet: std, TargetIP: loopbackFor(target.Addr()), Target: target,
	})
}

// RelayFromReal relays datagrams sent to listen, a real address (loopback; port 0 picks one), to
// target, an address on the emulated network, from one socket of the host per real peer.
func (h *Host) RelayFromReal(listen, target netip.AddrPort) (*Relay, error) {
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("netem: relay: standard network: %w", err)
	}
	return NewRelay(RelayConfig{
		ListenNet: std, ListenAddr: listen,
		TargetNet: h.Net, TargetIP: h.IP, Target: target,
	})
}

// loopbackFor is the address a real flow socket binds: the target's own loopback address, or
// 127.0.0.1.
func loopbackFor(a netip.Addr) netip.Addr {
	if a.IsLoopback() && a.Is4() {
		return a
	}
	return netip.MustParseAddr("127.0.0.1")
}

// NewRelay opens the listening socket and starts relaying.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.ListenNet == nil || cfg.TargetNet == nil {
		return nil, fmt.Errorf("netem: relay: ListenNet and TargetNet are required")
	}
	if !cfg.Target.IsValid() || cfg.Target.Port() == 0 {
		return nil, fmt.Errorf("netem: relay: target %v is not an address with a port", cfg.Target)
	}
	if !cfg.TargetIP.IsValid() {
		return nil, fmt.Errorf("netem: relay: TargetIP is required")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lc, err := cfg.ListenNet.ListenUDP("udp4", net.UDPAddrFromAddrPort(cfg.ListenAddr))
	if err != nil {
		return nil, fmt.Errorf("netem: relay: listen on %v: %w", cfg.ListenAddr, err)
	}
	r := &Relay{
		cfg: cfg, listen: lc, flows: map[netip.AddrPort]*relayFlow{}, done: make(chan struct{}),
		log: cfg.Logger.With("relay", lc.LocalAddr().String(), "target", cfg.Target.String()),
	}
	r.wg.Add(1)
	go r.serve()
	if cfg.IdleTimeout > 0 {
		r.wg.Add(1)
		go r.reap()
	}
	return r, nil
}

// Addr is the listening address: where peers send to reach the target.
func (r *Relay) Addr() netip.AddrPort { return addrPortOf(r.listen.LocalAddr()) }

// Target is where the flows send.
func (r *Relay) Target() netip.AddrPort { return r.cfg.Target }

func addrPortOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// serve reads the listening socket and forwards each datagram through its source's flow.
func (r *Relay) serve() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	target := net.UDPAddrFromAddrPort(r.cfg.Target)
	for {
		n, from, err := r.listen.ReadFrom(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("relay: read", "err", err)
			continue
		}
		peer := addrPortOf(from)
		f, err := r.flow(peer)
		if err != nil {
			r.stats.dropped.Add(1)
			if errors.Is(err, errRelayClosed) {
				return
			}
			r.log.Debug("relay: no flow", "peer", peer, "err", err)
			continue
		}
		// Counted before the write: the reply may be back before WriteTo returns.
		f.in.Add(1)
		r.stats.in.Add(1)
		f.last.Store(time.Now().UnixNano())
		if _, err := f.conn.WriteTo(buf[:n], target); err != nil {
			f.in.Add(^uint64(0))
			r.stats.in.Add(^uint64(0))
			r.stats.dropped.Add(1)
		}
	}
}

// flow returns peer's flow, opening its socket and starting its reader the first time.
func (r *Relay) flow(peer netip.AddrPort) (*relayFlow, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errRelayClosed
	}
	if f := r.flows[peer]; f != nil {
		return f, nil
	}
	c, err := r.cfg.TargetNet.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.TargetIP, 0)))
	if err != nil {
		return nil, err
	}
	f := &relayFlow{peer: peer, conn: c, local: addrPortOf(c.LocalAddr())}
	f.last.Store(time.Now().UnixNano())
	r.flows[peer] = f
	r.wg.Add(1)
	go r.back(f)
	r.log.Debug("relay: flow", "peer", peer, "local", f.local)
	return f, nil
}

// back returns what arrives on a flow's socket to its peer, from the listening socket.
func (r *Relay) back(f *relayFlow) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	peer := net.UDPAddrFromAddrPort(f.peer)
	for {
		n, _, err := f.conn.ReadFrom(buf)
		if err != nil {
			return // closed: by Close or by the idle reaper
		}
		f.out.Add(1)
		r.stats.out.Add(1)
		f.last.Store(time.Now().UnixNano())
		if _, err := r.listen.WriteTo(buf[:n], peer); err != nil {
			f.out.Add(^uint64(0))
			r.stats.out.Add(^uint64(0))
			r.stats.dropped.Add(1)
		}
	}
}

// reap closes idle flows.
func (r *Relay) reap() {
	defer r.wg.Done()
	period := r.cfg.IdleTimeout / 4
	if period < 10*time.Millisecond {
		period = 10 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case now := <-t.C:
			var idle []*relayFlow
			r.mu.Lock()
			for p, f := range r.flows {
				if now.Sub(time.Unix(0, f.last.Load())) >= r.cfg.IdleTimeout {
					idle = append(idle, f)
					delete(r.flows, p)
				}
			}
			r.mu.Unlock()
			for _, f := range idle {
				r.log.Debug("relay: idle flow closed", "peer", f.peer, "local", f.local)
				_ = f.conn.Close()
			}
		}
	}
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Flows lists the flows, by peer address.
func (r *Relay) Flows() []RelayFlow {
	r.mu.Lock()
	out := make([]RelayFlow, 0, len(r.flows))
	for _, f := range r.flows {
		out = append(out, RelayFlow{Peer: f.peer, Local: f.local, In: f.in.Load(), Out: f.out.Load(),
			Last: time.Unix(0, f.last.Load())})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b RelayFlow) int { return a.Peer.Compare(b.Peer) })
	return out
}

// LocalFor is the address the target sees for peer (its flow's socket), if peer has a flow.
func (r *Relay) LocalFor(peer netip.AddrPort) (netip.AddrPort, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flows[peer]; f != nil {
		return f.local, true
	}
	return netip.AddrPort{}, false
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	n := len(r.flows)
	r.mu.Unlock()
	return RelayStats{Flows: n, In: r.stats.in.Load(), Out: r.stats.out.Load(), Dropped: r.stats.dropped.Load()}
}

// Close closes the listening socket and every flow, and waits for the relay's goroutines. It is
// idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	flows := make([]*relayFlow, 0, len(r.flows))
	for _, f := range r.flows {
		flows = append(flows, f)
	}
	r.flows = map[netip.AddrPort]*relayFlow{}
	r.mu.Unlock()
	close(r.done)
	err := r.listen.Close()
	for _, f := range flows {
		_ = f.conn.Close()
	}
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil // the network closed it first (Network.Close)
	}
	return err
}
