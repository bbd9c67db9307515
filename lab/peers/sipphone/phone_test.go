package sipphone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/gateway/sipua"
)

var networks = []string{"loopback", "vnet"}

// answerInto is an OnIncoming handler that rings, answers and hands the call over.
func answerInto(t testing.TB, calls chan<- *Call, invites chan<- *Incoming) func(*Incoming) {
	return func(in *Incoming) {
		if invites != nil {
			invites <- in
		}
		if err := in.Ring(); err != nil {
			t.Errorf("ring: %v", err)
			return
		}
		c, err := in.Answer()
		if err != nil {
			t.Errorf("answer: %v", err)
			return
		}
		calls <- c
	}
}

func TestCallCarriesAudioBothWaysAndByeEndsIt(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			a := newPhone(t, n, "alice", func(c *Config) { c.DisplayName = "Alice" })
			b := newPhone(t, n, "bob", nil, ToneFrequency(1000))
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, a, b)

			answered := make(chan *Call, 1)
			invites := make(chan *Incoming, 1)
			b.OnIncoming(answerInto(t, answered, invites))

			ca, err := a.Call(ctx, b.Contact().String(), WithHeader("X-Number", "<sip:1001@lab>"))
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			cb := <-answered
			in := <-invites

			// What B saw of A's INVITE: the real contact, rport asked, our header.
			inv := in.Request()
			if got, want := inv.Contact().Address.HostPort(), a.Addr().String(); got != want {
				t.Errorf("Contact %s, want %s", got, want)
			}
			if !inv.Via().Params.Has("rport") {
				t.Errorf("Via without rport: %s", inv.Via().Value())
			}
			if h := inv.GetHeader("X-Number"); h == nil || h.Value() != "<sip:1001@lab>" {
				t.Errorf("X-Number = %v", h)
			}
			if ca.CallID() != cb.CallID() {
				t.Errorf("Call-ID %q vs %q", ca.CallID(), cb.CallID())
			}
			if tag, _ := ca.Answer().To().Params.Get("tag"); tag == "" {
				t.Error("2xx without To tag")
			}

			time.Sleep(time.Second)
			// Each side hears the other's tone: alice's 440 Hz at bob, bob's 1000 Hz at alice.
			for _, tc := range []struct {
				who  string
				c    *Call
				want float64
			}{{"alice", ca, 1000}, {"bob", cb, 440}} {
				if f, err := tc.c.Media().ToneFrequency(); err != nil || math.Abs(f-tc.want) > 5 {
					t.Errorf("%s hears %.1f Hz (%v), want %v", tc.who, f, err, tc.want)
				}
			}
			if err := ca.Hangup(ctx); err != nil {
				t.Fatalf("hangup: %v", err)
			}
			waitClosed(t, "caller's call", ca.Done(), time.Second)
			waitClosed(t, "callee's call", cb.Done(), 5*time.Second)

			for name, c := range map[string]*Call{"caller": ca, "callee": cb} {
				s := c.Media().Stats()
				t.Logf("%s: %+v", name, s)
				if s.Codec != "PCMU" {
					t.Errorf("%s: codec %q, want PCMU (first common)", name, s.Codec)
				}
				if s.PacketsReceived < 35 || s.PacketsSent < 35 {
					t.Errorf("%s: sent %d, received %d packets in 1 s, want about 50", name, s.PacketsSent, s.PacketsReceived)
				}
				if s.Lost != 0 || s.Duplicates != 0 || s.Invalid != 0 {
					t.Errorf("%s: lost %d, duplicates %d, invalid %d", name, s.Lost, s.Duplicates, s.Invalid)
				}
				checkStream(t, name, c.Media().Received())
			}
			if len(a.Calls())+len(b.Calls()) != 0 {
				t.Errorf("calls left after BYE: %d and %d", len(a.Calls()), len(b.Calls()))
			}
			for _, p := range []*Phone{a, b} {
				if err := p.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}
		})
	}
}

