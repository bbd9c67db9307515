package webclient

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/lab/netem"
)

// TestAudioRTXRepairedBothWays: a client WithAudioRTX, against a gateway side that sends audio
// RTX (rtc.Config.SendAudioRTX, descriptions through rtc.Peer.LocalDescription), over a link
// losing 3% each way: the lost audio is repaired over RTX in both directions, in the client's
// packet logs (RepairRTX, never RepairNACK) and in the gateway side's counters.
func TestAudioRTXRepairedBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e := netemEnv(t, 20*time.Millisecond)
		e.side.rtcCfg.SendAudioRTX = true
		host, _ := e.netem.Host("client")
		lossy := netem.LinkConfig{Delay: netem.DelayModel{Base: 20 * time.Millisecond}, Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.03}}
		must(t, host.Up.Set(lossy))
		must(t, host.Down.Set(lossy))
		cl := e.connected(t, ctx, "alice", nil, WithAudioRTX(), WithNACK(50*time.Millisecond, 5))
		c, err := cl.Call(ctx, "1001")
		must(t, err)
		_, err = c.WaitState(ctx, string(signaling.LocalAcceptedByRemote))
		must(t, err)
		must(t, c.WaitConnected(ctx))
		time.Sleep(15 * time.Second)

		sent, received := c.Packets()
		count := func(recs []PacketRecord, repaired string) (n int) {
			for _, r := range recs {
				if r.Kind == "audio" && r.Repaired == repaired {
					n++
				}
			}
			return n
		}
		st := c.Stats()
		side := e.side.call(c.ID())
		if side == nil {
			t.Fatal("no gateway-side call")
		}
		rs := side.pc.Repair.Snapshot()
		t.Logf("client received audio rtx %d nack %d, sent rtx %d nack %d; stats %+v; gateway side %+v",
			count(received, RepairRTX), count(received, RepairNACK), count(sent, RepairRTX), count(sent, RepairNACK), st.Audio, rs)
		if count(received, RepairRTX) == 0 || count(received, RepairNACK) != 0 || st.Audio.RTXRepaired == 0 {
			t.Error("gateway -> client: audio not repaired over RTX")
		}
		if count(sent, RepairRTX) == 0 || count(sent, RepairNACK) != 0 {
			t.Error("client -> gateway: audio not resent over RTX")
		}
		if rs.RTXReceived == 0 || rs.RTXSent == 0 || rs.RTXSent != rs.Retransmissions {
			t.Errorf("gateway side counters %+v", rs)
		}
		if st.Audio.Lost > 3 {
			t.Errorf("audio lost after repair: %d", st.Audio.Lost)
		}
	})
}
