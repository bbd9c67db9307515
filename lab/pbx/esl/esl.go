// Package esl is a small client of FreeSWITCH's event socket (mod_event_socket, inbound mode):
// connect, authenticate with the password, run API commands ("api status") and read their
// replies, plus the typed helpers the lab's FreeSWITCH backend uses (Status, Registrations,
// Channels, Kill).
//
// The protocol: every message is a block of "Name: value" header lines ended by a blank line,
// followed by Content-Length bytes of body when that header is present. The server greets with
// "Content-Type: auth/request"; "auth PASSWORD" is answered by a command/reply whose Reply-Text
// starts with "+OK" or "-ERR"; "api CMD" by an api/response whose body is the command's output.
// Replies come in the order of the commands; the client subscribes to no events, and ignores
// anything else it is sent (log/data, text/disconnect-notice). Commands are serialized. Close
// ends the connection and the client's goroutine.
package esl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	// ErrClosed is returned once the connection is gone.
	ErrClosed = errors.New("esl: connection closed")
	// ErrAuth is a refused password.
	ErrAuth = errors.New("esl: authentication refused")
	// ErrProtocol is a message the client cannot read.
	ErrProtocol = errors.New("esl: protocol error")
)

// CommandError is a command FreeSWITCH answered with "-ERR ...".
type CommandError struct {
	Command, Reply string
}

func (e *CommandError) Error() string { return fmt.Sprintf("esl: %s: %s", e.Command, e.Reply) }

// Message is one event socket message.
type Message struct {
	Header textproto.MIMEHeader
	Body   []byte
}

// ContentType is the message's Content-Type.
func (m *Message) ContentType() string { return m.Header.Get("Content-Type") }

// Client is an authenticated event socket connection.
type Client struct {
	conn net.Conn

	cmu sync.Mutex // one command at a time: replies come in order

	replies chan *Message
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

// Dial connects to addr and authenticates with password.
func Dial(ctx context.Context, addr, password string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("esl: dial %s: %w", addr, err)
	}
	c, err := NewClient(ctx, conn, password)
	if err != nil {
		return nil, fmt.Errorf("esl: %s: %w", addr, err)
	}
	return c, nil
}

// NewClient authenticates over conn (connected, the greeting not read yet); it closes conn when
// it fails.
func NewClient(ctx context.Context, conn net.Conn, password string) (*Client, error) {
	c := &Client{conn: conn, replies: make(chan *Message, 16), done: make(chan struct{})}
	r := textproto.NewReader(bufio.NewReader(conn))
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	greet, err := readMessage(r)
	stop()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("reading the greeting: %w", err)
	}
	if greet.ContentType() != "auth/request" {
		conn.Close()
		return nil, fmt.Errorf("%w: greeting %q is not auth/request", ErrProtocol, greet.ContentType())
	}
	go c.read(r)
	res, err := c.send(ctx, "auth "+password)
	if err != nil {
		c.Close()
		return nil, err
	}
	if reply := res.Header.Get("Reply-Text"); !strings.HasPrefix(reply, "+OK") {
		c.Close()
		return nil, fmt.Errorf("%w: %s", ErrAuth, reply)
	}
	return c, nil
}

// Close ends the connection ("exit", best effort) and waits for the client's goroutine.
func (c *Client) Close() error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.WriteString(c.conn, "exit\n\n")
	err := c.conn.Close()
	<-c.done
	return err
}

// API runs an API command ("status", "show channels as json") and returns its output. Output
// starting with "-ERR" is a *CommandError.
func (c *Client) API(ctx context.Context, command string) (string, error) {
	res, err := c.send(ctx, "api "+command)
	if err != nil {
		return "", err
	}
	body := string(res.Body)
	if strings.HasPrefix(body, "-ERR") {
		return body, &CommandError{Command: command, Reply: strings.TrimSpace(body)}
	}
	return body, nil
}

// send writes one command and waits for its reply (command/reply or api/response).
func (c *Client) send(ctx context.Context, command string) (*Message, error) {
	if strings.ContainsAny(command, "\r\n") {
		return nil, fmt.Errorf("esl: command %q has a line break", command)
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(dl)
	} else {
		_ = c.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := io.WriteString(c.conn, command+"\n\n"); err != nil {
		return nil, fmt.Errorf("esl: %s: %w", verb(command), err)
	}
	select {
	case m := <-c.replies:
		return m, nil
	case <-ctx.Done():
		// The reply may still come: the connection is out of step now, so it is closed.
		_ = c.conn.Close()
		return nil, fmt.Errorf("esl: %s: %w", verb(command), ctx.Err())
	case <-c.done:
		select {
		case m := <-c.replies: // the last reply before the server hung up
			return m, nil
		default:
		}
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("esl: %s: %w", verb(command), err)
	}
}

// verb hides the password of an auth command in errors.
func verb(command string) string {
	if strings.HasPrefix(command, "auth ") {
		return "auth"
	}
	return command
}

func (c *Client) read(r *textproto.Reader) {
	defer close(c.done)
	for {
		m, err := readMessage(r)
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
		switch m.ContentType() {
		case "command/reply", "api/response":
			select {
			case c.replies <- m:
			default: // nobody waits (a command abandoned on timeout): drop
			}
		case "text/disconnect-notice":
			// The server is closing; the read error follows.
		}
	}
}

func readMessage(r *textproto.Reader) (*Message, error) {
	var h textproto.MIMEHeader
	for {
		var err error
		h, err = r.ReadMIMEHeader()
		if err != nil && !(errors.Is(err, io.EOF) && len(h) > 0) {
			return nil, err
		}
		if len(h) > 0 {
			break
		}
	}
	m := &Message{Header: h}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 64<<20 {
			return nil, fmt.Errorf("%w: Content-Length %q", ErrProtocol, cl)
		}
		m.Body = make([]byte, n)
		if _, err := io.ReadFull(r.R, m.Body); err != nil {
			return nil, err
		}
	}
	return m, nil
}
