package netem

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The call's media, as in BenchmarkCall (bench_test.go, package netem_test).
const (
	benchAudioBytes    = 160
	benchAudioInterval = 20 * time.Millisecond
	benchVideoBytes    = 1200
	benchVideoInterval = 9600 * time.Microsecond
)

// BenchmarkCallPeerConnection is BenchmarkCall with pion PeerConnections: each party sends PCMU
// (50 pps, 160 B) and 1 Mbit/s of 1200 B video RTP packets over DTLS-SRTP with NACK, across
// alice's impaired access link (2% loss, 40 ms delay, uniform jitter of mean 5 ms, 2 Mbit/s
// capacity, both ways), in virtual time. Call setup (ICE, DTLS) counts in the emulated time.
func BenchmarkCallPeerConnection(b *testing.B) {
	link := LinkConfig{
		Loss:     LossModel{Kind: LossBernoulli, Rate: 0.02},
		Delay:    DelayModel{Base: 40 * time.Millisecond, Jitter: JitterUniform, Mean: 5 * time.Millisecond},
		Capacity: CapacityModel{Rate: 2_000_000},
	}
	var emulated, wall time.Duration
	var sent, received atomic.Int64
	for b.Loop() {
		start := time.Now()
		ok := testing.RunTests(func(_, _ string) (bool, error) { return true, nil },
			[]testing.InternalTest{{Name: b.Name() + "/bubble", F: func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					t0 := time.Now()
					runPCCall(t, link, 10*time.Second, &sent, &received)
					emulated += time.Since(t0)
				})
			}}})
		if !ok {
			b.Fatal("the call failed")
		}
		wall += time.Since(start)
	}
	b.ReportMetric(emulated.Seconds()/wall.Seconds(), "emul-s/s")
	b.ReportMetric(1-float64(received.Load())/float64(sent.Load()), "loss-after-nack")
}

// newCallPeer is a PeerConnection with PCMU and VP8, NACK on both, and RTCP reports.
func newCallPeer(h *Host) (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1, RTCPFeedback: fb},
		PayloadType:        pcmuPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
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
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	s := webrtc.SettingEngine{}
	s.SetNet(h.Net)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetICETimeouts(5*time.Second, 10*time.Second, time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s)).
		NewPeerConnection(webrtc.Configuration{})
}

func runPCCall(t *testing.T, link LinkConfig, d time.Duration, sent, received *atomic.Int64) {
	n, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := n.AddHost("alice", "")
	bob, _ := n.AddHost("bob", "")
	for _, dir := range []*Direction{alice.Up, alice.Down} {
		if err := dir.Set(link); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Close() }()

	var pcs []*webrtc.PeerConnection
	var wg sync.WaitGroup
	closePCs := sync.OnceFunc(func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		wg.Wait()
	})
	defer closePCs()
	type track struct {
		*webrtc.TrackLocalStaticRTP
		size  int
		every time.Duration
		pt    uint8
	}
	var tracks []track
	for _, h := range []*Host{alice, bob} {
		pc, err := newCallPeer(h)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		for _, c := range []struct {
			mime  string
			rate  uint32
			size  int
			every time.Duration
			pt    uint8
		}{
			{webrtc.MimeTypePCMU, 8000, benchAudioBytes, benchAudioInterval, pcmuPayloadType},
			{webrtc.MimeTypeVP8, 90000, benchVideoBytes - 12, benchVideoInterval, 96},
		} {
			tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: c.rate}, c.mime, h.Name)
			if err != nil {
				t.Fatal(err)
			}
			sender, err := pc.AddTrack(tr)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				buf := make([]byte, 1500)
				for {
					if _, _, err := sender.Read(buf); err != nil {
						return
					}
				}
			})
			tracks = append(tracks, track{tr, c.size, c.every, c.pt})
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			wg.Go(func() {
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
					received.Add(1)
				}
			})
		})
	}
	up := []<-chan error{connectedCh(pcs[0]), connectedCh(pcs[1])}
	if err := signal(pcs[0], pcs[1]); err != nil {
		t.Fatal(err)
	}
	for _, ch := range up {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	var senders sync.WaitGroup
	for _, tr := range tracks {
		senders.Go(func() {
			payload := make([]byte, tr.size)
			tick := time.NewTicker(tr.every)
			defer tick.Stop()
			var seq uint16
			for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
				p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: tr.pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160}, Payload: payload}
				seq++
				if err := tr.WriteRTP(p); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		})
	}
	senders.Wait()
	time.Sleep(time.Second) // retransmissions arrive
	closePCs()
}
