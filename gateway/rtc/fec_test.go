package rtc

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/lab/netem"
)

// repairPayload is the deterministic payload of packet seq of a test stream.
func repairPayload(kind webrtc.RTPCodecType, seq uint16) []byte {
	n := 80
	if kind == webrtc.RTPCodecTypeVideo {
		n = 300 + int(seq%7)*100
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int(seq)*13 + i + int(kind))
	}
	return b
}

// got is what one side read from its remote tracks.
type got struct {
	mu        sync.Mutex
	pkts      map[webrtc.RTPCodecType][]rtp.Packet
	recovered map[webrtc.RTPCodecType]map[Recovery]int
	bad       []string
}

func (g *got) add(kind webrtc.RTPCodecType, p rtp.Packet, r Recovery) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pkts[kind] = append(g.pkts[kind], p)
	if r != "" {
		g.recovered[kind][r]++
	}
	want := repairPayload(kind, p.SequenceNumber)
	wantPT := uint8(111)
	if kind == webrtc.RTPCodecTypeVideo {
		wantPT = 96
	}
	if !bytes.Equal(p.Payload, want) || p.PayloadType != wantPT || p.Timestamp != uint32(p.SequenceNumber)*960 {
		g.bad = append(g.bad, kind.String()+" "+string(r)+": packet differs from what was sent")
	}
}

func readTracks(pc *Peer, g *got, wg *sync.WaitGroup) {
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := recv.Read(buf); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				n, attr, err := tr.Read(buf)
				if err != nil {
					return
				}
				var p rtp.Packet
				if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
					continue
				}
				g.add(tr.Kind(), p, RecoveredBy(attr))
			}
		})
	})
}

