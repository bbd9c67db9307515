package sipphone

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/gateway/sipua"
)

// TestCallInVirtualTime runs a 10 s call on vnet inside a synctest bubble, the lab's default
// clock: it takes milliseconds, and synctest fails the test if any goroutine outlives Close.
func TestCallInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := newTestNetwork(t, "vnet")
		rel := func(c *Config) { c.Support100rel = true }
		a := newPhone(t, n, "alice", rel)
		b := newPhone(t, n, "bob", rel, AutoAnswer(2*time.Second))
		n.start(t)
		startPhones(t, ctx, a, b)

		start := time.Now()
		ca, err := a.Call(ctx, b.Contact().String())
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if setup := time.Since(start); setup < 2*time.Second || setup > 3*time.Second {
			t.Errorf("call set up in %v, want the 2 s ring delay", setup)
		}
		if len(ca.PRACKs()) != 1 {
			t.Errorf("%d PRACKs, want 1", len(ca.PRACKs()))
		}
		calls := b.Calls()
		if len(calls) != 1 {
			t.Fatalf("callee has %d calls", len(calls))
		}
		cb := calls[0]

		time.Sleep(10 * time.Second)
		if err := ca.Hangup(ctx); err != nil {
			t.Fatalf("hangup: %v", err)
		}
		<-cb.Done()
		for name, c := range map[string]*Call{"caller": ca, "callee": cb} {
			s := c.Media().Stats()
			// 10 s of 20 ms frames, give or take the frames in flight around answer and BYE.
			if s.PacketsReceived < 495 || s.PacketsReceived > 505 || s.Lost != 0 || s.Duplicates != 0 {
				t.Errorf("%s: received %d packets, lost %d, duplicates %d; want about 500, none lost",
					name, s.PacketsReceived, s.Lost, s.Duplicates)
			}
			if s.Jitter > time.Millisecond {
				t.Errorf("%s: jitter %v on an unimpaired virtual network", name, s.Jitter)
			}
			// A report every 5 s each way (the callee's clock starts at the answer); the peer's
			// last one says nothing was lost and echoes our sender report.
			if s.RTCPSent < 1 || s.RTCPReceived < 1 || s.PeerReports < 1 {
				t.Errorf("%s: RTCP sent %d, received %d, peer reports %d", name, s.RTCPSent, s.RTCPReceived, s.PeerReports)
			}
			if r := s.PeerReport; r.TotalLost != 0 || r.FractionLost != 0 || r.LastSenderReport == 0 {
				t.Errorf("%s: peer report %+v", name, r)
			}
		}
		for _, p := range []*Phone{a, b} {
			if err := p.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
		n.stop()
	})
}

