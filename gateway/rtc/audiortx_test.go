package rtc

import (
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

// withAudioRTXOffer is chromiumOffer with RTX for Opus at payload type 98, as a client that
// enables audio RTX would offer it.
func withAudioRTXOffer() string {
	s := strings.Replace(chromiumOffer, "m=audio 9 UDP/TLS/RTP/SAVPF 111 63", "m=audio 9 UDP/TLS/RTP/SAVPF 111 98 63", 1)
	return strings.Replace(s, "a=rtpmap:63 red/48000/2\n", "a=rtpmap:98 rtx/48000\na=fmtp:98 apt=111\na=rtpmap:63 red/48000/2\n", 1)
}

func rtxFormats(list []Codec) []Codec {
	var out []Codec
	for _, c := range list {
		if strings.EqualFold(c.Name, "rtx") {
			out = append(out, c)
		}
	}
	return out
}

// TestAudioRTXAnswer: a client offering RTX for Opus gets it in the answer (its payload type,
// apt=111, Opus's clock); a browser-like offer without audio RTX gets none, as before.
func TestAudioRTXAnswer(t *testing.T) {
	_, audio, video := answerFor(t, Config{Video: true}, withAudioRTXOffer(), sipPBX)
	rtx := rtxFormats(audio)
	if len(rtx) != 1 || rtx[0].PayloadType != 98 || rtx[0].ClockRate != 48000 || rtx[0].Fmtp != "apt=111" {
		t.Errorf("audio answer %v, want one rtx 98/48000 apt=111", rtpmaps(audio))
	}
	if got := rtpmaps(video); len(got) != 2 || got[1] != "97 rtx/90000" {
		t.Errorf("video answer %v, want VP8 with its RTX, as before", got)
	}

	_, audio, _ = answerFor(t, Config{Video: true}, chromiumOffer, sipPBX)
	if rtx := rtxFormats(audio); len(rtx) != 0 {
		t.Errorf("a browser-like offer gets audio rtx %v", rtpmaps(rtx))
	}
	_, audio, _ = answerFor(t, Config{NoAudioRTX: true}, withAudioRTXOffer(), sipPBX)
	if rtx := rtxFormats(audio); len(rtx) != 0 {
		t.Errorf("NoAudioRTX answers audio rtx %v", rtpmaps(rtx))
	}
}

// TestAudioRTXOffer: the gateway's own offer (through PreferCodecs, as the call layer makes it)
// carries no audio RTX, with or without NoAudioRTX: Chromium refuses a remote offer whose audio
// m-line announces an RTX stream ("Failed to add remote stream ssrc ... media_type: audio"),
// so audio RTX is only answered to a client that offered it.
func TestAudioRTXOffer(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want []string
	}{
		{Config{SendAudioRTX: true}, nil},
		{Config{NoAudioRTX: true}, nil},
	} {
		peer, err := NewPeer(c.cfg, webrtc.Configuration{})
		must(t, err)
		_, err = peer.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio)
		must(t, err)
		sel, err := c.cfg.Match(c.cfg.SupportedCodecs(), sipPBX)
		must(t, err)
		must(t, PreferCodecs(peer.PeerConnection, sel))
		offer, err := peer.CreateOffer(nil)
		must(t, err)
		parsed, err := offer.Unmarshal()
		must(t, err)
		var got []string
		for _, r := range rtxFormats(CodecsOf(parsed.MediaDescriptions[0])) {
			got = append(got, r.String()+" "+r.Fmtp)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("NoAudioRTX=%v: offer's audio rtx %v, want %v", c.cfg.NoAudioRTX, got, c.want)
		}
		must(t, peer.Close())
	}
}