// TestREDAndFlexFECOverLossyLink: two peers with RED and FlexFEC over a link losing 8% each
// way. Each side decodes the other's RED and repairs its video with FlexFEC: the tracks give
// plain Opus and VP8 only, every rebuilt packet is the one sent, and the counters move.
func TestREDAndFlexFECOverLossyLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := netem.New("", netem.WithSeed(3))
		must(t, err)
		ch, _ := nw.AddHost("client", "")
		gh, _ := nw.AddHost("gateway", "")
		loss := netem.LinkConfig{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.08}}
		must(t, ch.Up.Set(loss))
		must(t, ch.Down.Set(loss))
		must(t, nw.Start())
		defer func() { must(t, nw.Close()) }()

		cfg := Config{Video: true, RED: true, REDDistance: 2, FlexFEC: true, FECMediaPackets: 4, FECPackets: 2}
		clientCfg, gwCfg := cfg, cfg
		clientCfg.Net, gwCfg.Net = ch.Net, gh.Net
		client, err := NewPeer(clientCfg, webrtc.Configuration{})
		must(t, err)
		gw, err := NewPeer(gwCfg, webrtc.Configuration{})
		must(t, err)

		var wg sync.WaitGroup
		clientGot := &got{pkts: map[webrtc.RTPCodecType][]rtp.Packet{}, recovered: map[webrtc.RTPCodecType]map[Recovery]int{webrtc.RTPCodecTypeAudio: {}, webrtc.RTPCodecTypeVideo: {}}}
		gwGot := &got{pkts: map[webrtc.RTPCodecType][]rtp.Packet{}, recovered: map[webrtc.RTPCodecType]map[Recovery]int{webrtc.RTPCodecTypeAudio: {}, webrtc.RTPCodecTypeVideo: {}}}
		readTracks(client, clientGot, &wg)
		readTracks(gw, gwGot, &wg)

		addTracks := func(pc *Peer, prefer map[webrtc.RTPCodecType][]Codec) map[webrtc.RTPCodecType]*TrackLocal {
			out := map[webrtc.RTPCodecType]*TrackLocal{}
			for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
				tr := NewTrackLocal(kind, prefer[kind], kind.String(), "s")
				sender, err := pc.AddTrack(tr)
				must(t, err)
				wg.Go(func() {
					for {
						if _, _, err := sender.ReadRTCP(); err != nil {
							return
						}
					}
				})
				out[kind] = tr
			}
			return out
		}
		all := Config{Video: true}.SupportedCodecs()
		clientTracks := addTracks(client, map[webrtc.RTPCodecType][]Codec{webrtc.RTPCodecTypeAudio: all, webrtc.RTPCodecTypeVideo: all})

		offer, err := client.CreateOffer(nil)
		must(t, err)
		g := webrtc.GatheringCompletePromise(client.PeerConnection)
		must(t, client.SetLocalDescription(offer))
		<-g
		offer = *client.LocalDescription()
		must(t, gw.SetRemoteDescription(offer))
		sel, err := gwCfg.PickCodecs(offer, []Codec{
			{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 107},
			{Name: "VP8", ClockRate: 90000, PayloadType: 100},
		})
		must(t, err)
		if sel.RED.Name != "red" || sel.FlexFEC.Name != "flexfec-03" {
			t.Fatalf("selection RED %v FlexFEC %v", sel.RED, sel.FlexFEC)
		}
		must(t, PreferCodecs(gw.PeerConnection, sel))
		prefer := map[webrtc.RTPCodecType][]Codec{}
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			for _, p := range sel.Pairs(kind) {
				prefer[kind] = append(prefer[kind], p.WebRTC)
			}
		}
		gwTracks := addTracks(gw, prefer)
		answer, err := gw.CreateAnswer(nil)
		must(t, err)
		g = webrtc.GatheringCompletePromise(gw.PeerConnection)
		must(t, gw.SetLocalDescription(answer))
		<-g
		sdpAnswer := gw.LocalDescription().SDP
		if !strings.Contains(sdpAnswer, "m=audio 9 UDP/TLS/RTP/SAVPF 63 111") || !strings.Contains(sdpAnswer, "a=fmtp:63 111/111") {
			t.Errorf("the answer does not put red first:\n%s", sdpAnswer)
		}
		if !strings.Contains(sdpAnswer, "flexfec-03/90000") || !strings.Contains(sdpAnswer, "a=ssrc-group:FEC-FR") {
			t.Errorf("the answer has no FlexFEC stream:\n%s", sdpAnswer)
		}
		up := []<-chan error{connectedCh(client.PeerConnection), connectedCh(gw.PeerConnection)}
		must(t, client.SetRemoteDescription(*gw.LocalDescription()))
		for _, c := range up {
			select {
			case err := <-c:
				must(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("not connected")
			}
		}

		// 10 s of 50 packets/s of audio and 100 packets/s of video, each way.
		ctx, cancel := context.WithCancel(context.Background())
		send := func(tr *TrackLocal, kind webrtc.RTPCodecType, every time.Duration) {
			pt := uint8(111)
			if kind == webrtc.RTPCodecTypeVideo {
				pt = 96
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for seq := uint16(1); seq <= uint16(10*time.Second/every); seq++ {
				h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 960}
				if err := tr.WriteRTP(&h, repairPayload(kind, seq)); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}
		var senders sync.WaitGroup
		for _, tracks := range []map[webrtc.RTPCodecType]*TrackLocal{clientTracks, gwTracks} {
			senders.Go(func() { send(tracks[webrtc.RTPCodecTypeAudio], webrtc.RTPCodecTypeAudio, 20*time.Millisecond) })
			senders.Go(func() { send(tracks[webrtc.RTPCodecTypeVideo], webrtc.RTPCodecTypeVideo, 10*time.Millisecond) })
		}
		senders.Wait()
		cancel()
		time.Sleep(time.Second)

		for _, side := range []struct {
			name string
			peer *Peer
			got  *got
		}{{"gateway", gw, gwGot}, {"client", client, clientGot}} {
			st := side.peer.Repair.Snapshot()
			side.got.mu.Lock()
			for _, b := range side.got.bad {
				t.Errorf("%s: %s", side.name, b)
			}
			audio := map[uint16]bool{}
			for _, p := range side.got.pkts[webrtc.RTPCodecTypeAudio] {
				audio[p.SequenceNumber] = true
			}
			video := map[uint16]bool{}
			for _, p := range side.got.pkts[webrtc.RTPCodecTypeVideo] {
				video[p.SequenceNumber] = true
			}
			rec := side.got.recovered
			side.got.mu.Unlock()
			t.Logf("%s: audio %d/500 (%d rebuilt by RED), video %d/1000 (%d rebuilt by FlexFEC); %+v",
				side.name, len(audio), rec[webrtc.RTPCodecTypeAudio][RecoveredRED], len(video), rec[webrtc.RTPCodecTypeVideo][RecoveredFlexFEC], st)
			if st.REDReceived < 400 || st.REDRecovered == 0 || st.REDSent < 490 {
				t.Errorf("%s: RED counters %+v", side.name, st)
			}
			if st.FlexFECReceived < 400 || st.FlexFECRecovered == 0 || st.FlexFECSent != 500 {
				t.Errorf("%s: FlexFEC counters %+v", side.name, st)
			}
			if int(st.REDRecovered) < rec[webrtc.RTPCodecTypeAudio][RecoveredRED] || rec[webrtc.RTPCodecTypeAudio][RecoveredRED] == 0 {
				t.Errorf("%s: %d RED packets read, %d counted", side.name, rec[webrtc.RTPCodecTypeAudio][RecoveredRED], st.REDRecovered)
			}
			if rec[webrtc.RTPCodecTypeVideo][RecoveredFlexFEC] == 0 {
				t.Errorf("%s: no FlexFEC packet read", side.name)
			}
			if len(audio) < 495 || len(video) < 990 {
				t.Errorf("%s: %d audio and %d video packets of 500 and 1000", side.name, len(audio), len(video))
			}
		}
		must(t, client.Close())
		must(t, gw.Close())
		wg.Wait()
	})
}

