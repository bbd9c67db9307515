// Package sipnet runs sipgo (v1.7) on an injected pion transport.Net without sipgo ever opening
// an OS socket of its own: UDP always, TCP and TLS when the Net supports TCP. The gateway, the
// embedded PBX and the lab's SIP phone all use it: in the lab their Net is a vnet host, and a
// real socket sending to a virtual 10.77.x.x address would put lab traffic on the machine's
// network, which is forbidden there.
//
// sipgo opens sockets itself in four places, each closed here:
//
//   - Client requests: without a fixed local address sipgo looks a connection up by destination
//     and, on a miss, creates one with net.ListenConfig. The Stack's Client always names the
//     socket the Server reads (sipgo.WithClientConnectionAddr), and that address is in sipgo's
//     connection pool from Listen on, so the lookup never misses.
//   - Server transactions: a request's connection is looked up by the peer's address and, on a
//     miss, created the same way. Server.ServeUDP adds the peer addresses to the pool as packets
//     arrive, but removes them when its read loop ends, and UserAgent.Close clears the pool, while
//     requests read just before are still being handled on goroutines of their own (an ACK
//     arriving between ua.Close() and the socket's close is enough). So the Stack never calls
//     UserAgent.Close; when the read loop ends it first points every address sipgo has seen at a
//     second handle on the same socket, which the read loop's clean-up leaves alone. Those
//     handles stay in the pool for good: once the socket is closed, writes through them fail.
//   - DNS: sipgo resolves host names with its resolver, the host's by default. The lab addresses
//     everything by IP, so the Stack's resolver fails every lookup.
//   - Stream connections: sipgo dials TCP and TLS itself. Here its dialer refuses, and
//     Stack.Connect opens them through the Net instead (stream.go).
//
// Two more details: ServeUDP puts the socket in the pool before it first reads, and requests sent
// before that would miss it (Serve waits for it); and vnet reports reads on a closed socket with
// its own error, which sipgo would log as a failure rather than an orderly close (the Stack
// reports them as net.ErrClosed).
package sipnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/transport/v5"
)

var (
	// ErrClosed is returned by Serve on a closed Stack.
	ErrClosed = errors.New("sipnet: stack closed")
	// ErrServing is returned by a second Serve.
	ErrServing = errors.New("sipnet: already serving")

	errNoDNS      = errors.New("sipnet: no DNS, use IP addresses")
	errConfig     = errors.New("sipnet: invalid config")
	errNotPooled  = errors.New("sipnet: sipgo reads the socket but has not pooled it")
	errServeEnded = errors.New("sipnet: serving ended while starting")
)

// Config describes one SIP endpoint over UDP.
type Config struct {
	// Net opens the socket (required): stdnet in production, a vnet host in the lab.
	Net transport.Net
	// Bind is the UDP address to serve on; port 0 picks a free one. The address must be a
	// specific one: sipgo puts it in the Via of every request.
	Bind netip.AddrPort
	// UserAgent is sipgo's user agent name (sipgo's default when empty); Hostname is the host of
	// the From header sipgo builds for requests that have none (default: Bind's address).
	UserAgent, Hostname string
	// Logger receives sipgo's log (default slog.Default()).
	Logger *slog.Logger
	// NAT makes the client add ;rport to its Via (RFC 3581).
	NAT bool
	// UnhandledResponse, when set, sees responses no client transaction matched (for example a
	// retransmitted 2xx to an INVITE whose transaction has ended); by default they are logged at
	// debug level.
	UnhandledResponse func(*sip.Response)
	// TCP also serves SIP over TCP on Bind's address and port when Net supports TCP (the
	// standard network does; pion's vnet does not, and then the Stack serves UDP only).
	TCP bool
	// TLS, when set and Net supports TCP, also serves SIP over TLS with its certificates on
	// TLSPort of Bind's address (0 picks a free port).
	TLS     *tls.Config
	TLSPort int
	// ClientTLS configures the TLS connections Connect opens (root CAs, client certificates);
	// its ServerName defaults to the peer's IP address. Nil: Connect("tls") fails.
	ClientTLS *tls.Config
}

// Stack is a sipgo user agent with its server and client on one UDP socket of a transport.Net.
// Register handlers on Server, then call Serve; Close when done.
type Stack struct {
	UA     *sipgo.UserAgent
	Server *sipgo.Server
	Client *sipgo.Client
	Addr   netip.AddrPort // the socket's address
	// TCPAddr is where SIP over TCP is served (invalid when it is not).
	TCPAddr netip.AddrPort
	// TLSAddr is where SIP over TLS is served (invalid when it is not).
	TLSAddr netip.AddrPort

	conn      *conn
	net       transport.Net
	clientTLS *tls.Config
	tcp       net.Listener
	tls       net.Listener
	inject    map[string]*injectListener // by network: the connections Connect opened
	dialMu    sync.Mutex                 // one Connect dials at a time
	streams   sync.WaitGroup             // sipgo's accept loops of tcp, tls and inject
	log       *slog.Logger
	done      chan struct{} // closed when serving ended (or, without Serve, by Close)

	mu        sync.Mutex
	serving   bool
	closed    bool
	closeErr  error
	closeDone chan struct{}
}