// TestCloseEndsCallsAndPendingInvites closes a phone with one call up and one ringing: the call
// gets a BYE, the ringing one a 480, and every goroutine ends.
func TestCloseEndsCallsAndPendingInvites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := newTestNetwork(t, "vnet")
		a := newPhone(t, n, "alice", nil)
		b := newPhone(t, n, "bob", nil)
		n.start(t)
		defer n.stop()
		startPhones(t, ctx, a, b)

		ringing := make(chan struct{})
		first := true
		b.OnIncoming(func(in *Incoming) {
			if first {
				first = false
				if _, err := in.Answer(); err != nil {
					t.Errorf("answer: %v", err)
				}
				return
			}
			_ = in.Ring()
			close(ringing) // and never answer
		})
		up, err := a.Call(ctx, b.Contact().String())
		if err != nil {
			t.Fatal(err)
		}
		pending := make(chan error, 1)
		go func() {
			_, err := a.Call(ctx, b.Contact().String())
			pending <- err
		}()
		<-ringing
		time.Sleep(3 * time.Second)

		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		<-up.Done()
		var se *StatusError
		if err := <-pending; !errors.As(err, &se) || se.Code != sip.StatusTemporarilyUnavailable {
			t.Errorf("pending call: %v, want StatusError 480", err)
		}
		if len(b.Calls()) != 0 || len(a.Calls()) != 0 {
			t.Errorf("calls left: %d, %d", len(a.Calls()), len(b.Calls()))
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReliableRingingGivesUpWithoutPRACK plays a caller (plain sipgo) that requires 100rel but
// never PRACKs: the 180 is retransmitted at T1, 2*T1, ... and the call is rejected with 504 after
// 64*T1 (RFC 3262 3).
func TestReliableRingingGivesUpWithoutPRACK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		n := newTestNetwork(t, "vnet")
		b := newPhone(t, n, "bob", func(c *Config) { c.Support100rel = true })
		uacNet, uacIP := n.host(t)
		n.start(t)
		defer n.stop()
		startPhones(t, ctx, b)
		ringErr := make(chan error, 1)
		b.OnIncoming(func(in *Incoming) { ringErr <- in.Ring() })

		// The caller: sipgo over vnet, its client sending from the socket its server reads.
		uac := serveSIP(t, uacNet, netip.AddrPortFrom(uacIP, 5060), nil)

		req := sip.NewRequest(sip.INVITE, *b.Contact())
		req.AppendHeader(sip.NewHeader("Require", "100rel"))
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{User: "raw", Host: uacIP.String(), Port: 5060}})
		tx, err := uac.Client.TransactionRequest(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var rings []time.Duration
		var firstRSeq uint32
		var final *sip.Response
		for final == nil {
			select {
			case res := <-tx.Responses():
				switch {
				case res.StatusCode == sip.StatusRinging:
					// Retransmissions repeat the same RSeq.
					rseq, ok := sipua.HeaderUint(res, "RSeq")
					if len(rings) == 0 {
						firstRSeq = rseq
					}
					if !ok || rseq != firstRSeq || !sipua.HasOption(res, "Require", "100rel") {
						t.Errorf("180 #%d not the same reliable response: %s", len(rings), res.String())
					}
					rings = append(rings, time.Since(start))
				case !res.IsProvisional():
					final = res
				}
			case <-tx.Done():
				t.Fatalf("INVITE transaction ended: %v", tx.Err())
			}
		}
		tx.Terminate()
		want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond,
			7500 * time.Millisecond, 15500 * time.Millisecond, 31500 * time.Millisecond}
		if fmt.Sprint(rings) != fmt.Sprint(want) {
			t.Errorf("180 sent at %v, want %v", rings, want)
		}
		if final.StatusCode != sip.StatusGatewayTimeout || time.Since(start) != 32*time.Second {
			t.Errorf("final %d after %v, want 504 after 64*T1", final.StatusCode, time.Since(start))
		}
		if err := <-ringErr; !errors.Is(err, ErrPRACKTimeout) {
			t.Errorf("Ring: %v", err)
		}

		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := uac.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRegistrationIsRefreshed lets virtual time run past half the granted expiry: the phone
// registers again on its own, and stops after Unregister.
func TestRegistrationIsRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		n := newTestNetwork(t, "vnet")
		regNet, regIP := n.host(t)
		reg := startRegistrar(t, regNet, regIP, map[string]string{"1000": "secret"})
		p := newPhone(t, n, "1000", func(c *Config) { c.Password, c.Registrar = "secret", reg.addr })
		n.start(t)
		defer n.stop()
		startPhones(t, ctx, p)

		if _, err := p.Register(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		requests := func() int {
			reg.mu.Lock()
			defer reg.mu.Unlock()
			return reg.requests
		}
		if got := requests(); got != 2 {
			t.Fatalf("%d REGISTERs for one registration, want 2 (challenge, answer)", got)
		}
		time.Sleep(59 * time.Second)
		if got := requests(); got != 2 {
			t.Errorf("refreshed before half the expiry: %d REGISTERs", got)
		}
		time.Sleep(2 * time.Second)
		if got := requests(); got != 4 {
			t.Errorf("%d REGISTERs after 61 s, want a refresh at 60 s", got)
		}
		if err := p.Unregister(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Minute)
		if got := requests(); got != 6 {
			t.Errorf("%d REGISTERs, want none after the Unregister", got)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