// TestRepairOffByDefault: without RED and FlexFEC, the answer declines the client's red and
// flexfec-03, as before.
func TestRepairOffByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, ch, gh := network(t)
		defer func() { must(t, nw.Close()) }()
		client, err := NewPeer(Config{Net: ch.Net, Video: true, RED: true, FlexFEC: true}, webrtc.Configuration{})
		must(t, err)
		gw, err := NewPeer(Config{Net: gh.Net, Video: true}, webrtc.Configuration{})
		must(t, err)
		defer func() { must(t, client.Close()); must(t, gw.Close()) }()
		_, err = client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo)
		must(t, err)
		answer := dial(t, client.PeerConnection, gw.PeerConnection)
		offer := client.LocalDescription().SDP
		if !strings.Contains(offer, "red/48000/2") || !strings.Contains(offer, "flexfec-03/90000") {
			t.Errorf("the client does not offer red and flexfec-03:\n%s", offer)
		}
		if strings.Contains(answer, "red/") || strings.Contains(answer, "flexfec") {
			t.Errorf("the answer takes red or flexfec-03:\n%s", answer)
		}
		if st := gw.Repair.Snapshot(); st.REDSent+st.FlexFECSent != 0 {
			t.Errorf("counters %+v", st)
		}
	})
}

// TestRepairConfig: what Config accepts, and the selection's formats.
func TestRepairConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{RED: true}, true},
		{Config{RED: true, Codecs: []string{"pcmu"}}, false},
		{Config{RED: true, REDDistance: MaxREDDistance + 1}, false},
		{Config{REDDistance: -1}, false},
		{Config{FlexFEC: true}, false},
		{Config{FlexFEC: true, Video: true, FECMediaPackets: 10, FECPackets: 3}, true},
		{Config{FlexFEC: true, Video: true, FECMediaPackets: 3, FECPackets: 4}, false},
		{Config{FlexFEC: true, Video: true, FECMediaPackets: MaxFECMediaPackets + 1}, false},
	} {
		if err := tc.cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.cfg, err)
		}
	}
	cfg := Config{RED: true, FlexFEC: true, Video: true}
	sip := []Codec{{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 107}, {Name: "PCMU", ClockRate: 8000}, {Name: "VP8", ClockRate: 90000, PayloadType: 100}}
	// The gateway offers: its own formats.
	sel, err := cfg.Match(cfg.SupportedCodecs(), sip)
	must(t, err)
	if sel.RED != (Codec{Name: "red", ClockRate: 48000, Channels: 2, PayloadType: 63, Fmtp: "111/111"}) || sel.FlexFEC != flexFECCodec {
		t.Errorf("offer: RED %v FlexFEC %v", sel.RED, sel.FlexFEC)
	}
	// A client with other payload types.
	client := []Codec{
		{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 109}, {Name: "red", ClockRate: 48000, Channels: 2, PayloadType: 44, Fmtp: "109/109"},
		{Name: "VP8", ClockRate: 90000, PayloadType: 120}, {Name: "flexfec-03", ClockRate: 90000, PayloadType: 35, Fmtp: "repair-window=10000000"},
	}
	sel, err = cfg.Match(client, sip)
	must(t, err)
	if sel.RED.PayloadType != 44 || sel.FlexFEC.PayloadType != 35 {
		t.Errorf("client: RED %v FlexFEC %v", sel.RED, sel.FlexFEC)
	}
	// Opus not first: no RED; no video: no FlexFEC.
	withPCMU := append([]Codec{{Name: "PCMU", ClockRate: 8000}}, client[:2]...)
	sel, err = Config{RED: true, FlexFEC: true, Video: true, Codecs: []string{"pcmu", "opus", "vp8"}}.Match(withPCMU, sip)
	must(t, err)
	if sel.RED.Name != "" || sel.FlexFEC.Name != "" {
		t.Errorf("PCMU first: RED %v FlexFEC %v", sel.RED, sel.FlexFEC)
	}
	if (Codec{Name: "red"}).Kind() != webrtc.RTPCodecTypeAudio || (Codec{Name: "flexfec-03"}).Kind() != webrtc.RTPCodecTypeVideo {
		t.Error("Kind")
	}
}
