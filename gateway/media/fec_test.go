package media

import (
	"bytes"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/netem"
)

// fecPayload is packet i of a test stream: the index in its first bytes, so that the packet
// can be told whatever the rewriting of sequence numbers and timestamps.
func fecPayload(kind byte, i int) []byte {
	n := 60
	if kind == 'v' {
		n = 400 + i%5*150
	}
	b := make([]byte, n)
	b[0], b[1], b[2] = kind, byte(i>>8), byte(i)
	for k := 3; k < n; k++ {
		b[k] = byte(i*7 + k)
	}
	return b
}

// fecIndexes checks that every packet is an intact payload of kind with payload type pt and
// returns the distinct indexes.
func fecIndexes(t *testing.T, who string, pkts []rtp.Packet, kind byte, pt uint8) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, p := range pkts {
		if len(p.Payload) < 3 {
			t.Errorf("%s: a %d-byte payload", who, len(p.Payload))
			continue
		}
		i := int(p.Payload[1])<<8 | int(p.Payload[2])
		if p.PayloadType != pt || !bytes.Equal(p.Payload, fecPayload(kind, i)) {
			t.Errorf("%s: packet %d (payload type %d) is not what was sent (want payload type %d)", who, i, p.PayloadType, pt)
			continue
		}
		out[i] = true
	}
	return out
}

// TestREDAndFlexFECReachSIP: with RED and FlexFEC on and 10% loss each way on the client's
// link, what the client sends reaches the phone as plain Opus and VP8 with the SIP side's
// payload types (never red or flexfec-03), the packets RED and FlexFEC rebuilt among them,
// and the bridge's and the repair counters show them; the phone's media reaches the client
// RED-framed and FlexFEC-protected, and the client's rtc repairs it the same way.
func TestREDAndFlexFECReachSIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		link := netem.LinkConfig{
			Loss:  netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.1},
			Delay: netem.DelayModel{Base: 20 * time.Millisecond},
		}
		c := newCall(t, callOptions{
			sip: []rtc.Codec{sipOpus, sipTE48k, sipVP8}, clientLink: link, seed: 5,
			rtc: func(cfg *rtc.Config) { cfg.RED, cfg.REDDistance, cfg.FlexFEC = true, 2, true },
		})
		if c.sel.RED.Name != "red" || c.sel.FlexFEC.Name != "flexfec-03" {
			t.Fatalf("selection: RED %v, FlexFEC %v", c.sel.RED, c.sel.FlexFEC)
		}
		audioN, videoN := 500, 1000
		if testing.Short() {
			audioN, videoN = 150, 300
		}
		send := func(n int, every time.Duration, write func(i int)) {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := range n {
				write(i)
				<-tick.C
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			send(audioN, 20*time.Millisecond, func(i int) {
				h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(100 + i), Timestamp: uint32(i * 960)}
				_ = c.clientAudio.WriteRTP(&h, fecPayload('a', i))
				c.phoneAudio.send(t, c.audio.LocalAddr(), &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 107, SSRC: 7, SequenceNumber: uint16(9000 + i), Timestamp: uint32(i * 960)},
					Payload: fecPayload('A', i),
				})
			})
		})
		wg.Go(func() {
			send(videoN, 10*time.Millisecond, func(i int) {
				h := rtp.Header{Version: 2, PayloadType: 96, Marker: i%3 == 2, SequenceNumber: uint16(65000 + i), Timestamp: uint32(i / 3 * 3000)}
				_ = c.clientVideo.WriteRTP(&h, fecPayload('v', i))
				c.phoneVideo.send(t, c.video.LocalAddr(), &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 100, Marker: i%3 == 2, SSRC: 8, SequenceNumber: uint16(i), Timestamp: uint32(i / 3 * 3000)},
					Payload: fecPayload('V', i),
				})
			})
		})
		wg.Wait()
		time.Sleep(time.Second)

		phoneAudio := fecIndexes(t, "phone audio", c.phoneAudio.packets(), 'a', 107)
		phoneVideo := fecIndexes(t, "phone video", c.phoneVideo.packets(), 'v', 100)
		clientAudio := fecIndexes(t, "client audio", c.clientPackets(webrtc.RTPCodecTypeAudio), 'A', 111)
		clientVideo := fecIndexes(t, "client video", c.clientPackets(webrtc.RTPCodecTypeVideo), 'V', 96)
		st := c.bridge.Stats()
		clientRepair := c.client.Repair.Snapshot()
		up, down := c.clientHost.Up.Stats(), c.clientHost.Down.Stats()
		t.Logf("dropped %d/%d up, %d/%d down", up.DroppedLoss, up.OfferedPackets, down.DroppedLoss, down.OfferedPackets)
		t.Logf("phone: audio %d/%d, video %d/%d; client: audio %d/%d, video %d/%d",
			len(phoneAudio), audioN, len(phoneVideo), videoN, len(clientAudio), audioN, len(clientVideo), videoN)
		t.Logf("gateway repair %+v", st.Repair)
		t.Logf("client repair %+v", clientRepair)
		t.Logf("WebRTC leg: audio %+v", st.Audio.WebRTC)
		t.Logf("WebRTC leg: video %+v", st.Video.WebRTC)
		if up.DroppedLoss == 0 || down.DroppedLoss == 0 {
			t.Fatal("the link dropped nothing: the test proves nothing")
		}
		// The last packets have nothing after them to repair them: allow a few.
		for _, n := range []struct {
			who       string
			got, want int
		}{{"phone audio", len(phoneAudio), audioN}, {"phone video", len(phoneVideo), videoN}, {"client audio", len(clientAudio), audioN}, {"client video", len(clientVideo), videoN}} {
			if n.want-n.got > 3 {
				t.Errorf("%s: %d of %d packets", n.who, n.got, n.want)
			}
		}
		r := st.Repair
		if r.REDRecovered == 0 || r.FlexFECRecovered == 0 || r.REDReceived == 0 || r.FlexFECReceived == 0 {
			t.Errorf("gateway: nothing rebuilt from the client's RED or FlexFEC: %+v", r)
		}
		if r.REDSent < uint64(audioN) || r.FlexFECSent == 0 {
			t.Errorf("gateway: sent %d RED and %d FlexFEC packets", r.REDSent, r.FlexFECSent)
		}
		if clientRepair.REDRecovered == 0 || clientRepair.FlexFECRecovered == 0 {
			t.Errorf("client: nothing rebuilt from the gateway's RED or FlexFEC: %+v", clientRepair)
		}
		if st.Audio.WebRTC.Recovered == 0 || st.Video.WebRTC.Recovered == 0 {
			t.Errorf("WebRTC leg: %d audio and %d video packets recovered", st.Audio.WebRTC.Recovered, st.Video.WebRTC.Recovered)
		}
		if st.Audio.WebRTC.Recovered > r.REDRecovered || st.Video.WebRTC.Recovered > r.FlexFECRecovered {
			t.Errorf("the bridge counts more rebuilt packets than rtc made")
		}
	})
}
