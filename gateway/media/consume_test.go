package media

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// TestClientEventsWithoutSIPTelephoneEvent: when the SIP side negotiated no telephone-event,
// the client's RFC 4733 packets are consumed by the WebRTC -> SIP chain, each event is reported
// once (at its end, SIPInfo set, whatever the three end packets), the audio around it reaches
// the SIP leg intact, and the SIP leg's sequence numbers have no gap (a late audio packet from
// before the event keeps its own number).
func TestClientEventsWithoutSIPTelephoneEvent(t *testing.T) {
	n, err := stdnet.NewNet()
	must(t, err)
	lo := netip.MustParseAddr("127.0.0.1")
	phone := newRTPPeer(t, n, lo, 0, false)
	defer phone.close()
	leg, err := openSIPLeg(n, lo, 0, 0)
	must(t, err)
	defer func() { _ = leg.close() }()
	leg.setRemote(phone.addr(), netip.AddrPort{}, false)

	var mu sync.Mutex
	var reports []DTMF
	s := &Stream{
		b: &Bridge{cfg: Config{OnDTMF: func(_ webrtc.RTPCodecType, ev DTMF) {
			mu.Lock()
			reports = append(reports, ev)
			mu.Unlock()
		}}},
		kind: webrtc.RTPCodecTypeAudio, sip: leg, sipSSRC: 42,
	}
	clientPCMU := rtc.Codec{Name: "PCMU", ClockRate: 8000, PayloadType: 0}
	clientTE := rtc.Codec{Name: "telephone-event", ClockRate: 8000, PayloadType: 126, Fmtp: "0-16"}
	tables, err := newCodecTables([]rtc.Pair{{WebRTC: clientPCMU, SIP: sipPCMU}, {WebRTC: clientTE}})
	must(t, err)
	s.codecs.Store(tables)
	s.toSIP.rw.ssrc = s.sipSSRC
	s.pipeline()

	t0 := time.Now()
	audio := func(seq uint16) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: seq, Timestamp: uint32(seq) * 160}, Payload: slices.Repeat([]byte{byte(seq)}, 160)}
		b, err := p.Marshal()
		must(t, err)
		s.toSIP.deliver(b, t0, netip.AddrPort{}, false)
	}
	event := func(seq uint16, ts uint32, ev telephoneEvent, marker bool) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: seq, Timestamp: ts, Marker: marker, PayloadType: 126}, Payload: ev.marshalTo(nil)}
		b, err := p.Marshal()
		must(t, err)
		s.toSIP.deliver(b, t0, netip.AddrPort{}, false)
	}
	// Audio 1000-1004 (1003 held back), digit 5 in 1005-1011 (three end packets), the held
	// packet, audio 1012-1016, digit # in 1017-1021 (its first end packet lost), audio 1023-1024.
	for _, q := range []uint16{1000, 1001, 1002, 1004} {
		audio(q)
	}
	for i, d := range []uint16{160, 320, 480, 640} {
		event(1005+uint16(i), 1005*160, telephoneEvent{code: 5, volume: 10, duration: d}, i == 0)
	}
	for i := range 3 {
		event(1009+uint16(i), 1005*160, telephoneEvent{code: 5, volume: 10, duration: 800, end: true}, false)
	}
	audio(1003) // late: from before the event
	for q := uint16(1012); q <= 1016; q++ {
		audio(q)
	}
	for i, d := range []uint16{400, 800} {
		event(1017+uint16(i), 1017*160, telephoneEvent{code: 11, duration: d}, i == 0)
	}
	for _, q := range []uint16{1020, 1021} { // 1019 lost
		event(q, 1017*160, telephoneEvent{code: 11, duration: 960, end: true}, false)
	}
	audio(1022)
	audio(1023)

	// 5 + 5 + 2 audio packets: 1000..1011 without a gap (the lost 1019 was a packet of the
	// event: no hole for it either).
	const want = 12
	deadline := time.Now().Add(3 * time.Second)
	for len(phone.packets()) < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := phone.packets()
	if len(got) != want {
		t.Fatalf("the phone got %d packets, want %d", len(got), want)
	}
	var seqs []uint16
	for _, p := range got {
		if p.PayloadType != 0 || p.SSRC != 42 || len(p.Payload) != 160 {
			t.Errorf("packet %d: pt %d ssrc %d len %d, want PCMU audio of ssrc 42", p.SequenceNumber, p.PayloadType, p.SSRC, len(p.Payload))
			continue
		}
		// The payload names the client's sequence number; the timestamp is unchanged.
		if in := uint16(p.Payload[0]) | uint16(p.Timestamp/160)&0xff00; p.Timestamp != uint32(in)*160 {
			t.Errorf("packet %d: timestamp %d does not match its payload", p.SequenceNumber, p.Timestamp)
		}
		seqs = append(seqs, p.SequenceNumber)
	}
	wantOrder := []uint16{1000, 1001, 1002, 1004, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011}
	if !slices.Equal(seqs, wantOrder) {
		t.Errorf("SIP leg sequence numbers %v, want %v (contiguous, the late packet in its place)", seqs, wantOrder)
	}
	// Audio 1012 went out as 1005: its payload says so.
	if p := got[5]; p.Payload[0] != byte(1012&0xff) {
		t.Errorf("SIP 1005 carries client packet %d, want 1012", p.Payload[0])
	}

	mu.Lock()
	defer mu.Unlock()
	wantReports := []DTMF{
		{From: LegWebRTC, Digit: '5', Duration: 100 * time.Millisecond, End: true, SIPInfo: true},
		{From: LegWebRTC, Digit: '#', Duration: 120 * time.Millisecond, End: true, SIPInfo: true},
	}
	if !slices.Equal(reports, wantReports) {
		t.Errorf("reports %+v, want %+v", reports, wantReports)
	}
	if s.toSIP.dtmfIn != 2 {
		t.Errorf("%d events counted, want 2", s.toSIP.dtmfIn)
	}
}

// TestRewriterSkip: closed gaps are forgotten once no late packet can refer to them, so the
// wrapping comparisons stay right over a long call.
func TestRewriterSkip(t *testing.T) {
	r := rewriter{ssrc: 1}
	at := time.Unix(0, 0)
	seq := uint16(0)
	var out uint16
	for i := range 70000 {
		h := rtp.Header{SSRC: 9, SequenceNumber: seq}
		if i%50 == 49 {
			r.skip(&h)
		} else {
			p := &Packet{Header: h, Arrival: at}
			must(t, r.rewrite(p, 8000))
			if i > 0 && p.Header.SequenceNumber != out+1 {
				t.Fatalf("input %d: output %d after %d", seq, p.Header.SequenceNumber, out)
			}
			out = p.Header.SequenceNumber
		}
		seq++
	}
}
