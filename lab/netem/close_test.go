package netem_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
)

// TestCloseEndsEverything: Close with datagrams queued and delayed, readers blocked on UDP
// sockets, an Accept and stream Reads waiting, ends every goroutine (synctest fails the test if
// one is left) and unblocks the users' goroutines with net.ErrClosed.
func TestCloseEndsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := netem.New("", netem.WithSeed(3))
		must(t, err)
		a, _ := nw.AddHost("a", "")
		b, _ := nw.AddHost("b", "")
		must(t, a.Up.Set(netem.LinkConfig{
			Capacity: netem.CapacityModel{Rate: 100_000},
			Delay:    netem.DelayModel{Base: time.Second, Jitter: netem.JitterUniform, Mean: 100 * time.Millisecond},
			Schedule: []netem.Phase{{At: time.Hour, Loss: &netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.5}}},
		}))
		must(t, nw.Start())

		var wg sync.WaitGroup
		errs := make(chan error, 10)
		tx, err := a.Net.ListenPacket("udp4", ":0")
		must(t, err)
		rx, err := b.Net.ListenPacket("udp4", ":6000")
		must(t, err)
		wg.Go(func() {
			_, _, err := rx.ReadFrom(make([]byte, 100))
			errs <- err
		})
		for range 50 {
			_, _ = tx.WriteTo(make([]byte, 1000), rx.LocalAddr()) // queued behind a 100 kbit/s link
		}

		ln, err := b.Stream.Listen("tcp", ":80")
		must(t, err)
		ln2, err := b.Stream.Listen("tcp", ":81")
		must(t, err)
		accepted := make(chan net.Conn, 1)
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			accepted <- c
			_, err = c.Read(make([]byte, 10))
			errs <- err
		})
		wg.Go(func() {
			_, err := ln2.Accept()
			errs <- err
		})
		c, err := a.Stream.DialContext(context.Background(), "tcp", b.IP.String()+":80")
		must(t, err)
		wg.Go(func() {
			_, err := c.Read(make([]byte, 10))
			errs <- err
		})
		<-accepted
		_, _ = c.Write([]byte("in flight"))
		time.Sleep(100 * time.Millisecond)

		must(t, nw.Close())
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			n++
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("a blocked call ended with %v, want net.ErrClosed", err)
			}
		}
		if n != 4 {
			t.Errorf("%d blocked calls returned, want 4", n)
		}
		must(t, nw.Close()) // idempotent
		if err := tx.Close(); err != nil {
			t.Errorf("closing a socket the network closed: %v", err)
		}
		if err := tx.Close(); err != nil {
			t.Errorf("closing it again: %v", err)
		}
		if _, err := tx.WriteTo([]byte("x"), rx.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write on a closed socket: %v", err)
		}
		if st := a.Up.Stats(); st.OfferedPackets != 50 || st.DeliveredPackets >= 50 {
			t.Errorf("a/up stats after close: %+v", st)
		}
		// synctest.Test now checks that no goroutine is left.
	})
}

// TestUDPSocketQuirksFixed: the host's sockets behave like the OS's where vnet's do not.
func TestUDPSocketQuirksFixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := netem.New("")
		must(t, err)
		a, _ := nw.AddHost("a", "")
		must(t, nw.Start())
		defer nw.Close()
		c, err := a.Net.ListenPacket("udp4", a.IP.String()+":0")
		must(t, err)
		c2, err := a.Net.ListenPacket("udp4", a.IP.String()+":0")
		must(t, err)
		if p1, p2 := c.LocalAddr().(*net.UDPAddr).Port, c2.LocalAddr().(*net.UDPAddr).Port; p1 != 49152 || p2 != 49153 {
			t.Errorf("port 0 gave %d and %d, want 49152 and 49153", p1, p2)
		}
		if _, err := a.Net.ListenPacket("udp4", c.LocalAddr().String()); err == nil {
			t.Error("a second socket on the same port")
		}
		must(t, c.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
		for i := range 2 {
			if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
				t.Errorf("read %d past the deadline: %v, want a timeout", i, err)
			}
		}
		done := make(chan error)
		must(t, c.SetReadDeadline(time.Time{}))
		go func() {
			_, _, err := c.ReadFrom(make([]byte, 10))
			done <- err
		}()
		time.Sleep(time.Millisecond)
		must(t, c.Close())
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("read on a closed socket: %v, want net.ErrClosed", err)
		}
		must(t, c2.Close())
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestRealTime: the same network runs on the wall clock outside a bubble. The bounds are loose:
// a busy machine delays timers, never advances them.
func TestRealTime(t *testing.T) {
	const delay = 20 * time.Millisecond
	f := newFlow(t, func(a, _ *netem.Host) {
		must(t, a.Up.Set(netem.LinkConfig{Delay: netem.DelayModel{Base: delay}}))
	})
	f.sendEvery(20, 100, 1, 5*time.Millisecond)
	got := f.close(200 * time.Millisecond)
	if len(got) != 20 {
		t.Fatalf("%d of 20 arrived", len(got))
	}
	for _, r := range got {
		if r.delay() < delay || r.delay() > delay+150*time.Millisecond {
			t.Errorf("packet %d took %v in real time, want about %v", r.seq, r.delay(), delay)
		}
	}
}