// TestAudioRTXBothWaysOverLossyLink: two peers with SendAudioRTX over a link losing 8% each
// way. Each repairs the other's lost audio over RTX (the FID group reaches it through
// Peer.LocalDescription), the tracks give back the packets sent, and the counters move.
func TestAudioRTXBothWaysOverLossyLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, err := netem.New("", netem.WithSeed(5))
		must(t, err)
		ch, _ := nw.AddHost("client", "")
		gh, _ := nw.AddHost("gateway", "")
		loss := netem.LinkConfig{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.08}}
		must(t, ch.Up.Set(loss))
		must(t, ch.Down.Set(loss))
		must(t, nw.Start())
		defer func() { must(t, nw.Close()) }()

		client, err := NewPeer(Config{Net: ch.Net, SendAudioRTX: true}, webrtc.Configuration{})
		must(t, err)
		gw, err := NewPeer(Config{Net: gh.Net, SendAudioRTX: true}, webrtc.Configuration{})
		must(t, err)
		var wg sync.WaitGroup
		gots := map[*Peer]*rtxGot{client: {}, gw: {}}
		for p, g := range gots {
			readRTXTracks(p, g, &wg)
		}
		tracks := map[*Peer]*TrackLocal{}
		for _, p := range []*Peer{client, gw} {
			tracks[p] = NewTrackLocal(webrtc.RTPCodecTypeAudio, Config{}.SupportedCodecs(), "audio", "s")
			sender, err := p.AddTrack(tracks[p])
			must(t, err)
			wg.Go(func() {
				for {
					if _, _, err := sender.ReadRTCP(); err != nil {
						return
					}
				}
			})
		}
		exchange(t, client, gw)

		ctx, cancel := context.WithCancel(context.Background())
		var senders sync.WaitGroup
		for _, tr := range tracks {
			senders.Go(func() { sendAudio(ctx, t, tr) })
		}
		senders.Wait()
		cancel()
		time.Sleep(time.Second)

		for _, side := range []struct {
			name string
			peer *Peer
		}{{"gateway", gw}, {"client", client}} {
			st := side.peer.Repair.Snapshot()
			g := gots[side.peer]
			g.mu.Lock()
			t.Logf("%s: audio %d/500, %d over RTX; %+v", side.name, len(g.seqs), g.viaRTX, st)
			if len(g.seqs) < 495 || g.viaRTX == 0 || g.bad > 0 {
				t.Errorf("%s: %d of 500 audio packets, %d over RTX, %d wrong", side.name, len(g.seqs), g.viaRTX, g.bad)
			}
			g.mu.Unlock()
			if st.RTXSent == 0 || st.RTXSent != st.Retransmissions || st.RTXReceived == 0 {
				t.Errorf("%s: audio not repaired over RTX both ways: %+v", side.name, st)
			}
		}
		must(t, client.Close())
		must(t, gw.Close())
		wg.Wait()
	})
}

// rtxGot is what one side read from its audio track.
type rtxGot struct {
	mu     sync.Mutex
	seqs   map[uint16]bool
	viaRTX int
	bad    int
}

func readRTXTracks(pc *Peer, g *rtxGot, wg *sync.WaitGroup) {
	g.seqs = map[uint16]bool{}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				n, attr, err := tr.Read(buf)
				if err != nil {
					return
				}
				var p rtp.Packet
				if err := p.Unmarshal(buf[:n]); err != nil {
					continue
				}
				g.mu.Lock()
				g.seqs[p.SequenceNumber] = true
				if attr != nil && attr.Get(webrtc.AttributeRtxSsrc) != nil {
					g.viaRTX++
				}
				if p.PayloadType != 111 || string(p.Payload) != string(repairPayload(webrtc.RTPCodecTypeAudio, p.SequenceNumber)) {
					g.bad++
				}
				g.mu.Unlock()
			}
		})
	})
}

// exchange connects the two peers, each side's description going through Peer.LocalDescription.
func exchange(t *testing.T, offerer, answerer *Peer) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	must(t, err)
	g := webrtc.GatheringCompletePromise(offerer.PeerConnection)
	must(t, offerer.SetLocalDescription(offer))
	<-g
	sent := *offerer.LocalDescription()
	if !strings.Contains(sent.SDP, "a=ssrc-group:FID") || !strings.Contains(sent.SDP, "rtx/48000") {
		t.Fatalf("the offer signals no audio RTX:\n%s", sent.SDP)
	}
	must(t, answerer.SetRemoteDescription(sent))
	answer, err := answerer.CreateAnswer(nil)
	must(t, err)
	g = webrtc.GatheringCompletePromise(answerer.PeerConnection)
	must(t, answerer.SetLocalDescription(answer))
	<-g
	up := []<-chan error{connectedCh(offerer.PeerConnection), connectedCh(answerer.PeerConnection)}
	must(t, offerer.SetRemoteDescription(*answerer.LocalDescription()))
	for _, c := range up {
		select {
		case err := <-c:
			must(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("not connected")
		}
	}
}

// sendAudio sends 10 s of Opus-typed packets, 50 a second.
func sendAudio(ctx context.Context, t *testing.T, tr *TrackLocal) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(1); seq <= 500; seq++ {
		h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}
		if err := tr.WriteRTP(&h, repairPayload(webrtc.RTPCodecTypeAudio, seq)); err != nil {
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
