// Package netem is the lab's emulated network: named hosts on pion's virtual network (vnet), each
// with its own transport.Net, so the gateway, the PBX and the lab peers run unchanged on it.
// Impairment models (loss, delay, jitter, capacity, schedules) attach to its links.
package netem

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
)

// DefaultCIDR is the lab's address plan: the FreeSWITCH overlay's ACL allows it.
const DefaultCIDR = "10.77.0.0/16"

var (
	errDuplicateHost = errors.New("duplicate host")
	errStarted       = errors.New("network already started")
)

// Network is a flat emulated network: one vnet router and its hosts.
type Network struct {
	mu      sync.Mutex
	prefix  netip.Prefix
	router  *vnet.Router
	hosts   map[string]*Host
	next    netip.Addr
	started bool
}

// Host is one machine on the network.
type Host struct {
	Name string
	IP   netip.Addr
	// Net opens the host's sockets; hand it to anything that takes a transport.Net.
	Net *vnet.Net
}

// New creates a network on cidr (DefaultCIDR when empty).
func New(cidr string) (*Network, error) {
	if cidr == "" {
		cidr = DefaultCIDR
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("netem: network %q: %w", cidr, err)
	}
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: prefix.Masked().String(), LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	return &Network{prefix: prefix.Masked(), router: r, hosts: map[string]*Host{}, next: prefix.Masked().Addr().Next()}, nil
}

// AddHost adds a host with the given address, or the next free one when ip is empty.
func (n *Network) AddHost(name, ip string) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return nil, fmt.Errorf("netem: add host %q: %w", name, errStarted)
	}
	if _, ok := n.hosts[name]; ok {
		return nil, fmt.Errorf("netem: %w %q", errDuplicateHost, name)
	}
	var addr netip.Addr
	if ip == "" {
		addr = n.next
		n.next = n.next.Next()
	} else {
		a, err := netip.ParseAddr(ip)
		if err != nil || !n.prefix.Contains(a) {
			return nil, fmt.Errorf("netem: host %q: address %q is not in %s", name, ip, n.prefix)
		}
		addr = a
	}
	vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{addr.String()}})
	if err != nil {
		return nil, fmt.Errorf("netem: host %q: %w", name, err)
	}
	if err := n.router.AddNet(vn); err != nil {
		return nil, fmt.Errorf("netem: host %q: %w", name, err)
	}
	h := &Host{Name: name, IP: addr, Net: vn}
	n.hosts[name] = h
	return h, nil
}

// Host returns a host by name.
func (n *Network) Host(name string) (*Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	return h, ok
}

// Start starts forwarding.
func (n *Network) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errStarted
	}
	n.started = true
	return n.router.Start()
}

// Close stops the router and every goroutine it runs.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return nil
	}
	n.started = false
	return n.router.Stop()
}
