// Package netem is the lab's emulated network: named hosts on pion's virtual network (vnet), each
// with its own transport.Net, so the gateway, the PBX and the lab peers run unchanged on it.
//
// Every host has an access link to the network whose two directions (Host.Up, what it sends;
// Host.Down, what it receives) carry their own impairment models (models.go): a datagram goes
// through its sender's Up then its receiver's Down, each applying outage, loss, duplication,
// capacity (a drop-tail queue drained at line rate) and delay with jitter, in that order. The
// models are seeded, change live (Direction.Set) or by schedule, and count what they do
// (Direction.Stats). A stream link (Host.Stream) stands in for TCP, which vnet lacks.
//
// All timing goes through the time package, so a network runs in real time and, unchanged, in
// virtual time inside a testing/synctest bubble. Close ends every goroutine the network started.
//
// Reproducibility: each direction draws its random decisions (loss, duplication, jitter) from
// streams seeded by the network's seed and the direction's name, in the order packets reach it.
// The same seed and the same packet order on a link give the same decisions, on every run. What
// does vary is the order itself when several goroutines send at the same instant (audio and
// video of one call, two calls on one link): the Go scheduler interleaves them differently from
// run to run, even in virtual time, so which packet of which stream is lost varies while the
// rates and burst statistics stay those of the model. Keying the draws by flow would not help:
// a BUNDLEd call carries audio and video on one 5-tuple, and vnet picks ports at random.
//
// The topology is a star: a host's access link (Up, Down) carries everything it sends and
// receives, whoever the peer; to impair one path and not another, give the peers their own
// hosts.
package netem

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
)

// vnetMu serializes building vnet routers and hosts: pion's vnet numbers their MAC addresses
// with a package-level counter it does not lock, so networks built in parallel (tune's parallel
// runs, parallel tests) race on it.
var vnetMu sync.Mutex

// DefaultCIDR is the lab's address plan: the FreeSWITCH overlay's ACL allows it.
const DefaultCIDR = "10.77.0.0/16"

var (
	errDuplicateHost = errors.New("duplicate host")
	errStarted       = errors.New("network already started")
	errClosed        = errors.New("network closed")
	errAddress       = errors.New("bad host address")
)

// Option configures a Network.
type Option func(*Network)

// WithSeed sets the network's seed (default 1). Each direction's random decisions derive from it
// and the direction's name, unless its LinkConfig.Seed is set.
func WithSeed(seed int64) Option { return func(n *Network) { n.seed = seed } }

// WithLogger sets where the network logs (configuration changes, start and close). The default
// discards.
func WithLogger(l *slog.Logger) Option { return func(n *Network) { n.log = l } }

// Network is a flat emulated network: one vnet router and its hosts.
type Network struct {
	seed   int64
	log    *slog.Logger
	prefix netip.Prefix
	router *vnet.Router

	mu      sync.Mutex
	hosts   map[string]*Host
	order   []*Host
	next    netip.Addr
	started bool
	closed  bool
	start   time.Time

	// byIP is the immutable host table the write path reads without a lock (copy on AddHost).
	byIP atomic.Pointer[map[netip.Addr]*Host]

	// streams holds the stream listeners and connections (stream.go).
	streams streamTable

	wg sync.WaitGroup // the direction schedulers
}

// Host is one machine on the network.
type Host struct {
	Name string
	IP   netip.Addr
	// Net is the host's network stack; hand it to anything that takes a transport.Net. Every UDP
	// socket it opens is shaped by Up (egress) then by the destination host's Down (ingress).
	// Its TCP calls (Dial, ListenTCP, CreateListenConfig().Listen, ...) use Stream.
	Net transport.Net
	// Up shapes what the host sends, Down what it receives.
	Up, Down *Direction
	// Stream opens TCP-like stream connections (vnet has no TCP).
	Stream *StreamNet

	vnet *vnet.Net
	hnet *hostNet
	nw   *Network
}

// New creates a network on cidr (DefaultCIDR when empty).
func New(cidr string, opts ...Option) (*Network, error) {
	if cidr == "" {
		cidr = DefaultCIDR
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("netem: network %q: %w", cidr, err)
	}
	if !prefix.Addr().Is4() {
		return nil, fmt.Errorf("netem: network %q: %w: IPv4 only (vnet)", cidr, errAddress)
	}
	prefix = prefix.Masked()
	vnetMu.Lock()
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: prefix.String(), LoggerFactory: logging.NewDefaultLoggerFactory()})
	vnetMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	n := &Network{
		seed:   1,
		log:    slog.New(slog.DiscardHandler),
		prefix: prefix,
		router: r,
		hosts:  map[string]*Host{},
		next:   prefix.Addr().Next(),
	}
	for _, o := range opts {
		o(n)
	}
	n.byIP.Store(&map[netip.Addr]*Host{})
	n.streams.init()
	return n, nil
}

