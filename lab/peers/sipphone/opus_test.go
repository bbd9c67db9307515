package sipphone

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
)

// TestOpusCall: two phones that prefer Opus agree on it (opus/48000/2 with the offer's payload
// type) and send each other 20 ms silent Opus frames at 48 kHz timestamps; both per-packet logs
// show them, the sent one with video too. In virtual time.
func TestOpusCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := newTestNetwork(t, "vnet")
		opus := func(c *Config) { c.Codecs = []string{"opus", "PCMU"} }
		a := newPhone(t, n, "alice", opus, Video("VP8", 200_000, 15))
		b := newPhone(t, n, "bob", opus, Video("VP8", 200_000, 15))
		n.start(t)
		startPhones(t, ctx, a, b)
		ca, err := a.Call(ctx, b.Contact().String())
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if !strings.Contains(string(ca.LocalSDP()), "a=rtpmap:111 opus/48000/2") {
			t.Errorf("offer:\n%s", ca.LocalSDP())
		}
		time.Sleep(2 * time.Second)
		cb := b.Calls()[0]
		for name, c := range map[string]*Call{"caller": ca, "callee": cb} {
			s := c.Media().Stats()
			if s.Codec != "opus" || s.PayloadType != 111 || s.PacketsReceived < 95 || s.Lost != 0 {
				t.Errorf("%s: %+v", name, s)
			}
			if _, err := c.Media().ToneFrequency(); !errors.Is(err, ErrUndecodable) {
				t.Errorf("%s: tone of Opus: %v, want ErrUndecodable", name, err)
			}
			sent, received := c.Packets()
			var audio []SentRecord
			video := 0
			for _, r := range sent {
				switch r.Kind {
				case "audio":
					audio = append(audio, r)
				case "video":
					video++
				}
				if r.Retransmission || r.At.IsZero() || r.Size != 12+r.PayloadSize {
					t.Fatalf("%s: sent %+v", name, r)
				}
			}
			if len(audio) < 95 || video < 20 || uint64(len(audio)) != s.PacketsSent {
				t.Errorf("%s: sent log has %d audio (of %d sent) and %d video packets", name, len(audio), s.PacketsSent, video)
			}
			for i := 1; i < len(audio); i++ {
				if audio[i].Seq != audio[i-1].Seq+1 || audio[i].Timestamp-audio[i-1].Timestamp != 960 ||
					audio[i].PayloadSize != opusFrameBytes || audio[i].PayloadType != 111 {
					t.Fatalf("%s: audio %+v after %+v", name, audio[i], audio[i-1])
				}
			}
			for _, r := range received {
				if r.PayloadType != 111 || r.PayloadSize != opusFrameBytes || r.Repaired != "" {
					t.Fatalf("%s: received %+v", name, r)
				}
			}
		}
		if err := ca.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		<-cb.Done()
		for _, p := range []*Phone{a, b} {
			if err := p.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
		n.stop()
	})
}

// TestLatePacketIsRepaired: a packet that arrives after a higher sequence number is logged as a
// retransmission; a duplicate and the in-order ones are not.
func TestLatePacketIsRepaired(t *testing.T) {
	m := &Media{log: slog.New(slog.DiscardHandler), logCap: 10, sources: map[uint32]*sourceState{}}
	now := time.Unix(0, 0)
	for i, seq := range []uint16{10, 11, 13, 12, 12, 14} {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, SSRC: 7}, Payload: make([]byte, 160)}
		m.record(now.Add(time.Duration(i)*20*time.Millisecond), pkt, 172)
	}
	var got []string
	for _, r := range m.Received() {
		got = append(got, r.Repaired)
	}
	if strings.Join(got, ",") != ",,,nack,," {
		t.Errorf("repaired %q", got)
	}
	if s := m.Stats(); s.Lost != 0 || s.Duplicates != 1 || s.Reordered != 1 {
		t.Errorf("stats %+v", s)
	}
	m.logCap = 2 // the sent log is bounded as the received one
	for range 3 {
		m.logSent(SentRecord{Kind: "audio"})
	}
	if n := len(m.Sent()); n != 2 {
		t.Errorf("%d sent records, want 2", n)
	}
}