// checkStream asserts one stream of 20 ms G.711 frames: marker on the first, sequence numbers
// consecutive, timestamps 160 apart.
func checkStream(t *testing.T, name string, recs []PacketRecord) {
	t.Helper()
	if len(recs) == 0 {
		t.Errorf("%s: no packets recorded", name)
		return
	}
	if !recs[0].Marker {
		t.Errorf("%s: first packet without marker", name)
	}
	for i := 1; i < len(recs); i++ {
		prev, cur := recs[i-1], recs[i]
		if cur.SSRC != prev.SSRC || cur.Seq != prev.Seq+1 || cur.Timestamp != prev.Timestamp+frameSamples || cur.Marker {
			t.Errorf("%s: packet %d: ssrc %x seq %d ts %d marker %v after ssrc %x seq %d ts %d",
				name, i, cur.SSRC, cur.Seq, cur.Timestamp, cur.Marker, prev.SSRC, prev.Seq, prev.Timestamp)
			return
		}
		if cur.PayloadType != 0 || cur.PayloadSize != frameSamples {
			t.Errorf("%s: packet %d: payload type %d, %d bytes", name, i, cur.PayloadType, cur.PayloadSize)
			return
		}
	}
}

func TestRejectGivesStatusError(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			a := newPhone(t, n, "alice", nil)
			b := newPhone(t, n, "bob", nil)
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, a, b)
			b.OnIncoming(func(in *Incoming) {
				if err := in.Reject(sip.StatusBusyHere, "Busy Here"); err != nil {
					t.Errorf("reject: %v", err)
				}
			})

			_, err := a.Call(ctx, b.Contact().String())
			var se *StatusError
			if !errors.As(err, &se) || se.Code != sip.StatusBusyHere {
				t.Fatalf("call error %v, want a StatusError 486", err)
			}
			if len(a.Calls()) != 0 || len(b.Calls()) != 0 {
				t.Error("a rejected call left calls behind")
			}
		})
	}
}

func TestCancelBeforeAnswer(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			a := newPhone(t, n, "alice", nil)
			b := newPhone(t, n, "bob", nil)
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, a, b)

			cancelled := make(chan error, 1)
			b.OnIncoming(func(in *Incoming) {
				if err := in.Ring(); err != nil {
					t.Errorf("ring: %v", err)
				}
				go func() {
					select {
					case <-in.Cancelled():
						_, err := in.Answer()
						cancelled <- err
					case <-time.After(5 * time.Second):
						cancelled <- errors.New("never cancelled")
					}
				}()
			})

			callCtx, hangUp := context.WithCancel(ctx)
			defer hangUp()
			_, err := a.Call(callCtx, b.Contact().String(), WithProvisionalHandler(func(res *sip.Response) {
				if res.StatusCode == sip.StatusRinging {
					hangUp()
				}
			}))
			var se *StatusError
			if !errors.As(err, &se) || se.Code != sip.StatusRequestTerminated || !errors.Is(err, context.Canceled) {
				t.Fatalf("call error %v, want StatusError 487 and context.Canceled", err)
			}
			if err := <-cancelled; !errors.Is(err, ErrCanceled) {
				t.Errorf("callee: Answer after CANCEL = %v, want ErrCanceled", err)
			}
		})
	}
}

