package media

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// The per-packet cost of the bridge for audio (PCMU, 160-byte frames), in three views:
//
//   - BenchmarkBridge*: end to end on loopback with SRTP: a pion client PeerConnection, the
//     gateway's PeerConnection with the bridge, a plain RTP socket. ns/pkt is wall time per
//     packet with a window of packets in flight (throughput); cpu-ns/pkt is the process's CPU
//     time per packet, both PeerConnections, the RTP peer and the kernel's UDP included;
//     allocs/op counts every goroutine's allocations per packet, the client's too.
//   - BenchmarkPipeline*: the bridge's own chain (parse, handlers, marshal) with no I/O.
//   - BenchmarkSRTP*: one SRTP operation on a packet of that size, what the gateway adds per
//     packet on the WebRTC leg besides pion's interceptors.

const benchWindow = 32 // packets in flight

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runWindowed sends b.N packets with send, keeping at most benchWindow unacknowledged by
// received, and reports the figures.
func runWindowed(b *testing.B, send func(i int), received func() int64, notify <-chan struct{}) {
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(d time.Duration) {
		timer.Reset(d)
		select {
		case <-notify:
		case <-timer.C:
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if int64(i)-received() >= benchWindow {
			wait(20 * time.Millisecond) // a loss frees the window after 20 ms
		}
		send(i)
	}
	for deadline := time.Now().Add(time.Second); received() < int64(b.N) && time.Now().Before(deadline); {
		wait(10 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/pkt")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
	b.ReportMetric(1-float64(received())/float64(b.N), "loss")
}

func BenchmarkBridgeWebRTCToRTP(b *testing.B) {
	c := newCall(b, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}, loopback: true, countOnly: true})
	payload := make([]byte, 160)
	h := rtp.Header{Version: 2, PayloadType: 0}
	runWindowed(b, func(i int) {
		h.SequenceNumber, h.Timestamp = uint16(i), uint32(i*160)
		if err := c.clientAudio.WriteRTP(&h, payload); err != nil {
			b.Fatal(err)
		}
	}, c.phoneAudio.count.Load, c.phoneAudio.notify)
}

func BenchmarkBridgeRTPToWebRTC(b *testing.B) {
	c := newCall(b, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}, loopback: true, countOnly: true})
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 5}, Payload: make([]byte, 160)}
	buf := make([]byte, 1500)
	dst := net.UDPAddrFromAddrPort(c.audio.LocalAddr())
	runWindowed(b, func(i int) {
		p.SequenceNumber, p.Timestamp = uint16(i), uint32(i*160)
		n, err := p.MarshalTo(buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.phoneAudio.rtp.WriteTo(buf[:n], dst); err != nil {
			b.Fatal(err)
		}
	}, c.clientCount.Load, c.clientNotify)
}

// discardConn is a PacketConn whose writes go nowhere.
type discardConn struct{ net.PacketConn }

func (discardConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }

// discardWriter is a TrackLocalWriter that drops everything (no SRTP).
type discardWriter struct{}

func (discardWriter) WriteRTP(_ *rtp.Header, payload []byte) (int, error) { return len(payload), nil }
func (discardWriter) Write(b []byte) (int, error)                         { return len(b), nil }

// fakeBinding binds a TrackLocal to discardWriter.
type fakeBinding struct{ codecs []webrtc.RTPCodecParameters }

func (f fakeBinding) CodecParameters() []webrtc.RTPCodecParameters { return f.codecs }
func (fakeBinding) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter {
	return nil
}
func (fakeBinding) SSRC() webrtc.SSRC                       { return 99 }
func (fakeBinding) SSRCRetransmission() webrtc.SSRC         { return 0 }
func (fakeBinding) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (fakeBinding) WriteStream() webrtc.TrackLocalWriter    { return discardWriter{} }
func (fakeBinding) ID() string                              { return "bench" }
func (fakeBinding) RTCPReader() interceptor.RTCPReader      { return nil }

