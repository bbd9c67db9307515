package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/netem"
)

// The SIP side's formats in the tests: a PBX offer with its own payload types.
var (
	sipPCMU   = rtc.Codec{Name: "PCMU", ClockRate: 8000, PayloadType: 0}
	sipOpus   = rtc.Codec{Name: "opus", ClockRate: 48000, Channels: 2, PayloadType: 107, Fmtp: "useinbandfec=1"}
	sipTE8k   = rtc.Codec{Name: "telephone-event", ClockRate: 8000, PayloadType: 101, Fmtp: "0-16"}
	sipTE48k  = rtc.Codec{Name: "telephone-event", ClockRate: 48000, PayloadType: 106, Fmtp: "0-16"}
	sipVP8    = rtc.Codec{Name: "VP8", ClockRate: 90000, PayloadType: 100}
	phonePort = uint16(30000) // the RTP peer's audio RTP port; RTCP +1, video +2/+3
)

type callOptions struct {
	sip        []rtc.Codec      // the SIP side's formats
	clientLink netem.LinkConfig // the client's access link, both ways
	seed       int64
	// loopback runs the call on the real network, on 127.0.0.1 (benchmarks), instead of netem.
	loopback bool
	// countOnly: the client and the phone count what they receive instead of keeping it.
	countOnly bool
	// rtc adjusts the client's and the gateway's rtc.Config (RED, FlexFEC, ...).
	rtc func(*rtc.Config)
}

