package netem_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

// streamPair starts a network of hosts a and b, with each direction's base delay set by delays
// (a/up, a/down, b/up, b/down) and extra configuration by tune.
func streamPair(t *testing.T, delays [4]time.Duration, tune func(a, b *netem.Host)) (*netem.Network, *netem.Host, *netem.Host) {
	t.Helper()
	nw, err := netem.New("")
	must(t, err)
	a, _ := nw.AddHost("a", "")
	b, _ := nw.AddHost("b", "")
	for i, d := range []*netem.Direction{a.Up, a.Down, b.Up, b.Down} {
		must(t, d.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: delays[i]}}))
	}
	if tune != nil {
		tune(a, b)
	}
	must(t, nw.Start())
	return nw, a, b
}

// TestStreamRTT: connecting takes one round trip, a byte takes the path's one-way delay, and an
// echo takes twice that.
func TestStreamRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 40 * time.Millisecond // a/up 25 + b/down 15, and b/up 10 + a/down 30
		nw, a, b := streamPair(t, [4]time.Duration{25 * time.Millisecond, 30 * time.Millisecond, 10 * time.Millisecond, 15 * time.Millisecond}, nil)
		defer nw.Close()
		ln, err := b.Stream.Listen("tcp", b.IP.String()+":8080")
		must(t, err)
		var wg sync.WaitGroup
		accepted := make(chan time.Time, 1)
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			accepted <- time.Now()
			defer c.Close()
			buf := make([]byte, 64)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				_, _ = c.Write(buf[:n])
			}
		})
		start := time.Now()
		c, err := a.Stream.DialContext(context.Background(), "tcp", "b:8080") // by host name
		must(t, err)
		dialed := time.Since(start)
		acceptedAt := <-accepted
		if dialed != 2*oneWay || acceptedAt.Sub(start) != oneWay {
			t.Errorf("dial took %v (accepted after %v), want %v (%v)", dialed, acceptedAt.Sub(start), 2*oneWay, oneWay)
		}
		if got := c.RemoteAddr().String(); got != b.IP.String()+":8080" {
			t.Errorf("remote address %s", got)
		}
		for i := range 3 {
			sent := time.Now()
			_, err := c.Write([]byte("ping"))
			must(t, err)
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			if rtt := time.Since(sent); rtt != 2*oneWay || string(buf) != "ping" {
				t.Errorf("echo %d: %q after %v, want ping after %v", i, buf, rtt, 2*oneWay)
			}
		}
		must(t, c.Close())
		wg.Wait()
		must(t, ln.Close())
	})
}

// TestStreamHTTP: an http.Server and http.Client run over the stream link: the first request
// takes two round trips (connect, then request), the next one one.
func TestStreamHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 30 * time.Millisecond
		d := oneWay / 2
		nw, a, b := streamPair(t, [4]time.Duration{d, d, d, d}, nil)
		defer nw.Close()
		ln, err := b.Net.CreateListenConfig(&net.ListenConfig{}).Listen(context.Background(), "tcp", b.IP.String()+":80")
		must(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) })}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		tr := &http.Transport{DialContext: a.Stream.DialContext}
		client := &http.Client{Transport: tr}
		for i, want := range []time.Duration{4 * oneWay, 2 * oneWay} {
			start := time.Now()
			res, err := client.Get("http://b/")
			must(t, err)
			body, err := io.ReadAll(res.Body)
			must(t, err)
			_ = res.Body.Close()
			if took := time.Since(start); took != want || string(body) != "hello" {
				t.Errorf("request %d: %q after %v, want hello after %v", i, body, took, want)
			}
		}
		tr.CloseIdleConnections()
		must(t, srv.Close())
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
}

// message is a stream test's record: sequence number and send time.
func message(seq int) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(seq))
	binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	return b
}

type delivery struct {
	seq           int
	sentAt, gotAt time.Time
}

// streamMessages sends n messages a -> b, one every interval, and returns them as b read them.
func streamMessages(t *testing.T, a, b *netem.Host, n int, interval time.Duration) []delivery {
	t.Helper()
	ln, err := b.Stream.Listen("tcp", ":9000")
	must(t, err)
	defer ln.Close()
	var got []delivery
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 16)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				return
			}
			got = append(got, delivery{int(binary.BigEndian.Uint64(buf)), time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:]))), time.Now()})
		}
	}()
	c, err := a.Stream.DialContext(context.Background(), "tcp", b.IP.String()+":9000")
	must(t, err)
	for i := range n {
		if _, err := c.Write(message(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
	}
	must(t, c.Close())
	<-done
	return got
}

// TestStreamHeadOfLineBlocking: segments sent during an outage arrive one RTO later (200 ms:
// the RTT is 80 ms) and hold back everything sent after them; after that, the one-way delay.
func TestStreamHeadOfLineBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay, rto = 40 * time.Millisecond, 200 * time.Millisecond
		d := oneWay / 2
		nw, a, b := streamPair(t, [4]time.Duration{d, d, d, d}, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: d},
				Outages: []netem.Outage{{Start: time.Second, Duration: 50 * time.Millisecond}}}))
		})
		defer nw.Close()
		start := nw.StartTime()
		got := streamMessages(t, a, b, 200, 10*time.Millisecond)
		if len(got) != 200 {
			t.Fatalf("%d of 200 messages arrived", len(got))
		}
		outageEnd := start.Add(time.Second + 50*time.Millisecond)
		var firstLost time.Time
		for i, m := range got {
			if m.seq != i {
				t.Fatalf("message %d arrived in place %d", m.seq, i)
			}
			lat := m.gotAt.Sub(m.sentAt)
			sent := m.sentAt.Sub(start)
			switch {
			case !m.sentAt.Before(start.Add(time.Second)) && m.sentAt.Before(outageEnd):
				if firstLost.IsZero() {
					firstLost = m.sentAt
				}
				if lat != rto+oneWay {
					t.Errorf("message sent at %v in the outage took %v, want RTO+one-way %v", sent, lat, rto+oneWay)
				}
			case m.sentAt.After(outageEnd) && m.sentAt.Before(firstLost.Add(rto)):
				if m.gotAt.Before(firstLost.Add(rto + oneWay)) {
					t.Errorf("message sent at %v after the outage arrived at %v, before the retransmission: no head-of-line blocking", sent, m.gotAt.Sub(start))
				}
			case m.sentAt.After(firstLost.Add(rto + oneWay)):
				if lat != oneWay {
					t.Errorf("message sent at %v took %v, want %v", sent, lat, oneWay)
				}
			}
		}
	})
}