// pipelineStream is an audio stream with its pipeline and no I/O.
func pipelineStream(b *testing.B) *Stream {
	pairs := []rtc.Pair{{WebRTC: rtc.Codec{Name: "PCMU", ClockRate: 8000}, SIP: sipPCMU}, {WebRTC: rtc.Codec{Name: "telephone-event", ClockRate: 8000, PayloadType: 126}, SIP: sipTE8k}}
	tables, err := newCodecTables(pairs)
	must(b, err)
	s := &Stream{
		b:     &Bridge{log: slog.New(slog.DiscardHandler)},
		kind:  webrtc.RTPCodecTypeAudio,
		sip:   &sipLeg{rtp: discardConn{}},
		track: rtc.NewTrackLocal(webrtc.RTPCodecTypeAudio, []rtc.Codec{pairs[0].WebRTC}, "a", "s"),
	}
	s.codecs.Store(tables)
	s.toSIP.rw.ssrc = 1
	s.pipeline()
	s.sip.setRemote(netip.MustParseAddrPort("192.0.2.1:4000"), netip.AddrPort{}, false)
	if _, err := s.track.Bind(fakeBinding{codecs: []webrtc.RTPCodecParameters{pairs[0].WebRTC.WebRTC()}}); err != nil {
		b.Fatal(err)
	}
	return s
}

func benchPipeline(b *testing.B, d *direction, src netip.AddrPort, dropped func() uint64) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 5}, Payload: make([]byte, 160)}
	buf, err := p.Marshal()
	must(b, err)
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		buf[2], buf[3] = byte(i>>8), byte(i) // sequence number
		ts := uint32(i * 160)
		buf[4], buf[5], buf[6], buf[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		d.deliver(buf, start.Add(time.Duration(i)*20*time.Millisecond), src, false)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/pkt")
	if n := dropped(); n != 0 {
		b.Fatalf("%d packets dropped", n)
	}
}

func BenchmarkPipelineWebRTCToRTP(b *testing.B) {
	s := pipelineStream(b)
	benchPipeline(b, &s.toSIP, netip.AddrPort{}, func() uint64 { return s.toSIP.in.dropped })
}

func BenchmarkPipelineRTPToWebRTC(b *testing.B) {
	s := pipelineStream(b)
	benchPipeline(b, &s.toWebRTC, netip.MustParseAddrPort("192.0.2.1:4000"), func() uint64 { return s.toWebRTC.in.dropped })
}

// benchSRTP runs one SRTP operation per iteration on a PCMU packet.
func benchSRTP(b *testing.B, profile srtp.ProtectionProfile, decrypt bool) {
	keyLen, _ := profile.KeyLen()
	saltLen, _ := profile.SaltLen()
	key, salt := make([]byte, keyLen), make([]byte, saltLen)
	enc, err := srtp.CreateContext(key, salt, profile)
	must(b, err)
	dec, err := srtp.CreateContext(key, salt, profile, srtp.SRTPNoReplayProtection())
	must(b, err)
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 5, SequenceNumber: 1}, Payload: make([]byte, 160)}
	plain, err := p.Marshal()
	must(b, err)
	out := make([]byte, 0, 1500)
	encrypted, err := enc.EncryptRTP(nil, plain, &p.Header)
	must(b, err)
	h := p.Header
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if decrypt {
			_, err = dec.DecryptRTP(out, encrypted, &h)
		} else {
			p.Header.SequenceNumber = uint16(i)
			_, err = enc.EncryptRTP(out, plain, &p.Header)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/pkt")
}

func BenchmarkSRTPEncryptAESCM(b *testing.B) {
	benchSRTP(b, srtp.ProtectionProfileAes128CmHmacSha1_80, false)
}
func BenchmarkSRTPDecryptAESCM(b *testing.B) {
	benchSRTP(b, srtp.ProtectionProfileAes128CmHmacSha1_80, true)
}
func BenchmarkSRTPEncryptGCM(b *testing.B) { benchSRTP(b, srtp.ProtectionProfileAeadAes128Gcm, false) }
func BenchmarkSRTPDecryptGCM(b *testing.B) { benchSRTP(b, srtp.ProtectionProfileAeadAes128Gcm, true) }