// call is one bridged call on an emulated network: a pion client PeerConnection, the gateway's
// PeerConnection with its bridge, and a plain RTP peer (the "phone") on a third host.
type call struct {
	t                           testing.TB
	nw                          *netem.Network
	clientHost, gwHost, pbxHost *netem.Host
	client, gw                  *rtc.Peer
	sel                         *rtc.Selection
	bridge                      *Bridge
	audio, video                *Stream
	clientAudio, clientVideo    *rtc.TrackLocal
	clientSenders               map[webrtc.RTPCodecType]*webrtc.RTPSender
	phoneAudio, phoneVideo      *rtpPeer

	clientCount  atomic.Int64 // with countOnly
	clientNotify chan struct{}

	mu           sync.Mutex
	clientGot    map[webrtc.RTPCodecType][]rtp.Packet
	clientRTCP   []rtcp.Packet
	remoteTracks map[webrtc.RTPCodecType]*webrtc.TrackRemote
	dtmf         []DTMF
	pfu          int // picture fast updates asked of the call layer

	wg sync.WaitGroup
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newCall sets the call up (inside a synctest bubble, or on loopback) and registers its
// teardown.
func newCall(t testing.TB, o callOptions) *call {
	t.Helper()
	c := &call{
		t: t, clientGot: map[webrtc.RTPCodecType][]rtp.Packet{}, remoteTracks: map[webrtc.RTPCodecType]*webrtc.TrackRemote{},
		clientSenders: map[webrtc.RTPCodecType]*webrtc.RTPSender{}, clientNotify: make(chan struct{}, 1),
	}
	var err error
	type host struct {
		net transport.Net
		ip  netip.Addr
	}
	var clientH, gwH, pbxH host
	if o.loopback {
		std, err := stdnet.NewNet()
		must(t, err)
		lo := netip.MustParseAddr("127.0.0.1")
		clientH, gwH, pbxH = host{std, lo}, host{std, lo}, host{std, lo}
	} else {
		c.nw, err = netem.New("", netem.WithSeed(max(o.seed, 1)))
		must(t, err)
		c.clientHost, _ = c.nw.AddHost("client", "")
		c.gwHost, _ = c.nw.AddHost("gateway", "")
		c.pbxHost, _ = c.nw.AddHost("pbx", "")
		must(t, c.clientHost.Up.Set(o.clientLink))
		must(t, c.clientHost.Down.Set(o.clientLink))
		must(t, c.nw.Start())
		clientH, gwH, pbxH = host{c.clientHost.Net, c.clientHost.IP}, host{c.gwHost.Net, c.gwHost.IP}, host{c.pbxHost.Net, c.pbxHost.IP}
	}
	peerConfig := func(h host) rtc.Config {
		cfg := rtc.Config{Net: h.net}
		if o.loopback { // real sockets stay on loopback
			cfg.IncludeLoopback = true
			cfg.IPFilter = func(a netip.Addr) bool { return a.IsLoopback() }
		}
		return cfg
	}

	video := slices.ContainsFunc(o.sip, func(c rtc.Codec) bool { return c.Kind() == webrtc.RTPCodecTypeVideo })
	clientCfg, gwCfg := peerConfig(clientH), peerConfig(gwH)
	clientCfg.Video, clientCfg.SendTWCC = true, true
	if o.loopback {
		// At benchmark rates (10^5 packets/s) one TWCC feedback outgrows the client's receive
		// MTU and pion logs each drop; at call rates it never does.
		quiet := logging.NewDefaultLoggerFactory()
		quiet.DefaultLogLevel = logging.LogLevelDisabled
		clientCfg.LoggerFactory = quiet
	}
	gwCfg.Video = video
	if !o.loopback {
		gwCfg.PortMin, gwCfg.PortMax = 40000, 40100
	}
	if o.rtc != nil {
		o.rtc(&clientCfg)
		o.rtc(&gwCfg)
	}
	c.client, err = rtc.NewPeer(clientCfg, webrtc.Configuration{})
	must(t, err)
	c.gw, err = rtc.NewPeer(gwCfg, webrtc.Configuration{})
	must(t, err)

	// The client: an audio track (and a video one), both on rtc.TrackLocal so that it can send
	// telephone-events with their own payload type.
	c.clientAudio = rtc.NewTrackLocal(webrtc.RTPCodecTypeAudio, rtc.Config{}.SupportedCodecs(), "audio", "client")
	tracks := []*rtc.TrackLocal{c.clientAudio}
	if video {
		c.clientVideo = rtc.NewTrackLocal(webrtc.RTPCodecTypeVideo, rtc.Config{Video: true}.SupportedCodecs(), "video", "client")
		tracks = append(tracks, c.clientVideo)
	}
	for _, tr := range tracks {
		sender, err := c.client.AddTrack(tr)
		must(t, err)
		c.clientSenders[tr.Kind()] = sender
		c.wg.Go(func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				c.mu.Lock()
				c.clientRTCP = append(c.clientRTCP, pkts...)
				c.mu.Unlock()
			}
		})
	}
	c.client.OnTrack(func(tr *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		c.wg.Go(func() { // the SRs must be read for the client's RRs to carry LSR/DLSR
			buf := make([]byte, 1500)
			for {
				if _, _, err := receiver.Read(buf); err != nil {
					return
				}
			}
		})
		c.mu.Lock()
		c.remoteTracks[tr.Kind()] = tr
		c.mu.Unlock()
		c.wg.Go(func() {
			if o.countOnly {
				buf := make([]byte, 1500)
				for {
					if _, _, err := tr.Read(buf); err != nil {
						return
					}
					c.clientCount.Add(1)
					select {
					case c.clientNotify <- struct{}{}:
					default:
					}
				}
			}
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				c.mu.Lock()
				c.clientGot[tr.Kind()] = append(c.clientGot[tr.Kind()], *p)
				c.mu.Unlock()
			}
		})
	})

	// The phone: plain RTP/RTCP sockets on the PBX host.
	port := phonePort
	if o.loopback {
		port = 0
	}
	c.phoneAudio = newRTPPeer(t, pbxH.net, pbxH.ip, port, o.countOnly)
	if video {
		c.phoneVideo = newRTPPeer(t, pbxH.net, pbxH.ip, port+2, o.countOnly)
	}

	// Offer from the client; the gateway selects against the SIP side, bridges and answers.
	offer, err := c.client.CreateOffer(nil)
	must(t, err)
	gathered := webrtc.GatheringCompletePromise(c.client.PeerConnection)
	must(t, c.client.SetLocalDescription(offer))
	<-gathered
	offer = *c.client.LocalDescription()

	must(t, c.gw.SetRemoteDescription(offer))
	c.sel, err = gwCfg.PickCodecs(offer, o.sip)
	must(t, err)
	must(t, rtc.PreferCodecs(c.gw.PeerConnection, c.sel))
	c.bridge, err = New(Config{
		PeerConnection: c.gw.PeerConnection, Repair: c.gw.Repair, Net: gwH.net, LocalIP: gwH.ip,
		OnDTMF: func(_ webrtc.RTPCodecType, ev DTMF) {
			c.mu.Lock()
			c.dtmf = append(c.dtmf, ev)
			c.mu.Unlock()
		},
		OnPictureFastUpdate: func() {
			c.mu.Lock()
			c.pfu++
			c.mu.Unlock()
		},
	})
	must(t, err)
	c.audio, err = c.bridge.AddStream(webrtc.RTPCodecTypeAudio, c.sel.Pairs(webrtc.RTPCodecTypeAudio))
	must(t, err)
	c.audio.SetRemote(c.phoneAudio.addr(), netip.AddrPort{}, false)
	if len(c.sel.Video) > 0 {
		c.video, err = c.bridge.AddStream(webrtc.RTPCodecTypeVideo, c.sel.Pairs(webrtc.RTPCodecTypeVideo))
		must(t, err)
		c.video.SetRemote(c.phoneVideo.addr(), netip.AddrPort{}, false)
	}
	answer, err := c.gw.CreateAnswer(nil)
	must(t, err)
	gathered = webrtc.GatheringCompletePromise(c.gw.PeerConnection)
	must(t, c.gw.SetLocalDescription(answer))
	<-gathered

	up := []<-chan error{connected(c.client.PeerConnection), connected(c.gw.PeerConnection)}
	must(t, c.client.SetRemoteDescription(*c.gw.LocalDescription()))
	timeout := time.After(15 * time.Second)
	for _, ch := range up {
		select {
		case err := <-ch:
			must(t, err)
		case <-timeout:
			t.Fatal("not connected after 15 s")
		}
	}
	t.Cleanup(c.close)
	return c
}

