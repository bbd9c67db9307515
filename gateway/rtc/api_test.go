package rtc

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/lab/netem"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// candidates lists the host candidates of a local description as addr:port.
func candidates(t *testing.T, pc *webrtc.PeerConnection) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for _, line := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		f := strings.Fields(line)
		ap, err := netip.ParseAddrPort(f[4] + ":" + f[5])
		must(t, err)
		out = append(out, ap)
	}
	return out
}

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

// dial connects a client to the gateway (client offers, gateway answers) and returns the
// gateway's answer SDP.
func dial(t *testing.T, client, gw *webrtc.PeerConnection) string {
	t.Helper()
	_, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio)
	must(t, err)
	offer, err := client.CreateOffer(nil)
	must(t, err)
	g := webrtc.GatheringCompletePromise(client)
	must(t, client.SetLocalDescription(offer))
	<-g
	must(t, gw.SetRemoteDescription(*client.LocalDescription()))
	answer, err := gw.CreateAnswer(nil)
	must(t, err)
	g = webrtc.GatheringCompletePromise(gw)
	must(t, gw.SetLocalDescription(answer))
	<-g
	up := []<-chan error{connectedCh(client), connectedCh(gw)}
	must(t, client.SetRemoteDescription(*gw.LocalDescription()))
	timeout := time.After(15 * time.Second)
	for _, ch := range up {
		select {
		case err := <-ch:
			must(t, err)
		case <-timeout:
			t.Fatal("not connected after 15 s")
		}
	}
	return gw.LocalDescription().SDP
}

func network(t *testing.T) (*netem.Network, *netem.Host, *netem.Host) {
	t.Helper()
	nw, err := netem.New("")
	must(t, err)
	client, _ := nw.AddHost("client", "")
	gw, _ := nw.AddHost("gateway", "")
	must(t, nw.Start())
	return nw, client, gw
}

// TestPublicIPAndPortRange: host candidates carry the configured public address (1:1 NAT)
// and ports from the configured range.
func TestPublicIPAndPortRange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _, gw := network(t)
		defer func() { must(t, nw.Close()) }()
		public := netip.MustParseAddr("203.0.113.7")
		peer, err := NewPeer(Config{Net: gw.Net, PublicIP: public, PortMin: 40000, PortMax: 40009}, webrtc.Configuration{})
		must(t, err)
		defer func() { must(t, peer.Close()) }()
		_, err = peer.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio)
		must(t, err)
		offer, err := peer.CreateOffer(nil)
		must(t, err)
		g := webrtc.GatheringCompletePromise(peer.PeerConnection)
		must(t, peer.SetLocalDescription(offer))
		<-g
		cands := candidates(t, peer.PeerConnection)
		if len(cands) == 0 {
			t.Fatal("no candidate")
		}
		for _, c := range cands {
			if c.Addr() != public || c.Port() < 40000 || c.Port() > 40009 {
				t.Errorf("candidate %v, want %v with a port in 40000-40009", c, public)
			}
		}
	})
}

// TestICELiteGatewayConnects: an ICE-lite gateway (on a port range) connects with a full
// client, and says a=ice-lite.
func TestICELiteGatewayConnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, ch, gh := network(t)
		defer func() { must(t, nw.Close()) }()
		client, err := NewPeer(Config{Net: ch.Net}, webrtc.Configuration{})
		must(t, err)
		gw, err := NewPeer(Config{Net: gh.Net, ICELite: true, PortMin: 50000, PortMax: 50001}, webrtc.Configuration{})
		must(t, err)
		defer func() { must(t, client.Close()); must(t, gw.Close()) }()
		if answer := dial(t, client.PeerConnection, gw.PeerConnection); !strings.Contains(answer, "a=ice-lite") {
			t.Error("the answer does not say a=ice-lite")
		}
	})
}

// TestUDPMuxServesTwoCalls: two calls share the gateway's one UDP port.
func TestUDPMuxServesTwoCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, ch, gh := network(t)
		defer func() { must(t, nw.Close()) }()
		mux, err := NewUDPMux(gh.Net, netip.AddrPortFrom(gh.IP, 3478), logging.NewDefaultLoggerFactory())
		must(t, err)
		defer func() { must(t, mux.Close()) }()
		cfg := Config{Net: gh.Net, UDPMux: mux, ICELite: true}
		var peers []*Peer
		defer func() {
			for _, p := range peers {
				must(t, p.Close())
			}
		}()
		for range 2 {
			client, err := NewPeer(Config{Net: ch.Net}, webrtc.Configuration{})
			must(t, err)
			gw, err := NewPeer(cfg, webrtc.Configuration{})
			must(t, err)
			peers = append(peers, client, gw)
			dial(t, client.PeerConnection, gw.PeerConnection)
			for _, c := range candidates(t, gw.PeerConnection) {
				if c.Port() != 3478 {
					t.Errorf("gateway candidate %v, want port 3478", c)
				}
			}
		}
	})
}