// Listen binds the socket through cfg.Net and builds the user agent, server and client. Nothing
// is read until Serve.
func Listen(cfg Config) (*Stack, error) {
	if cfg.Net == nil {
		return nil, fmt.Errorf("%w: Net is required", errConfig)
	}
	bind := netip.AddrPortFrom(cfg.Bind.Addr().Unmap(), cfg.Bind.Port())
	if !bind.Addr().IsValid() || bind.Addr().IsUnspecified() {
		return nil, fmt.Errorf("%w: Bind needs a specific address, got %v", errConfig, cfg.Bind)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	network := "udp4"
	if bind.Addr().Is6() {
		network = "udp6"
	}
	pc, tcpLn, local, err := bindPair(cfg, network, bind)
	if err != nil {
		return nil, err
	}
	if cfg.Hostname == "" {
		cfg.Hostname = local.Addr().String()
	}

	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errNoDNS
	}}
	unhandled := cfg.UnhandledResponse
	if unhandled == nil {
		// sipgo's own default logs every one at Info level to its global logger.
		log := cfg.Logger
		unhandled = func(res *sip.Response) { log.Debug("unhandled SIP response", "response", res.Short()) }
	}
	txOpts := []sip.TransactionLayerOption{
		sip.WithTransactionLayerLogger(cfg.Logger),
		sip.WithTransactionLayerUnhandledResponseHandler(unhandled),
	}
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgentHostname(cfg.Hostname),
		sipgo.WithUserAgentDNSResolver(noDNS),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(cfg.Logger),
			sip.WithTransportLayerTransports(streamTransports())),
		sipgo.WithUserAgentTransactionLayerOptions(txOpts...),
	}
	if cfg.UserAgent != "" {
		uaOpts = append(uaOpts, sipgo.WithUserAgent(cfg.UserAgent))
	}
	// The UA holds no socket yet: on failure only pc needs closing (UserAgent.Close is never
	// called, see the package doc).
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		closeBound(pc, tcpLn)
		return nil, fmt.Errorf("sipnet: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Logger))
	if err != nil {
		closeBound(pc, tcpLn)
		return nil, fmt.Errorf("sipnet: server: %w", err)
	}
	clientOpts := []sipgo.ClientOption{
		sipgo.WithClientLogger(cfg.Logger),
		sipgo.WithClientHostname(local.Addr().String()),
		sipgo.WithClientPort(int(local.Port())),
		sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
	}
	if cfg.NAT {
		clientOpts = append(clientOpts, sipgo.WithClientNAT())
	}
	client, err := sipgo.NewClient(ua, clientOpts...)
	if err != nil {
		closeBound(pc, tcpLn)
		return nil, fmt.Errorf("sipnet: client: %w", err)
	}

	c := newConn(pc, ua.TransportLayer().Pool("udp"))
	c.pin() // requests sent before Serve go out of the socket too
	st := &Stack{
		UA: ua, Server: srv, Client: client, Addr: local,
		conn:      c,
		net:       cfg.Net,
		clientTLS: cfg.ClientTLS,
		inject: map[string]*injectListener{
			"tcp": newInjectListener(pc.LocalAddr()),
			"tls": newInjectListener(pc.LocalAddr()),
		},
		log:       cfg.Logger,
		done:      make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	if tcpLn != nil {
		st.tcp = tcpLn
		st.TCPAddr = local
	} else if cfg.TCP {
		cfg.Logger.Debug("no SIP over TCP: the network has no TCP", "addr", local)
	}
	if cfg.TLS != nil {
		tcpNet := "tcp4"
		if local.Addr().Is6() {
			tcpNet = "tcp6"
		}
		ln, err := cfg.Net.ListenTCP(tcpNet, net.TCPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), uint16(cfg.TLSPort))))
		switch {
		case errors.Is(err, transport.ErrNotSupported):
			cfg.Logger.Debug("no SIP over TLS: the network has no TCP", "addr", local)
		case err != nil:
			if st.tcp != nil {
				_ = st.tcp.Close()
			}
			_ = pc.Close()
			return nil, fmt.Errorf("sipnet: bind %s:%d/tls: %w", local.Addr(), cfg.TLSPort, err)
		default:
			st.TLSAddr, _ = netip.ParseAddrPort(ln.Addr().String())
			st.tls = tls.NewListener(ln, cfg.TLS)
		}
	}
	return st, nil
}