// close tears everything down; every goroutine has ended when it returns.
func (c *call) close() {
	for _, pc := range []*rtc.Peer{c.client, c.gw} {
		if err := pc.Close(); err != nil {
			c.t.Error(err)
		}
	}
	if err := c.bridge.Close(); err != nil {
		c.t.Error(err)
	}
	for _, p := range []*rtpPeer{c.phoneAudio, c.phoneVideo} {
		if p != nil {
			p.close()
		}
	}
	c.wg.Wait()
	if c.nw != nil {
		if err := c.nw.Close(); err != nil {
			c.t.Error(err)
		}
	}
}

func connected(pc *webrtc.PeerConnection) <-chan error {
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

// clientPackets returns what the client received of kind (copies).
func (c *call) clientPackets(kind webrtc.RTPCodecType) []rtp.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.clientGot[kind])
}

// rtpPeer is the SIP side's media endpoint: an RTP and an RTCP socket, recording what arrives.
type rtpPeer struct {
	rtp, rtcp net.PacketConn
	wg        sync.WaitGroup
	count     atomic.Int64 // RTP packets received
	notify    chan struct{}
	mu        sync.Mutex
	got       []rtp.Packet
	gotRTCP   []rtcp.Packet
	rtcpFrom  []netip.AddrPort
}

