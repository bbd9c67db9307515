package netem

// These tests pin the facts the lab relies on (see FACTS.md): two pion/webrtc PeerConnections
// run over this package's vnet network inside testing/synctest, carry audio with DTLS-SRTP, NACK
// repairs audio loss, and every goroutine ends when the call is torn down.
//
// The loss and delay are the hosts' link models (Direction.Set): every UDP datagram between the
// peers (ICE, DTLS, RTP, RTCP) crosses the sender's Up and the receiver's Down.

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	audioPacketInterval = 20 * time.Millisecond // 50 packets/s
	pcmuPayloadType     = 0
	pcmuFrameBytes      = 160 // 20 ms of 8 kHz PCMU
)

type callOptions struct {
	duration time.Duration
	nack     bool
	loss     float64       // Bernoulli loss on each host's uplink, so each way
	delay    time.Duration // one-way delay on each host's uplink
	seed     int64         // the network's seed
}

type callResult struct {
	connectTime time.Duration     // emulated: offer to both PeerConnections connected
	emulated    time.Duration     // emulated: whole call, setup to the end of teardown
	sent        int               // RTP packets written by the sender
	received    int               // RTP packets read by the receiver, duplicates included
	unique      int               // distinct sequence numbers read by the receiver
	up          [2]DirectionStats // alice/up, bob/up
}

// newAudioPeer builds a PeerConnection on host h: PCMU only, host UDP4 candidates only, no mDNS,
// RTCP reports, and with nack the generator and responder plus nack feedback on the audio codec
// (webrtc.ConfigureNack only registers it for video).
func newAudioPeer(h *Host, withNack bool) (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	var fb []webrtc.RTCPFeedback
	if withNack {
		fb = []webrtc.RTCPFeedback{{Type: "nack"}}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1, RTCPFeedback: fb},
		PayloadType:        pcmuPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if withNack {
		gen, err := nack.NewGeneratorInterceptor()
		if err != nil {
			return nil, err
		}
		resp, err := nack.NewResponderInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(resp)
		ir.Add(gen)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	s := webrtc.SettingEngine{}
	s.SetNet(h.Net)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetICETimeouts(5*time.Second, 10*time.Second, time.Second)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s))
	return api.NewPeerConnection(webrtc.Configuration{})
}

// connectedCh reports when pc reaches connected, or an error when it fails or closes first.
func connectedCh(pc *webrtc.PeerConnection) <-chan error {
	ch := make(chan error, 1)
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { ch <- nil })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			once.Do(func() { ch <- fmt.Errorf("peer connection %s", s) })
		default:
		}
	})
	return ch
}

// signal runs a non-trickle offer/answer exchange.
func signal(offerer, answerer *webrtc.PeerConnection) error {
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err = offerer.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	if err = answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		return err
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err = answerer.SetLocalDescription(answer); err != nil {
		return err
	}
	<-gathered
	return offerer.SetRemoteDescription(*answerer.LocalDescription())
}