// bindPair binds the UDP socket and, with cfg.TCP on a network that has TCP, the TCP listener on
// the same port. When the port was left to the system (0), the TCP twin of the UDP port it
// picked may be taken by another program: then both are bound again on another port.
func bindPair(cfg Config, network string, bind netip.AddrPort) (net.PacketConn, net.Listener, netip.AddrPort, error) {
	const attempts = 8
	for try := 1; ; try++ {
		pc, err := cfg.Net.ListenPacket(network, bind.String())
		if err != nil {
			return nil, nil, netip.AddrPort{}, fmt.Errorf("sipnet: bind %s/udp: %w", bind, err)
		}
		local, err := netip.ParseAddrPort(pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			return nil, nil, netip.AddrPort{}, fmt.Errorf("sipnet: socket address %s: %w", pc.LocalAddr(), err)
		}
		if !cfg.TCP {
			return pc, nil, local, nil
		}
		tcpNet := "tcp4"
		if local.Addr().Is6() {
			tcpNet = "tcp6"
		}
		ln, err := cfg.Net.ListenTCP(tcpNet, net.TCPAddrFromAddrPort(local))
		switch {
		case err == nil:
			return pc, ln, local, nil
		case errors.Is(err, transport.ErrNotSupported):
			return pc, nil, local, nil
		case bind.Port() == 0 && errors.Is(err, syscall.EADDRINUSE) && try < attempts:
			_ = pc.Close() // another program holds this port's TCP twin: pick another port
		default:
			_ = pc.Close()
			return nil, nil, netip.AddrPort{}, fmt.Errorf("sipnet: bind %s/tcp: %w", local, err)
		}
	}
}

// closeBound releases what bindPair bound when Listen fails later.
func closeBound(pc net.PacketConn, ln net.Listener) {
	_ = pc.Close()
	if ln != nil {
		_ = ln.Close()
	}
}

// Serve starts serving on a goroutine of its own and returns once sipgo has put the socket in
// its connection pool, so that what sipgo sends goes out of it. ctx bounds that wait only:
// serving goes on until Close. Register the handlers on Server before calling Serve. After an
// error the Stack still needs Close.
func (s *Stack) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.serving:
		s.mu.Unlock()
		return ErrServing
	}
	s.serving = true
	s.mu.Unlock()

	go func() {
		defer close(s.done)
		if err := s.Server.ServeUDP(s.conn); err != nil {
			s.log.Warn("SIP serving ended", "addr", s.Addr, "error", err)
		}
	}()
	// Accept fails once Close closes the listeners; that ends serving.
	serveStream := func(serve func(net.Listener) error, l net.Listener) {
		s.streams.Add(1)
		go func() {
			defer s.streams.Done()
			_ = serve(l)
		}()
	}
	if s.tcp != nil {
		serveStream(s.Server.ServeTCP, s.tcp)
	}
	if s.tls != nil {
		serveStream(s.Server.ServeTLS, s.tls)
	}
	serveStream(s.Server.ServeTCP, s.inject["tcp"])
	serveStream(s.Server.ServeTLS, s.inject["tls"])

	// ServeUDP pools the socket, then reads: its first read means the socket is in the pool.
	select {
	case <-s.conn.served:
	case <-s.done:
		return fmt.Errorf("%w on %s", errServeEnded, s.Addr)
	case <-ctx.Done():
		return fmt.Errorf("sipnet: waiting for sipgo to serve %s: %w", s.Addr, ctx.Err())
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !s.conn.pooledBySipgo() {
		return fmt.Errorf("%w: %s", errNotPooled, s.Addr)
	}
	return nil
}

// Peers lists the addresses (ip:port) sipgo has received packets from.
func (s *Stack) Peers() []string { return s.conn.peers() }

// Done is closed when serving has ended: after Close, or when the socket failed.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Close stops sipgo without letting it open a socket: it stops taking packets, waits until the
// read loop has handed the last one on, pins every address sipgo has seen to the socket,
// terminates the transactions, closes the socket and waits for the read loop to end. Handlers
// still running see their responses fail. Close is idempotent; a concurrent call returns once
// the first one is done.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone
		return s.closeErr
	}
	s.closed = true
	serving := s.serving
	s.mu.Unlock()
	defer close(s.closeDone)

	if serving {
		select {
		case <-s.conn.drain():
		case <-s.done:
		}
	}
	s.conn.pin()
	for _, l := range []net.Listener{s.tcp, s.tls, s.inject["tcp"], s.inject["tls"]} {
		if l != nil {
			_ = l.Close()
		}
	}
	s.UA.TransactionLayer().Close()
	s.closeErr = s.conn.Close()
	// Stream connections (accepted or connected) end their read loops when closed.
	_ = s.UA.TransportLayer().Pool("tcp").Clear()
	_ = s.UA.TransportLayer().Pool("tls").Clear()
	s.streams.Wait()
	if serving {
		<-s.done
	} else {
		close(s.done)
	}
	return s.closeErr
}