// newRTPPeer opens RTP on port (0: any with a free next port) and RTCP on the next port. With
// countOnly it counts RTP packets instead of keeping them.
func newRTPPeer(t testing.TB, n transport.Net, ip netip.Addr, port uint16, countOnly bool) *rtpPeer {
	t.Helper()
	p := &rtpPeer{notify: make(chan struct{}, 1)}
	var err error
	for range 10 {
		p.rtp, err = n.ListenPacket("udp4", netip.AddrPortFrom(ip, port).String())
		must(t, err)
		rtpPort := udpAddrPort(p.rtp.LocalAddr()).Port()
		if p.rtcp, err = n.ListenPacket("udp4", netip.AddrPortFrom(ip, rtpPort+1).String()); err == nil {
			break
		}
		_ = p.rtp.Close()
	}
	must(t, err)
	if countOnly {
		p.wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := readFrom(p.rtp, buf); err != nil {
					return
				}
				p.count.Add(1)
				select {
				case p.notify <- struct{}{}:
				default:
				}
			}
		})
		p.wg.Go(func() { p.drainRTCP() })
		return p
	}
	p.wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := p.rtp.ReadFrom(buf)
			if err != nil {
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(slices.Clone(buf[:n])) == nil {
				p.mu.Lock()
				p.got = append(p.got, pkt)
				p.mu.Unlock()
			}
		}
	})
	p.wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := p.rtcp.ReadFrom(buf)
			if err != nil {
				return
			}
			if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
				p.mu.Lock()
				p.gotRTCP = append(p.gotRTCP, pkts...)
				p.rtcpFrom = append(p.rtcpFrom, udpAddrPort(from))
				p.mu.Unlock()
			}
		}
	})
	return p
}

func (p *rtpPeer) drainRTCP() {
	buf := make([]byte, 1500)
	for {
		if _, _, err := p.rtcp.ReadFrom(buf); err != nil {
			return
		}
	}
}

func (p *rtpPeer) addr() netip.AddrPort { return udpAddrPort(p.rtp.LocalAddr()) }

func (p *rtpPeer) send(t testing.TB, dst netip.AddrPort, pkt *rtp.Packet) {
	t.Helper()
	b, err := pkt.Marshal()
	must(t, err)
	if _, err := p.rtp.WriteTo(b, net.UDPAddrFromAddrPort(dst)); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Error(err)
	}
}

func (p *rtpPeer) sendRTCP(t testing.TB, dst netip.AddrPort, pkts ...rtcp.Packet) {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	must(t, err)
	dst = netip.AddrPortFrom(dst.Addr(), dst.Port()+1)
	if _, err := p.rtcp.WriteTo(b, net.UDPAddrFromAddrPort(dst)); err != nil {
		t.Error(err)
	}
}

func (p *rtpPeer) packets() []rtp.Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func (p *rtpPeer) rtcpPackets() []rtcp.Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.gotRTCP)
}

func (p *rtpPeer) close() {
	_ = p.rtp.Close()
	_ = p.rtcp.Close()
	p.wg.Wait()
}

// byPT keeps the packets of one payload type.
func byPT(pkts []rtp.Packet, pt uint8) []rtp.Packet {
	var out []rtp.Packet
	for _, p := range pkts {
		if p.PayloadType == pt {
			out = append(out, p)
		}
	}
	return out
}

// --- G.711 mu-law and a tone, for content checks --------------------------------------------

// ulawEncode is ITU-T G.711 mu-law.
func ulawEncode(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

func ulawDecode(u byte) int16 {
	u = ^u
	sign, exp, mant := u&0x80, int(u>>4)&0x07, int(u&0x0f)
	v := ((mant << 3) + 0x84) << exp
	v -= 0x84
	if sign != 0 {
		v = -v
	}
	return int16(v)
}

// toneFrame is 20 ms of a sine tone at freq Hz, frame index i, in PCMU.
func toneFrame(freq float64, i int) []byte {
	b := make([]byte, 160)
	for k := range b {
		n := float64(i*160 + k)
		b[k] = ulawEncode(int16(8000 * math.Sin(2*math.Pi*freq*n/8000)))
	}
	return b
}

// estimateFrequency decodes PCMU payloads (in order) and counts zero crossings.
func estimateFrequency(payloads [][]byte) float64 {
	var prev int16
	crossings, samples := 0, 0
	for _, p := range payloads {
		for _, u := range p {
			s := ulawDecode(u)
			if samples > 0 && (prev < 0) != (s < 0) {
				crossings++
			}
			prev = s
			samples++
		}
	}
	if samples == 0 {
		return 0
	}
	return float64(crossings) / 2 / (float64(samples) / 8000)
}

// sendTone sends n frames of a tone, one per 20 ms, with write.
func sendTone(ctx context.Context, n int, freq float64, write func(i int, payload []byte)) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		write(i, toneFrame(freq, i))
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
