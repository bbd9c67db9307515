package sipnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// SIP over TCP and TLS.
//
// sipgo dials a stream connection itself (net.Dialer, an OS socket) when a request finds none in
// its pool, and with WithClientConnectionAddr it looks the pool up by the UDP socket's address,
// so it would always miss. So the Stack's TCP and TLS transports cannot dial (their dialer
// refuses before a socket exists), and Connect opens a connection through the Net and hands it
// to sipgo as if a listener had accepted it: sipgo then reads it and pools it by the peer's
// address. Requests built with BuildRequest are not tied to the UDP socket, so over TCP or TLS
// they find that connection (or one the peer opened to us).

var (
	errNoStream = errors.New("sipnet: no such stream transport (tcp or tls)")
	errNoTLS    = errors.New("sipnet: TLS needs Config.ClientTLS")
)

// noDial is the stream transports' dialer: its deadline has passed, so net.Dialer gives up
// before it creates a socket.
func noDial(net.Addr) net.Dialer { return net.Dialer{Deadline: time.Unix(1, 0)} }

// streamTransports are sipgo's TCP and TLS transports with noDial.
func streamTransports() sip.TransportsConfig {
	return sip.TransportsConfig{
		TCP: &sip.TransportTCP{DialerCreate: noDial},
		TLS: &sip.TransportTLS{TransportTCP: &sip.TransportTCP{DialerCreate: noDial}},
	}
}

// BuildRequest is the sipgo.ClientRequestOption for requests sent through a Stack: sipgo's own
// build (sipgo.ClientRequestBuild), except that a request over TCP or TLS is not tied to the UDP
// socket, so that it goes through the pooled connection to its destination (see Connect).
func BuildRequest(c *sipgo.Client, req *sip.Request) error {
	if err := sipgo.ClientRequestBuild(c, req); err != nil {
		return err
	}
	if sip.IsReliable(req.Transport()) {
		req.Laddr = sip.Addr{}
	}
	return nil
}

// Connect makes sure sipgo holds a connection of network ("tcp" or "tls"; "udp" needs none) to
// raddr: if it has none, one is opened through Config.Net (with a TLS handshake for "tls", using
// Config.ClientTLS) and handed to sipgo. Call it before sending a request over TCP or TLS; a
// connection the peer opened to this address counts too. Serve must have been called.
func (s *Stack) Connect(ctx context.Context, network string, raddr netip.AddrPort) error {
	network = strings.ToLower(network)
	if network == "udp" || network == "" {
		return nil
	}
	l := s.inject[network]
	if l == nil {
		return fmt.Errorf("%w: %q", errNoStream, network)
	}
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	if s.Connected(network, raddr) {
		return nil
	}
	if network == "tls" && s.clientTLS == nil {
		return errNoTLS
	}
	tcpNet := "tcp4"
	if raddr.Addr().Is6() {
		tcpNet = "tcp6"
	}
	d := s.net.CreateDialer(&net.Dialer{Timeout: 10 * time.Second})
	conn, err := d.Dial(tcpNet, raddr.String())
	if err != nil {
		return fmt.Errorf("sipnet: connect %s/%s: %w", raddr, network, err)
	}
	if network == "tls" {
		cfg := s.clientTLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = raddr.Addr().String()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return fmt.Errorf("sipnet: TLS handshake with %s: %w", raddr, err)
		}
		conn = tc
	}
	return l.hand(ctx, conn)
}

// Connected reports whether sipgo holds a connection of network ("tcp" or "tls") to raddr; a
// lost connection is no longer held.
func (s *Stack) Connected(network string, raddr netip.AddrPort) bool {
	pool := s.UA.TransportLayer().Pool(network)
	if pool == nil {
		return false
	}
	c := pool.Get(raddr.String())
	if c == nil {
		return false
	}
	_, _ = c.TryClose() // Get took a reference
	return true
}

// injectListener is a net.Listener whose connections are the ones Connect opened: sipgo serves
// it like any listener, so it reads and pools them.
type injectListener struct {
	addr   net.Addr
	conns  chan injected
	closed chan struct{}
	once   sync.Once
	last   chan struct{} // only Accept's goroutine touches it
}

type injected struct {
	conn   net.Conn
	pooled chan struct{}
}

func newInjectListener(addr net.Addr) *injectListener {
	return &injectListener{addr: addr, conns: make(chan injected), closed: make(chan struct{})}
}

// hand gives conn to sipgo and returns once sipgo has pooled it: sipgo's accept loop pools a
// connection before it accepts the next one.
func (l *injectListener) hand(ctx context.Context, conn net.Conn) error {
	in := injected{conn: conn, pooled: make(chan struct{})}
	select {
	case l.conns <- in:
	case <-l.closed:
		_ = conn.Close()
		return ErrClosed
	case <-ctx.Done():
		_ = conn.Close()
		return ctx.Err()
	}
	select {
	case <-in.pooled:
		return nil
	case <-l.closed:
		return ErrClosed
	}
}

func (l *injectListener) Accept() (net.Conn, error) {
	if l.last != nil {
		close(l.last)
		l.last = nil
	}
	select {
	case in := <-l.conns:
		l.last = in.pooled
		return in.conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *injectListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *injectListener) Addr() net.Addr { return l.addr }