// AddHost adds a host with the given address, or the next free one when ip is empty. Hosts are
// added before Start.
func (n *Network) AddHost(name, ip string) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return nil, fmt.Errorf("netem: add host %q: %w", name, errStarted)
	}
	if name == "" {
		return nil, fmt.Errorf("netem: add host: %w: empty name", errAddress)
	}
	if _, ok := n.hosts[name]; ok {
		return nil, fmt.Errorf("netem: %w %q", errDuplicateHost, name)
	}
	byIP := *n.byIP.Load()
	var addr netip.Addr
	if ip == "" {
		for byIP[n.next] != nil {
			n.next = n.next.Next()
		}
		addr = n.next
		n.next = n.next.Next()
	} else {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("netem: host %q: %w %q: %w", name, errAddress, ip, err)
		}
		addr = a.Unmap()
	}
	if !n.prefix.Contains(addr) || addr == n.prefix.Addr() {
		return nil, fmt.Errorf("netem: host %q: %w %s: not a host address of %s", name, errAddress, addr, n.prefix)
	}
	if other := byIP[addr]; other != nil {
		return nil, fmt.Errorf("netem: host %q: %w %s: already host %q's", name, errAddress, addr, other.Name)
	}
	vnetMu.Lock()
	vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{addr.String()}})
	vnetMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("netem: host %q: %w", name, err)
	}
	if err := n.router.AddNet(vn); err != nil {
		return nil, fmt.Errorf("netem: host %q: %w", name, err)
	}
	// Names resolve through vnet's resolver, so "pbx:5060" works wherever an address does.
	_ = n.router.AddHost(name, addr.String()) // fails only for a name already taken: checked above

	h := &Host{Name: name, IP: addr, vnet: vn, nw: n}
	h.Up = newDirection(n, name+"/up")
	h.Down = newDirection(n, name+"/down")
	h.hnet = newHostNet(h)
	h.Net = h.hnet
	h.Stream = &StreamNet{host: h}
	n.hosts[name] = h
	n.order = append(n.order, h)
	next := make(map[netip.Addr]*Host, len(byIP)+1)
	for k, v := range byIP {
		next[k] = v
	}
	next[addr] = h
	n.byIP.Store(&next)
	return h, nil
}

// Host returns a host by name.
func (n *Network) Host(name string) (*Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	return h, ok
}

// Hosts returns the hosts in the order they were added.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.order)
}

// hostByIP finds the host that owns ip (nil if none); the write path calls it per datagram.
func (n *Network) hostByIP(ip netip.Addr) *Host {
	return (*n.byIP.Load())[ip]
}

// Start starts forwarding and the links' schedulers; schedules and outages count from now.
// Datagrams sent before Start are lost, as on a network that is not up yet.
func (n *Network) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("netem: start: %w", errClosed)
	}
	if n.started {
		return fmt.Errorf("netem: %w", errStarted)
	}
	if err := n.router.Start(); err != nil {
		return fmt.Errorf("netem: start: %w", err)
	}
	n.started = true
	n.start = time.Now()
	for _, h := range n.order {
		for _, d := range []*Direction{h.Up, h.Down} {
			d.run(n.start, &n.wg)
		}
	}
	n.log.Debug("netem: started", "prefix", n.prefix, "hosts", len(n.order), "seed", n.seed)
	return nil
}

// StartTime is when Start ran: schedules and outages count from it (zero before Start).
func (n *Network) StartTime() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.start
}

// Close stops forwarding and ends every goroutine the network started: the links' schedulers
// and vnet's router. It also closes the sockets, stream listeners and stream connections its
// hosts still have open, so goroutines blocked reading them return (with net.ErrClosed); a
// socket closed this way returns nil from its own later Close. Datagrams still in flight are
// lost. Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	hosts := slices.Clone(n.order)
	n.mu.Unlock()

	for _, h := range hosts {
		h.Up.stop()
		h.Down.stop()
	}
	n.wg.Wait()
	var err error
	if started {
		if e := n.router.Stop(); e != nil {
			err = fmt.Errorf("netem: close: %w", e)
		}
	}
	n.streams.closeAll()
	for _, h := range hosts {
		h.hnet.closeAll()
	}
	n.log.Debug("netem: closed")
	return err
}

// isClosed reports whether Close has run.
func (n *Network) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// directionSeed derives a direction's seed from the network's seed and the direction's name, so
// adding a host does not change the decisions of the others.
func directionSeed(network int64, name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return splitmix64(uint64(network) ^ h.Sum64())
}

// splitmix64 scrambles a seed (Steele et al.), so nearby seeds give unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
