package ami

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAsterisk answers AMI actions on one end of a pipe, as Asterisk 22 does.
func fakeAsterisk(t *testing.T, conn net.Conn, secret string) {
	t.Helper()
	go func() {
		defer conn.Close()
		w := bufio.NewWriter(conn)
		send := func(lines ...string) {
			for _, l := range lines {
				w.WriteString(l + "\r\n")
			}
			w.WriteString("\r\n")
			w.Flush()
		}
		w.WriteString("Asterisk Call Manager/11.0.0\r\n")
		w.Flush()
		br := bufio.NewReader(conn)
		for {
			m, err := readMessage(br)
			if err != nil {
				return
			}
			id := "ActionID: " + m.Get("ActionID")
			// An unsolicited event before every answer: the client must ignore it.
			send("Event: FullyBooted", "Privilege: system,all", "Status: Fully Booted")
			switch m.Get("Action") {
			case "Login":
				if m.Get("Secret") != secret {
					send("Response: Error", id, "Message: Authentication failed")
					return
				}
				send("Response: Success", id, "Message: Authentication accepted")
			case "PJSIPShowContacts":
				send("Response: Success", id, "EventList: start", "Message: A listing of Contacts follows, presented as ContactList events")
				send("Event: ContactList", id, "ObjectType: contact", "ObjectName: 1000;@abc", "ViaAddr: 127.0.0.1", "ViaPort: 5070",
					"CallId: c1", "Uri: sip:1000@127.0.0.1:5070", "UserAgent: phone", "ExpirationTime: 1800000000", "Endpoint: 1000", "Status: NonQualified")
				send("Event: ContactList", id, "ObjectType: contact", "ObjectName: 1001;@def", "Uri: sip:1001@127.0.0.1:5072", "Endpoint: 1001")
				send("Event: ContactListComplete", id, "EventList: Complete", "ListItems: 2")
			case "CoreShowChannels":
				send("Response: Success", id, "EventList: start", "Message: Channels will follow")
				send("Event: CoreShowChannel", id, "Channel: PJSIP/1001-00000000", "Uniqueid: 1.0", "Linkedid: 1.0", "ChannelStateDesc: Up", "Duration: 00:01:05")
				send("Event: CoreShowChannel", id, "Channel: PJSIP/1000-00000001", "Uniqueid: 1.1", "Linkedid: 1.0", "ChannelStateDesc: Up")
				send("Event: CoreShowChannelsComplete", id, "EventList: Complete", "ListItems: 2")
			case "Command":
				send("Response: Success", id, "Message: Command output follows", "Output: line one", "Output: line two")
			case "Hangup":
				if m.Get("Channel") == "PJSIP/gone" {
					send("Response: Error", id, "Message: No such channel")
				} else {
					send("Response: Success", id, "Message: Channel Hungup")
				}
			case "Logoff":
				send("Response: Goodbye", id, "Message: Thanks for all the fish.")
				return
			default:
				send("Response: Success", id, "Ping: Pong")
			}
		}
	}()
}

func dialFake(t *testing.T, secret string) (*Client, error) {
	a, b := net.Pipe()
	fakeAsterisk(t, b, "right")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return NewClient(ctx, a, "siprtc", secret)
}

func TestLoginAndActions(t *testing.T) {
	c, err := dialFake(t, "right")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.Contains(c.Banner(), "Call Manager") {
		t.Errorf("banner %q", c.Banner())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := c.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].AOR != "1000" || cs[0].Via != "127.0.0.1:5070" || cs[0].Expires.Unix() != 1800000000 ||
		cs[0].Endpoint != "1000" || cs[1].URI != "sip:1001@127.0.0.1:5072" {
		t.Fatalf("contacts %+v", cs)
	}
	chs, err := c.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 2 || Calls(chs) != 1 || chs[0].Duration != 65*time.Second {
		t.Fatalf("channels %+v", chs)
	}
	out, err := c.Command(ctx, "core show uptime")
	if err != nil || strings.Join(out, "|") != "line one|line two" {
		t.Fatalf("command: %q, %v", out, err)
	}
	var ae *Error
	if err := c.Hangup(ctx, "PJSIP/gone", 16); !errors.As(err, &ae) || ae.Message != "No such channel" {
		t.Fatalf("hangup of a missing channel: %v", err)
	}
	if err := c.Hangup(ctx, "PJSIP/1001-00000000", 16); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentActions(t *testing.T) {
	c, err := dialFake(t, "right")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				cs, err := c.Contacts(ctx)
				if err == nil && len(cs) != 2 {
					err = fmt.Errorf("%d contacts", len(cs))
				}
				errs <- err
			} else {
				errs <- c.Ping(ctx)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestWrongSecret(t *testing.T) {
	_, err := dialFake(t, "wrong")
	var ae *Error
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("login with a wrong secret: %v", err)
	}
}

func TestClosedConnection(t *testing.T) {
	c, err := dialFake(t, "right")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("action after Close: %v, want ErrClosed", err)
	}
}

func TestNotAsterisk(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		b.Write([]byte("SSH-2.0-OpenSSH\r\n"))
		b.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := NewClient(ctx, a, "u", "s"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrProtocol", err)
	}
}