func TestReliableProvisionalIsPRACKed(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			rel := func(c *Config) { c.Support100rel = true }
			a := newPhone(t, n, "alice", rel)
			b := newPhone(t, n, "bob", rel)
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, a, b)

			answered := make(chan *Call, 1)
			invites := make(chan *Incoming, 1)
			b.OnIncoming(answerInto(t, answered, invites))

			var ringing []*sip.Response
			ca, err := a.Call(ctx, b.Contact().String(), WithProvisionalHandler(func(res *sip.Response) {
				if res.StatusCode == sip.StatusRinging {
					ringing = append(ringing, res)
				}
			}))
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			cb := <-answered
			in := <-invites

			if !sipua.HasOption(in.Request(), "Supported", "100rel") || !in.Reliable() {
				t.Errorf("INVITE Supported %v, reliable %v", in.Request().GetHeader("Supported"), in.Reliable())
			}
			if len(ringing) != 1 {
				t.Fatalf("%d 180s seen, want 1", len(ringing))
			}
			rseq, ok := sipua.HeaderUint(ringing[0], "RSeq")
			if !sipua.HasOption(ringing[0], "Require", "100rel") || !ok {
				t.Fatalf("180 not reliable: %s", ringing[0].String())
			}
			pracks := in.PRACKs()
			if len(pracks) != 1 {
				t.Fatalf("callee got %d PRACKs, want 1", len(pracks))
			}
			want := fmt.Sprintf("%d %d INVITE", rseq, ca.Invite().CSeq().SeqNo)
			if got := pracks[0].GetHeader("RAck").Value(); got != want {
				t.Errorf("RAck %q, want %q", got, want)
			}
			if got := pracks[0].CSeq().SeqNo; got != ca.Invite().CSeq().SeqNo+1 {
				t.Errorf("PRACK CSeq %d, want INVITE's + 1", got)
			}
			answers := ca.PRACKs()
			if len(answers) != 1 || answers[0].StatusCode != sip.StatusOK {
				t.Fatalf("PRACK answers %v, want one 200", answers)
			}

			if err := cb.Hangup(ctx); err != nil {
				t.Fatalf("callee hangup: %v", err)
			}
			waitClosed(t, "caller's call", ca.Done(), 5*time.Second)
		})
	}
}

func TestNegotiation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := newTestNetwork(t, "loopback")
	a := newPhone(t, n, "alice", func(c *Config) { c.Codecs = []string{"PCMA", "PCMU"} })
	b := newPhone(t, n, "bob", func(c *Config) { c.Codecs = []string{"PCMU", "PCMA"} })
	c := newPhone(t, n, "carol", func(c *Config) { c.Codecs = []string{"PCMU"} })
	startPhones(t, ctx, a, b, c)

	// The answerer keeps the offerer's preference.
	ca, err := a.Call(ctx, b.Contact().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Media().Stats().Codec; got != "PCMA" {
		t.Errorf("codec %s, want PCMA", got)
	}
	if !strings.Contains(string(ca.RemoteSDP()), "PCMA/8000") || strings.Contains(string(ca.RemoteSDP()), "PCMU") {
		t.Errorf("answer lists other codecs than the chosen one:\n%s", ca.RemoteSDP())
	}
	if err := ca.Hangup(ctx); err != nil {
		t.Fatal(err)
	}

	// No common codec: 488.
	x := newPhone(t, n, "xavier", func(c *Config) { c.Codecs = []string{"PCMA"} })
	startPhones(t, ctx, x)
	_, err = x.Call(ctx, c.Contact().String())
	var se *StatusError
	if !errors.As(err, &se) || se.Code != sip.StatusNotAcceptableHere {
		t.Fatalf("call error %v, want StatusError 488", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	n := newTestNetwork(t, "loopback")
	nw, ip := n.host(t)
	for name, cfg := range map[string]Config{
		"no net":      {LocalIP: ip},
		"no ip":       {Net: nw},
		"bad codec":   {Net: nw, LocalIP: ip, Codecs: []string{"G729"}},
		"bad rtp":     {Net: nw, LocalIP: ip, RTPPortMin: 30000, RTPPortMax: 20000},
		"bad sipport": {Net: nw, LocalIP: ip, SIPPort: 70000},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	p, err := New(Config{Net: nw, LocalIP: ip})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Call(context.Background(), "1001"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("call before start: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v", err)
	}
}

func TestOptionsIsAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := newTestNetwork(t, "loopback")
	a := newPhone(t, n, "alice", nil)
	b := newPhone(t, n, "bob", func(c *Config) { c.Support100rel = true })
	startPhones(t, ctx, a, b)
	res, err := a.Options(ctx, b.Contact().String())
	if err != nil {
		t.Fatal(err)
	}
	if allow := res.GetHeader("Allow"); allow == nil || !strings.Contains(allow.Value(), "PRACK") {
		t.Errorf("Allow %v", allow)
	}
	if !sipua.HasOption(res, "Supported", "100rel") {
		t.Error("no Supported: 100rel")
	}
}
