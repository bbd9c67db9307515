package rtc

import (
	"errors"
	"slices"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestBWEConfig: bad settings fail NewAPI; a peer with BWE has its own estimator at the initial
// target, one without has none.
func TestBWEConfig(t *testing.T) {
	for _, bad := range []BWEConfig{
		{MinBitrate: 500_000, MaxBitrate: 100_000},
		{InitialBitrate: 10_000_000, MaxBitrate: 1_000_000},
		{InitialBitrate: -1},
		{Pacer: "fast"},
	} {
		if _, err := NewAPI(Config{BWE: &bad}); !errors.Is(err, errBWE) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	p, err := NewPeer(Config{BWE: &BWEConfig{MaxBitrate: 2_000_000, Pacer: PacerNone}}, webrtc.Configuration{})
	must(t, err)
	defer p.Close() //nolint:errcheck
	if p.BWE == nil {
		t.Fatal("no estimator")
	}
	if got := p.BWE.GetTargetBitrate(); got != DefaultBWEInitialBitrate {
		t.Errorf("initial target %d", got)
	}
	if c := p.BWE.Config(); c.MinBitrate != DefaultBWEMinBitrate || c.MaxBitrate != 2_000_000 || c.Pacer != PacerNone {
		t.Errorf("config %+v", c)
	}
	if s := p.BWE.Stats(); s.TargetBitrate != DefaultBWEInitialBitrate || p.BWE.ID() == "" {
		t.Errorf("stats %+v, id %q", s, p.BWE.ID())
	}
	q, err := NewPeer(Config{}, webrtc.Configuration{})
	must(t, err)
	defer q.Close() //nolint:errcheck
	if q.BWE != nil {
		t.Error("an estimator without BWE")
	}
}

// TestRTXNACKFilter: a sequence number repaired over RTX leaves the NACKs; a NACK left empty is
// not sent; other RTCP passes.
func TestRTXNACKFilter(t *testing.T) {
	i, err := rtxNACKFilterFactory{}.NewInterceptor("")
	must(t, err)
	f := i.(*rtxNACKFilter)
	const media, rtx = 1111, 2222
	f.BindRemoteStream(&interceptor.StreamInfo{SSRC: media, MimeType: "video/VP8", ClockRate: 90000}, nil)
	raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: rtx, PayloadType: 97, SequenceNumber: 7}, Payload: []byte{0, 100, 0xAA}}).Marshal()
	must(t, err)
	reader := f.BindRemoteStream(&interceptor.StreamInfo{SSRC: rtx, MimeType: webrtc.MimeTypeRTX, ClockRate: 90000},
		interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(b, raw), a, nil
		}))
	if _, _, err := reader.Read(make([]byte, 1500), nil); err != nil {
		t.Fatal(err)
	}
	var written [][]rtcp.Packet
	w := f.BindRTCPWriter(interceptor.RTCPWriterFunc(func(p []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		written = append(written, p)
		return 0, nil
	}))
	nack := func(seqs ...uint16) *rtcp.TransportLayerNack {
		return &rtcp.TransportLayerNack{MediaSSRC: media, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	}
	_, _ = w.Write([]rtcp.Packet{nack(99, 100, 101)}, nil)
	_, _ = w.Write([]rtcp.Packet{nack(100)}, nil)
	_, _ = w.Write([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: media}, nack(100)}, nil)
	if len(written) != 2 || len(written[0]) != 1 || len(written[1]) != 1 {
		t.Fatalf("written %v", written)
	}
	var left []uint16
	for _, p := range written[0][0].(*rtcp.TransportLayerNack).Nacks {
		left = append(left, p.PacketList()...)
	}
	if !slices.Equal(left, []uint16{99, 101}) {
		t.Errorf("NACK left with %v", left)
	}
	if _, ok := written[1][0].(*rtcp.PictureLossIndication); !ok {
		t.Errorf("PLI: %v", written[1])
	}
}
