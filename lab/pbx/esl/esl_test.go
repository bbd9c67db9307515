package esl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// fakeFreeSWITCH speaks the inbound event socket on one end of a pipe.
func fakeFreeSWITCH(conn net.Conn, password string) {
	go func() {
		defer conn.Close()
		w := bufio.NewWriter(conn)
		msg := func(ct, body string, extra ...string) {
			fmt.Fprintf(w, "Content-Type: %s\n", ct)
			for _, e := range extra {
				fmt.Fprintf(w, "%s\n", e)
			}
			if body != "" {
				fmt.Fprintf(w, "Content-Length: %d\n\n%s", len(body), body)
			} else {
				w.WriteString("\n")
			}
			w.Flush()
		}
		msg("auth/request", "")
		r := textproto.NewReader(bufio.NewReader(conn))
		for {
			line, err := r.ReadLine()
			if err != nil {
				return
			}
			if line == "" {
				continue
			}
			// A log line nobody asked for, before each reply: ignored by the client.
			msg("log/data", "2026-11-26 [INFO] something\n")
			switch {
			case strings.HasPrefix(line, "auth "):
				if strings.TrimPrefix(line, "auth ") != password {
					msg("command/reply", "", "Reply-Text: -ERR invalid")
					msg("text/disconnect-notice", "Disconnected, goodbye.\n")
					return
				}
				msg("command/reply", "", "Reply-Text: +OK accepted")
			case line == "api status":
				msg("api/response", "UP 0 years, 0 days\n1 session(s) since startup\n")
			case line == "api show channels as json":
				msg("api/response", `{"row_count":1,"rows":[{"uuid":"u1","direction":"inbound","name":"sofia/internal/1001@127.0.0.1","state":"CS_EXECUTE","cid_num":"1001","dest":"1000","callstate":"ACTIVE","call_uuid":"u1"}]}`)
			case line == "api show calls count":
				msg("api/response", "\n1 total.\n")
			case strings.HasPrefix(line, "api sofia xmlstatus"):
				msg("api/response", regXML)
			case line == "exit":
				msg("command/reply", "", "Reply-Text: +OK bye")
				return
			default:
				msg("api/response", "-ERR "+line+" Command not found!\n")
			}
		}
	}()
}

const regXML = `<?xml version="1.0" encoding="ISO-8859-1"?>
<profile>
  <registrations>
    <registration>
        <call-id>abc@siprtc</call-id>
        <user>1000@127.0.0.1</user>
        <contact>&quot;&quot; &lt;sip:1000@127.0.0.1:5070&gt;</contact>
        <agent>siprtc-sipphone</agent>
        <status>Registered(UDP)(unknown) exp(2026-11-26 01:00:00) expsecs(3599)</status>
        <ping-status>Reachable</ping-status>
        <host>lab</host>
        <network-ip>127.0.0.1</network-ip>
        <network-port>5070</network-port>
        <sip-auth-user>1000</sip-auth-user>
        <sip-auth-realm>127.0.0.1</sip-auth-realm>
    </registration>
  </registrations>
</profile>
`

func dialFake(t *testing.T, password string) (*Client, error) {
	t.Helper()
	a, b := net.Pipe()
	fakeFreeSWITCH(b, "secret")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return NewClient(ctx, a, password)
}

func TestAPI(t *testing.T) {
	c, err := dialFake(t, "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil || !strings.HasPrefix(st, "UP ") {
		t.Fatalf("status %q, %v", st, err)
	}
	chs, err := c.Channels(ctx)
	if err != nil || len(chs) != 1 || chs[0].CIDNum != "1001" || chs[0].CallState != "ACTIVE" {
		t.Fatalf("channels %+v, %v", chs, err)
	}
	n, err := c.Calls(ctx)
	if err != nil || n != 1 {
		t.Fatalf("calls %d, %v", n, err)
	}
	regs, err := c.Registrations(ctx, "internal")
	if err != nil || len(regs) != 1 || regs[0].User != "1000@127.0.0.1" || regs[0].NetworkPort != "5070" ||
		regs[0].Contact != `"" <sip:1000@127.0.0.1:5070>` {
		t.Fatalf("registrations %+v, %v", regs, err)
	}
	var ce *CommandError
	if _, err := c.API(ctx, "nonsense"); !errors.As(err, &ce) {
		t.Fatalf("unknown command: %v, want a CommandError", err)
	}
}

func TestWrongPassword(t *testing.T) {
	if _, err := dialFake(t, "wrong"); !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v, want ErrAuth without the password in it", err)
	}
}

func TestClosed(t *testing.T) {
	c, err := dialFake(t, "secret")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Status(ctx); err == nil {
		t.Fatal("command after Close succeeded")
	}
}

func TestParseEmpty(t *testing.T) {
	if chs, err := ParseChannels(`{"row_count":0}`); err != nil || len(chs) != 0 {
		t.Fatalf("%v %v", chs, err)
	}
	if regs, err := ParseRegistrations("<profile><registrations></registrations></profile>"); err != nil || len(regs) != 0 {
		t.Fatalf("%v %v", regs, err)
	}
}
