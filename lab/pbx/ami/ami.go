// Package ami is a small client of the Asterisk Manager Interface (AMI, TCP, "Key: Value" lines,
// a blank line ends a message), enough for the lab: log in, run actions, collect the events of
// list actions (PJSIPShowContacts, CoreShowChannels...), and the typed helpers the lab's
// Asterisk backend uses (Contacts, Channels, Hangup, Command).
//
// The client logs in with "Events: off", so Asterisk sends no unsolicited events: only the
// responses to its actions and the events of its list actions, matched by ActionID. Actions may
// run concurrently. Close ends the connection and the one goroutine the client runs.
package ami

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrClosed is returned by actions on a closed client, or when the connection drops.
	ErrClosed = errors.New("ami: connection closed")
	// ErrProtocol is a message the client cannot read as AMI.
	ErrProtocol = errors.New("ami: protocol error")
)

// Error is an action Asterisk answered with "Response: Error".
type Error struct {
	Action  string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("ami: %s: %s", e.Action, e.Message) }

// Message is one AMI message: its fields in order. A key may repeat (a Command's Output lines).
type Message struct {
	Keys, Values []string
}

// Get returns the first value of key (keys compare without case), or "".
func (m Message) Get(key string) string {
	for i, k := range m.Keys {
		if strings.EqualFold(k, key) {
			return m.Values[i]
		}
	}
	return ""
}

// All returns every value of key, in order.
func (m Message) All(key string) []string {
	var out []string
	for i, k := range m.Keys {
		if strings.EqualFold(k, key) {
			out = append(out, m.Values[i])
		}
	}
	return out
}

// Map returns the fields as a map (the first value of each key, keys as written).
func (m Message) Map() map[string]string {
	out := make(map[string]string, len(m.Keys))
	for i, k := range m.Keys {
		if _, ok := out[k]; !ok {
			out[k] = m.Values[i]
		}
	}
	return out
}

func (m *Message) add(k, v string) {
	m.Keys = append(m.Keys, k)
	m.Values = append(m.Values, v)
}

// Response is the answer to one action: the response message and, for a list action, the events
// it produced (without the final "...Complete" event, which is Complete).
type Response struct {
	Message
	Events   []Message
	Complete Message
}

// Client is a logged-in AMI connection.
type Client struct {
	conn   net.Conn
	banner string
	nextID atomic.Uint64

	wmu sync.Mutex // one action written at a time

	mu      sync.Mutex
	pending map[string]*pending
	err     error // set when the reader stops
	done    chan struct{}
}

type pending struct {
	res  *Response
	list bool
	ch   chan struct{} // closed when complete
}

// Dial connects to addr (host:port), reads the banner and logs in as user with secret.
func Dial(ctx context.Context, addr, user, secret string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ami: dial %s: %w", addr, err)
	}
	c, err := NewClient(ctx, conn, user, secret)
	if err != nil {
		return nil, fmt.Errorf("ami: %s: %w", addr, err)
	}
	return c, nil
}

// NewClient logs in over conn (already connected; the banner not read yet). It closes conn when
// it fails.
func NewClient(ctx context.Context, conn net.Conn, user, secret string) (*Client, error) {
	c := &Client{conn: conn, pending: map[string]*pending{}, done: make(chan struct{})}
	br := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	banner, err := br.ReadString('\n')
	stop()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading the banner: %w", ctx.Err())
		}
		return nil, fmt.Errorf("reading the banner: %w", err)
	}
	c.banner = strings.TrimRight(banner, "\r\n")
	if !strings.Contains(c.banner, "Call Manager") {
		conn.Close()
		return nil, fmt.Errorf("%w: banner %q is not Asterisk's", ErrProtocol, c.banner)
	}
	go c.read(br)
	if _, err := c.Do(ctx, "Login", "Username", user, "Secret", secret, "Events", "off"); err != nil {
		c.Close()
		return nil, fmt.Errorf("login as %q: %w", user, err)
	}
	return c, nil
}

// Banner is the greeting line ("Asterisk Call Manager/9.0.0").
func (c *Client) Banner() string { return c.banner }

// Close logs off (best effort, without waiting) and closes the connection; it waits for the
// client's goroutine.
func (c *Client) Close() error {
	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.WriteString(c.conn, "Action: Logoff\r\n\r\n")
	c.wmu.Unlock()
	err := c.conn.Close()
	<-c.done
	return err
}

// Do runs action with the given fields (key, value pairs) and waits for its response, and for a
// list action for its events up to the "...Complete" event. A "Response: Error" is an *Error.
func (c *Client) Do(ctx context.Context, action string, kv ...string) (*Response, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("ami: %s: odd number of key/value arguments", action)
	}
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	var b strings.Builder
	fmt.Fprintf(&b, "Action: %s\r\nActionID: %s\r\n", action, id)
	for i := 0; i < len(kv); i += 2 {
		if strings.ContainsAny(kv[i]+kv[i+1], "\r\n") {
			return nil, fmt.Errorf("ami: %s: field %q has a line break", action, kv[i])
		}
		fmt.Fprintf(&b, "%s: %s\r\n", kv[i], kv[i+1])
	}
	b.WriteString("\r\n")

	p := &pending{res: &Response{}, ch: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(dl)
	} else {
		_ = c.conn.SetWriteDeadline(time.Time{})
	}
	_, err := io.WriteString(c.conn, b.String())
	c.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ami: %s: %w", action, err)
	}
	select {
	case <-p.ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("ami: %s: %w", action, ctx.Err())
	case <-c.done:
		select {
		case <-p.ch: // answered before the connection ended
		default:
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return nil, fmt.Errorf("ami: %s: %w", action, err)
		}
	}
	if strings.EqualFold(p.res.Get("Response"), "Error") {
		return p.res, &Error{Action: action, Message: p.res.Get("Message")}
	}
	return p.res, nil
}

// read is the client's goroutine: it reads messages and hands them to the waiting actions.
func (c *Client) read(br *bufio.Reader) {
	defer close(c.done)
	for {
		m, err := readMessage(br)
		if err != nil {
			c.mu.Lock()
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				c.err = ErrClosed
			} else {
				c.err = fmt.Errorf("%w: %w", ErrClosed, err)
			}
			c.mu.Unlock()
			return
		}
		c.dispatch(m)
	}
}

func (c *Client) dispatch(m Message) {
	id := m.Get("ActionID")
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[id]
	if p == nil {
		return // an unsolicited event, or the late answer of an abandoned action
	}
	select {
	case <-p.ch:
		return // already complete
	default:
	}
	if m.Get("Response") != "" && len(p.res.Keys) == 0 {
		p.res.Message = m
		if strings.EqualFold(m.Get("EventList"), "start") ||
			strings.Contains(strings.ToLower(m.Get("Message")), "will follow") {
			p.list = true
			return
		}
		close(p.ch)
		return
	}
	if m.Get("Event") != "" && p.list {
		if strings.EqualFold(m.Get("EventList"), "Complete") || strings.HasSuffix(m.Get("Event"), "Complete") {
			p.res.Complete = m
			close(p.ch)
			return
		}
		p.res.Events = append(p.res.Events, m)
	}
}

// readMessage reads lines up to a blank line. A line without ": " is kept with an empty key.
func readMessage(br *bufio.Reader) (Message, error) {
	var m Message
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return m, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(m.Keys) == 0 {
				continue // stray blank line
			}
			return m, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			m.add("", line)
			continue
		}
		m.add(strings.TrimSpace(k), strings.TrimPrefix(v, " "))
	}
}