// runAudioCall runs one call alice -> bob on a fresh network. Call it inside a synctest bubble.
// It returns only after everything it started has been closed.
func runAudioCall(t *testing.T, o callOptions) callResult {
	t.Helper()
	start := time.Now()
	var res callResult

	n, err := New("", WithSeed(o.seed))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := n.AddHost("alice", "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := n.AddHost("bob", "")
	if err != nil {
		t.Fatal(err)
	}
	link := LinkConfig{Delay: DelayModel{Base: o.delay}}
	if o.loss > 0 {
		link.Loss = LossModel{Kind: LossBernoulli, Rate: o.loss}
	}
	for _, d := range []*Direction{alice.Up, bob.Up} {
		if err := d.Set(link); err != nil {
			t.Fatal(err)
		}
	}
	if err = n.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()

	offerer, err := newAudioPeer(alice, o.nack)
	if err != nil {
		t.Fatal(err)
	}
	answerer, err := newAudioPeer(bob, o.nack)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // the RTP/RTCP readers end when the PeerConnections close
	closePCs := sync.OnceFunc(func() {
		for _, pc := range []*webrtc.PeerConnection{offerer, answerer} {
			if err := pc.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	defer closePCs()

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio", "siprtc")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := offerer.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { // the sender must read RTCP, or NACKs never reach the responder
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	})

	seqs := map[uint16]struct{}{}
	var received int
	var recvMu sync.Mutex
	answerer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Go(func() {
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				recvMu.Lock()
				received++
				seqs[p.SequenceNumber] = struct{}{}
				recvMu.Unlock()
			}
		})
	})

	offerUp, answerUp := connectedCh(offerer), connectedCh(answerer)
	if err = signal(offerer, answerer); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(15 * time.Second)
	for _, up := range []<-chan error{offerUp, answerUp} {
		select {
		case err := <-up:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("not connected after 15 s of emulated time")
		}
	}
	res.connectTime = time.Since(start)

	ticker := time.NewTicker(audioPacketInterval)
	payload := make([]byte, pcmuFrameBytes)
	packets := int(o.duration / audioPacketInterval)
	for i := range packets {
		<-ticker.C
		p := &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: pcmuPayloadType, SequenceNumber: uint16(i), Timestamp: uint32(i * pcmuFrameBytes)},
			Payload: payload,
		}
		if err := track.WriteRTP(p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		res.sent++
	}
	ticker.Stop()
	time.Sleep(time.Second) // let the last packets and their retransmissions arrive

	closePCs()
	wg.Wait()
	recvMu.Lock()
	res.received, res.unique = received, len(seqs)
	recvMu.Unlock()
	if err := n.Close(); err != nil {
		t.Error(err)
	}
	// No extra sleep is needed: PeerConnection.Close returns after its goroutines (ICE, DTLS,
	// interceptors) have ended, and the router's goroutine is runnable once Stop has closed its
	// channel. synctest.Test stops the clock when this function returns and panics ("deadlock:
	// main bubble goroutine has exited but blocked goroutines remain") if any goroutine is still
	// blocked, e.g. the report interceptors' loops without pc.Close, or the router's without Stop.
	res.emulated = time.Since(start)
	res.up = [2]DirectionStats{alice.Up.Stats(), bob.Up.Stats()}
	return res
}

func callDuration() time.Duration {
	if testing.Short() {
		return 5 * time.Second
	}
	return 20 * time.Second
}

func TestWebRTCAudioCallSynctest(t *testing.T) {
	var res callResult
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		res = runAudioCall(t, callOptions{duration: callDuration()})
	})
	elapsed := time.Since(wall)
	if t.Failed() {
		return
	}
	t.Logf("audio call: %d sent, %d received (%d unique); connected after %v; %v emulated in %v wall (%.0fx)",
		res.sent, res.received, res.unique, res.connectTime, res.emulated, elapsed.Round(time.Millisecond),
		float64(res.emulated)/float64(elapsed))
	if want := int(callDuration() / audioPacketInterval); res.sent != want {
		t.Errorf("sent %d packets, want %d", res.sent, want)
	}
	if res.unique*100 <= res.sent*95 {
		t.Errorf("received %d of %d packets, want more than 95%%", res.unique, res.sent)
	}
}

const nackSeed = 1 // the network's seed; results also vary slightly with goroutine scheduling

func TestWebRTCAudioNackRepairsLoss(t *testing.T) {
	const loss, delay = 0.05, 20 * time.Millisecond
	var res callResult
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		res = runAudioCall(t, callOptions{duration: callDuration(), nack: true, loss: loss, delay: delay, seed: nackSeed})
	})
	elapsed := time.Since(wall)
	if t.Failed() {
		return
	}
	a, b := res.up[0], res.up[1]
	t.Logf("nack call, %.0f%% loss and %v each way: datagrams dropped %d/%d alice->bob, %d/%d bob->alice; "+
		"receiver has %d of %d sent (%d reads); connected after %v, %v emulated in %v wall",
		loss*100, delay, a.DroppedLoss, a.OfferedPackets, b.DroppedLoss, b.OfferedPackets,
		res.unique, res.sent, res.received, res.connectTime, res.emulated, elapsed.Round(time.Millisecond))
	if a.DroppedLoss == 0 || b.DroppedLoss == 0 {
		t.Fatal("the links dropped nothing: the test proves nothing")
	}
	if got := a.OneWayDelay.Min; got != delay {
		t.Errorf("alice/up one-way delay from %v, want %v", got, delay)
	}
	// Without NACK about 5% would be missing; a loss in the last packets can go undetected
	// (no later packet reveals the gap), so allow two.
	if missing := res.sent - res.unique; missing > 2 {
		t.Errorf("%d of %d packets still missing after NACK (%d datagrams dropped alice->bob)", missing, res.sent, a.DroppedLoss)
	}
	if res.unique > res.sent {
		t.Errorf("receiver saw %d distinct sequence numbers, only %d sent", res.unique, res.sent)
	}
}