// TestStreamLossBacksOff: with random loss every message still arrives, in order; repeated loss
// of a segment doubles the timeout (200 ms, then 400 ms).
func TestStreamLossBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 40 * time.Millisecond
		d := oneWay / 2
		nw, a, b := streamPair(t, [4]time.Duration{d, d, d, d}, func(a, _ *netem.Host) {
			must(t, a.Up.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: d}, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.1}}))
		})
		defer nw.Close()
		got := streamMessages(t, a, b, 300, 50*time.Millisecond)
		if len(got) != 300 {
			t.Fatalf("%d of 300 messages arrived", len(got))
		}
		lat := map[time.Duration]int{}
		for i, m := range got {
			if m.seq != i {
				t.Fatalf("message %d arrived in place %d", m.seq, i)
			}
			lat[m.gotAt.Sub(m.sentAt)]++
		}
		t.Logf("latencies: %v", lat)
		// 50 ms apart, a message is held back only by a loss of its own or of the one just before.
		for _, want := range []time.Duration{oneWay, 200*time.Millisecond + oneWay, 600*time.Millisecond + oneWay} {
			if lat[want] == 0 {
				t.Errorf("no message took %v", want)
			}
		}
	})
}

func TestStreamDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 40 * time.Millisecond
		d := oneWay / 2
		nw, a, b := streamPair(t, [4]time.Duration{d, d, d, d}, nil)
		defer nw.Close()
		ln, err := b.Stream.Listen("tcp", ":7000")
		must(t, err)
		defer ln.Close()
		srvConn := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				srvConn <- c
			}
		}()
		c, err := a.Net.Dial("tcp", b.IP.String()+":7000") // the host's transport.Net dials streams too
		must(t, err)
		s := <-srvConn

		start := time.Now()
		must(t, c.SetReadDeadline(start.Add(100*time.Millisecond)))
		_, err = c.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) != 100*time.Millisecond {
			t.Errorf("read past the deadline: %v after %v, want a timeout after 100ms", err, time.Since(start))
		}
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("second read past the deadline: %v, want a timeout at once", err)
		}

		// A deadline set while a Read waits ends that Read.
		must(t, c.SetReadDeadline(time.Time{}))
		readErr := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 8))
			readErr <- err
		}()
		time.Sleep(50 * time.Millisecond)
		must(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked read after a new deadline: %v", err)
		}

		// Without a deadline the data arrives after the one-way delay.
		must(t, c.SetReadDeadline(time.Time{}))
		sent := time.Now()
		_, _ = s.Write([]byte("data"))
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "data" || time.Since(sent) != oneWay {
			t.Errorf("read %q, %v after %v", buf[:n], err, time.Since(sent))
		}

		must(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write past its deadline: %v", err)
		}

		// The peer's close reaches us as EOF after the one-way delay; our own close ends our reads.
		closed := time.Now()
		must(t, s.Close())
		if _, err := c.Read(buf); err != io.EOF || time.Since(closed) != oneWay {
			t.Errorf("read after the peer closed: %v after %v, want EOF after %v", err, time.Since(closed), oneWay)
		}
		must(t, c.Close())
		if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after close: %v, want net.ErrClosed", err)
		}
	})
}

func TestStreamErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const oneWay = 40 * time.Millisecond
		d := oneWay / 2
		nw, a, b := streamPair(t, [4]time.Duration{d, d, d, d}, nil)
		ln, err := b.Stream.Listen("tcp", b.IP.String()+":5060")
		must(t, err)
		if _, err := b.Stream.Listen("tcp", ":5060"); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("second listen on :5060: %v, want EADDRINUSE", err)
		}
		if _, err := b.Stream.Listen("tcp", a.IP.String()+":5060"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Errorf("listen on another host's address: %v, want EADDRNOTAVAIL", err)
		}
		start := time.Now()
		if _, err := a.Stream.DialContext(context.Background(), "tcp", b.IP.String()+":5061"); !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) != 2*oneWay {
			t.Errorf("dial where nobody listens: %v after %v, want ECONNREFUSED after a round trip", err, time.Since(start))
		}
		if _, err := a.Stream.DialContext(context.Background(), "tcp", "10.77.9.9:80"); !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("dial to no host: %v, want EHOSTUNREACH", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := a.Stream.DialContext(ctx, "tcp", b.IP.String()+":5060"); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("dial with a 10ms timeout: %v, want a timeout", err)
		}
		must(t, ln.Close())
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept on a closed listener: %v", err)
		}
		if ln, err := b.Stream.Listen("tcp", ":5060"); err != nil {
			t.Errorf("listen again after close: %v", err)
		} else {
			_ = ln.Close()
		}
		must(t, nw.Close())
		if _, err := a.Stream.DialContext(context.Background(), "tcp", b.IP.String()+":5060"); err == nil {
			t.Error("dial on a closed network succeeded")
		}
	})
}
