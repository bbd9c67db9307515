package media

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/netem"
)

// TestAudioBothWays: a 1 kHz tone from the client reaches the phone and a 440 Hz tone from the
// phone reaches the client, byte for byte, with the payload types of each negotiation; the SIP
// leg gets an SR every 5 s and the bridge reads the phone's RR.
func TestAudioBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}})
		const frames = 550 // 11 s: two SIP-leg report intervals
		var wg sync.WaitGroup
		ctx := context.Background()
		wg.Go(func() {
			sendTone(ctx, frames, 1000, func(i int, payload []byte) {
				h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(1000 + i), Timestamp: uint32(i * 160)}
				if err := c.clientAudio.WriteRTP(&h, payload); err != nil {
					t.Error(err)
				}
			})
		})
		phoneSSRC := uint32(0x1234)
		wg.Go(func() {
			sendTone(ctx, frames, 440, func(i int, payload []byte) {
				c.phoneAudio.send(t, c.audio.LocalAddr(), &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 0, SSRC: phoneSSRC, SequenceNumber: uint16(7000 + i), Timestamp: uint32(90000 + i*160)},
					Payload: payload,
				})
			})
		})
		wg.Wait()
		// The phone answers the bridge's last SR with an RR (LSR, DLSR): the bridge gets an RTT.
		var lastSR *rtcp.SenderReport
		for _, p := range c.phoneAudio.rtcpPackets() {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				lastSR = sr
			}
		}
		if lastSR == nil {
			t.Fatal("the phone got no SR")
		}
		lsr := uint32(lastSR.NTPTime >> 16)
		c.phoneAudio.sendRTCP(t, c.audio.LocalAddr(), &rtcp.ReceiverReport{SSRC: phoneSSRC, Reports: []rtcp.ReceptionReport{{
			SSRC: lastSR.SSRC, LastSenderReport: lsr, Delay: uint32(ntpTime(time.Now())>>16) - lsr, LastSequenceNumber: 1,
		}}})
		time.Sleep(200 * time.Millisecond)

		got := c.phoneAudio.packets()
		if len(got) != frames {
			t.Errorf("phone received %d packets, want %d", len(got), frames)
		}
		var payloads [][]byte
		for k, p := range got {
			if p.PayloadType != 0 || p.SSRC != c.audio.SSRC() {
				t.Fatalf("phone packet %d: pt %d ssrc %x, want pt 0 ssrc %x", k, p.PayloadType, p.SSRC, c.audio.SSRC())
			}
			i := int(p.SequenceNumber - got[0].SequenceNumber)
			if !bytes.Equal(p.Payload, toneFrame(1000, i)) {
				t.Fatalf("phone packet seq %d: payload differs from the client's frame %d", p.SequenceNumber, i)
			}
			payloads = append(payloads, p.Payload)
		}
		if f := estimateFrequency(payloads); f < 990 || f > 1010 {
			t.Errorf("phone hears %.0f Hz, want 1000", f)
		}

		back := c.clientPackets(webrtc.RTPCodecTypeAudio)
		if len(back) != frames {
			t.Errorf("client received %d packets, want %d", len(back), frames)
		}
		payloads = payloads[:0]
		for k, p := range back {
			if !bytes.Equal(p.Payload, toneFrame(440, k)) {
				t.Fatalf("client packet %d: payload differs from the phone's", k)
			}
			payloads = append(payloads, p.Payload)
		}
		if f := estimateFrequency(payloads); f < 435 || f > 445 {
			t.Errorf("client hears %.0f Hz, want 440", f)
		}

		var srs int
		for _, p := range c.phoneAudio.rtcpPackets() {
			sr, ok := p.(*rtcp.SenderReport)
			if !ok {
				continue
			}
			srs++
			if sr.SSRC != c.audio.SSRC() || len(sr.Reports) != 1 || sr.Reports[0].SSRC != phoneSSRC {
				t.Errorf("SR %v: want our SSRC and one report block about the phone", sr)
			}
		}
		if srs != 2 {
			t.Errorf("phone got %d SRs in 11 s, want 2 (every 5 s)", srs)
		}
		st := c.bridge.Stats().Audio
		if st.SIP.Received != frames || st.SIP.Sent != frames || st.WebRTC.Received != frames || st.WebRTC.Sent != frames {
			t.Errorf("counts: %+v", st)
		}
		if st.SIP.Lost != 0 || st.WebRTC.Lost != 0 || st.SIP.SRsSent != 2 || st.SIP.RTCPReceived != 1 {
			t.Errorf("loss/RTCP: %+v", st)
		}
		if st.SIP.RTT < 0 || st.SIP.RTT > 50*time.Millisecond || st.SIP.RTCPReceived == 0 {
			t.Errorf("SIP leg RTT %v from the phone's RR", st.SIP.RTT)
		}
		t.Logf("audio stats: webrtc %+v\nsip %+v", st.WebRTC, st.SIP)
	})
}

// TestSourceChangeKeepsClientStreamContinuous: after a re-INVITE the PBX's media comes from a
// new address with a new SSRC, sequence and timestamp base; the client sees one stream whose
// sequence numbers and timestamps simply continue.
func TestSourceChangeKeepsClientStreamContinuous(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}})
		send := func(from *rtpPeer, ssrc uint32, seq0 uint16, ts0 uint32, n int) {
			sendTone(context.Background(), n, 440, func(i int, payload []byte) {
				from.send(t, c.audio.LocalAddr(), &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 0, SSRC: ssrc, SequenceNumber: seq0 + uint16(i), Timestamp: ts0 + uint32(i*160)},
					Payload: payload,
				})
			})
		}
		send(c.phoneAudio, 0xaaaa, 65500, 4_000_000_000, 100) // wraps sequence and timestamp

		// Re-INVITE: the media moves to another port of the PBX with a new source.
		moved := newRTPPeer(t, c.pbxHost.Net, c.pbxHost.IP, phonePort+10, false)
		defer moved.close()
		c.audio.SetRemote(moved.addr(), netip.AddrPort{}, false)
		time.Sleep(60 * time.Millisecond) // a short gap, as a re-INVITE makes
		send(moved, 0xbbbb, 17, 123, 100)
		// A late packet of the old source is dropped, not spliced in.
		c.phoneAudio.send(t, c.audio.LocalAddr(), &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 0xaaaa, SequenceNumber: 65000}, Payload: make([]byte, 160)})
		time.Sleep(100 * time.Millisecond)

		got := c.clientPackets(webrtc.RTPCodecTypeAudio)
		if len(got) != 200 {
			t.Fatalf("client received %d packets, want 200", len(got))
		}
		for k := 1; k < len(got); k++ {
			prev, p := got[k-1], got[k]
			if p.SSRC != got[0].SSRC {
				t.Fatalf("packet %d: SSRC %x, want %x throughout", k, p.SSRC, got[0].SSRC)
			}
			if p.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("packet %d: seq %d after %d", k, p.SequenceNumber, prev.SequenceNumber)
			}
			step := p.Timestamp - prev.Timestamp
			want := uint32(160)
			if k == 100 {
				want = 160 + 60*8 // the gap's wall time
			}
			if step < want-8 || step > want+8 {
				t.Errorf("packet %d: timestamp step %d, want about %d", k, step, want)
			}
		}
		// Replies now go to the new address (latched).
		h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 1}
		must(t, c.clientAudio.WriteRTP(&h, make([]byte, 160)))
		time.Sleep(50 * time.Millisecond)
		if n := len(moved.packets()); n != 1 {
			t.Errorf("the moved PBX port got %d packets, want 1", n)
		}
		st := c.bridge.Stats().Audio.SIP
		if st.Sources != 2 || st.Dropped != 1 || st.Lost != 0 {
			t.Errorf("SIP leg: %d sources, %d dropped, %d lost; want 2, 1, 0", st.Sources, st.Dropped, st.Lost)
		}
	})
}

// TestDTMF: events generated by the bridge toward each leg are proper RFC 4733 (marker on the
// first packet, one timestamp, growing duration, three end packets) inside the leg's stream;
// events sent by either side are passed through with the other side's payload type and
// reported to the call layer.
func TestDTMF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}})
		clientTE := c.sel.Events[0].WebRTC.PayloadType
		ctx := context.Background()

		// Audio flows both ways while the digits go; each sender numbers its packets, audio and
		// events alike, in one sequence.
		var seqMu sync.Mutex
		var clientSeq, phoneSeq uint16 = 0, 500
		clientSend := func(pt uint8, marker bool, ts uint32, payload []byte) {
			seqMu.Lock()
			clientSeq++
			h := rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: clientSeq, Timestamp: ts}
			seqMu.Unlock()
			_ = c.clientAudio.WriteRTP(&h, payload)
		}
		phoneSend := func(pt uint8, marker bool, ts uint32, payload []byte) {
			seqMu.Lock()
			phoneSeq++
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SSRC: 77, SequenceNumber: phoneSeq, Timestamp: ts}, Payload: payload}
			seqMu.Unlock()
			c.phoneAudio.send(t, c.audio.LocalAddr(), p)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				clientSend(0, false, uint32(i*160), toneFrame(1000, i))
				phoneSend(0, false, uint32(i*160), toneFrame(440, i))
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		})
		time.Sleep(200 * time.Millisecond)
		must(t, c.audio.SendDTMF(ctx, LegSIP, '5', 160*time.Millisecond))
		must(t, c.audio.SendDTMF(ctx, LegWebRTC, '#', 100*time.Millisecond))

		// The phone sends '7' (RFC 4733, its payload type 101), the client sends '3'.
		for k, ev := range []telephoneEvent{{duration: 400}, {duration: 800}, {duration: 800, end: true}, {duration: 800, end: true}} {
			ev.code = 7
			phoneSend(101, k == 0, 99999, ev.marshalTo(nil))
			ev.code = 3
			clientSend(clientTE, k == 0, 5555, ev.marshalTo(nil))
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		time.Sleep(100 * time.Millisecond)

		checkEvents := func(name string, stream []rtp.Packet, pt uint8, code uint8, wantTicks uint16) {
			t.Helper()
			var evs []rtp.Packet
			for k, p := range stream {
				if k > 0 && p.SequenceNumber != stream[k-1].SequenceNumber+1 && p.PayloadType == pt {
					t.Errorf("%s: event packet seq %d after %d: not inside the stream", name, p.SequenceNumber, stream[k-1].SequenceNumber)
				}
				if p.PayloadType == pt {
					if e, _ := parseTelephoneEvent(p.Payload); e.code == code {
						evs = append(evs, p)
					}
				}
			}
			if len(evs) < 4 {
				t.Fatalf("%s: %d event packets", name, len(evs))
			}
			var ends int
			var last uint16
			for k, p := range evs {
				e, _ := parseTelephoneEvent(p.Payload)
				if p.Timestamp != evs[0].Timestamp || p.Marker != (k == 0) || e.duration < last {
					t.Errorf("%s: packet %d: ts %d marker %v duration %d", name, k, p.Timestamp, p.Marker, e.duration)
				}
				last = e.duration
				if e.end {
					ends++
					if e.duration != wantTicks {
						t.Errorf("%s: end duration %d, want %d", name, e.duration, wantTicks)
					}
				}
			}
			if ends != 3 || !func() bool { e, _ := parseTelephoneEvent(evs[len(evs)-3].Payload); return e.end }() {
				t.Errorf("%s: %d end packets, want the last 3", name, ends)
			}
		}
		sortBySeq := func(p []rtp.Packet) []rtp.Packet {
			slices.SortFunc(p, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
			return p
		}
		toPhone := sortBySeq(c.phoneAudio.packets())
		toClient := sortBySeq(c.clientPackets(webrtc.RTPCodecTypeAudio))
		checkEvents("generated to SIP", toPhone, 101, 5, 1280)
		checkEvents("generated to WebRTC", toClient, clientTE, 11, 800)
		countCode := func(pkts []rtp.Packet, code uint8) (n int) {
			for _, p := range pkts {
				if e, _ := parseTelephoneEvent(p.Payload); e.code == code {
					n++
				}
			}
			return n
		}
		if n := countCode(byPT(toPhone, 101), 3); n != 4 {
			t.Errorf("phone got %d packets of the client's '3', want 4", n)
		}
		if n := countCode(byPT(toClient, clientTE), 7); n != 4 {
			t.Errorf("client got %d packets of the phone's '7', want 4", n)
		}
		c.mu.Lock()
		got := slices.Clone(c.dtmf)
		c.mu.Unlock()
		slices.SortStableFunc(got, func(a, b DTMF) int { return int(a.From) - int(b.From) })
		want := []DTMF{
			{From: LegWebRTC, Digit: '3', Duration: 50 * time.Millisecond}, {From: LegWebRTC, Digit: '3', Duration: 100 * time.Millisecond, End: true},
			{From: LegSIP, Digit: '7', Duration: 50 * time.Millisecond}, {From: LegSIP, Digit: '7', Duration: 100 * time.Millisecond, End: true},
		}
		if !slices.Equal(got, want) {
			t.Errorf("events reported %+v, want %+v", got, want)
		}
		st := c.bridge.Stats().Audio
		if st.SIP.DTMFSent != 1 || st.WebRTC.DTMFSent != 1 || st.SIP.DTMFReceived != 1 || st.WebRTC.DTMFReceived != 1 {
			t.Errorf("DTMF counters: sip %+v webrtc %+v", st.SIP, st.WebRTC)
		}
	})
}

// TestHoldToWebRTC: while the client holds, the PBX's audio does not reach it; after the
// resume it does again, with no gap in the sequence numbers the client sees.
func TestHoldToWebRTC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}})
		send := func(from, n int) {
			for i := from; i < from+n; i++ {
				p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 77, SequenceNumber: uint16(1000 + i), Timestamp: uint32(i * 160)}, Payload: toneFrame(440, i)}
				c.phoneAudio.send(t, c.audio.LocalAddr(), p)
				time.Sleep(20 * time.Millisecond)
			}
		}
		send(0, 25)
		c.audio.HoldToWebRTC(true)
		send(25, 50)
		c.audio.HoldToWebRTC(false)
		send(75, 25)
		time.Sleep(100 * time.Millisecond)

		got := byPT(c.clientPackets(webrtc.RTPCodecTypeAudio), c.sel.Audio[0].WebRTC.PayloadType)
		if len(got) != 50 {
			t.Fatalf("the client got %d packets, want the 25 before the hold and the 25 after", len(got))
		}
		for k := 1; k < len(got); k++ {
			if got[k].SequenceNumber != got[k-1].SequenceNumber+1 {
				t.Fatalf("sequence %d after %d: a gap where the hold was", got[k].SequenceNumber, got[k-1].SequenceNumber)
			}
		}
		if ts := got[25].Timestamp - got[24].Timestamp; ts != 51*160 {
			t.Errorf("timestamp step over the hold %d, want %d (the time it lasted)", ts, 51*160)
		}
	})
}

// TestDTMFNoOverlap: an event the bridge generates and the client's own events never overlap
// in the SIP stream (RFC 4733 2.5.1): a forwarded event that starts while a generated one is
// sent ends the generated one first (end packets at the duration reached), and a generated
// event waits for a forwarded one to end.
func TestDTMFNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}})
		clientTE := c.sel.Events[0].WebRTC.PayloadType
		ctx := context.Background()
		var seq uint16
		clientEvent := func(code uint8, ts uint32, durations ...uint16) {
			for k, d := range durations {
				seq++
				ev := telephoneEvent{code: code, duration: d, end: k >= len(durations)-3}
				h := rtp.Header{Version: 2, PayloadType: clientTE, Marker: k == 0, SequenceNumber: seq, Timestamp: ts}
				_ = c.clientAudio.WriteRTP(&h, ev.marshalTo(nil))
				time.Sleep(20 * time.Millisecond)
			}
		}
		seq++
		_ = c.clientAudio.WriteRTP(&rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: 1}, toneFrame(1000, 0))
		time.Sleep(100 * time.Millisecond)

		// A 400 ms generated '5', and 120 ms into it the client's '3'.
		done := make(chan error, 1)
		go func() { done <- c.audio.SendDTMF(ctx, LegSIP, '5', 400*time.Millisecond) }()
		time.Sleep(120 * time.Millisecond)
		clientEvent(3, 8000, 160, 320, 480, 640, 640, 640)
		must(t, <-done)
		// The client's '9' goes on while the bridge is asked for an '8': the '8' waits.
		go func() { done <- c.audio.SendDTMF(ctx, LegSIP, '8', 100*time.Millisecond) }()
		clientEvent(9, 16000, 160, 320, 480, 640, 800, 960, 960, 960, 960)
		must(t, <-done)
		time.Sleep(100 * time.Millisecond)

		stream := byPT(c.phoneAudio.packets(), 101)
		slices.SortFunc(stream, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
		var order []string
		for _, p := range stream {
			e, _ := parseTelephoneEvent(p.Payload)
			digit := string(eventDigit(e.code))
			if e.end {
				digit += "/end"
			}
			if len(order) == 0 || order[len(order)-1] != digit {
				order = append(order, digit)
			}
		}
		want := []string{"5", "5/end", "3", "3/end", "9", "9/end", "8", "8/end"}
		if !slices.Equal(order, want) {
			t.Fatalf("events in the SIP stream: %v, want %v (no interleaving)", order, want)
		}
		for _, p := range stream {
			if e, _ := parseTelephoneEvent(p.Payload); e.code == 5 && e.end && (e.duration == 0 || e.duration >= 3200) {
				t.Errorf("the cut '5' ends at duration %d: want the duration reached (under 400 ms = 3200)", e.duration)
			}
		}
	})
}

// TestVideoPassthroughAndPLI: VP8 crosses both ways unchanged but for the payload type
// (client 96, PBX 100), and key-frame requests cross too: the PBX's RTCP PLI reaches the
// client's sender, the client's PLI reaches the PBX as RTCP PLI and the call layer's
// picture_fast_update callback.
func TestVideoPassthroughAndPLI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k, sipVP8}})
		if c.video == nil || c.clientVideo == nil {
			t.Fatal("no video stream")
		}
		clientPT := c.sel.Video[0].WebRTC.PayloadType
		frame := func(i int) []byte {
			b := make([]byte, 1000)
			b[0] = 0x10 // VP8 payload descriptor: start of partition
			for k := 1; k < len(b); k++ {
				b[k] = byte(i*7 + k)
			}
			return b
		}
		const n = 100
		tick := time.NewTicker(10 * time.Millisecond)
		for i := range n {
			h := rtp.Header{Version: 2, PayloadType: clientPT, Marker: true, SequenceNumber: uint16(i), Timestamp: uint32(i * 900)}
			must(t, c.clientVideo.WriteRTP(&h, frame(i)))
			c.phoneVideo.send(t, c.video.LocalAddr(), &rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 100, Marker: true, SSRC: 0x5678, SequenceNumber: uint16(3000 + i), Timestamp: uint32(i * 900)},
				Payload: frame(n + i),
			})
			<-tick.C
		}
		tick.Stop()
		time.Sleep(100 * time.Millisecond)

		toPhone := c.phoneVideo.packets()
		toClient := c.clientPackets(webrtc.RTPCodecTypeVideo)
		if len(toPhone) != n || len(toClient) != n {
			t.Fatalf("phone got %d, client got %d video packets, want %d each", len(toPhone), len(toClient), n)
		}
		for i := range n {
			if p := toPhone[i]; p.PayloadType != 100 || !p.Marker || !bytes.Equal(p.Payload, frame(i)) {
				t.Fatalf("phone packet %d: pt %d, payload equal %v", i, p.PayloadType, bytes.Equal(p.Payload, frame(i)))
			}
			if p := toClient[i]; p.PayloadType != clientPT || !bytes.Equal(p.Payload, frame(n+i)) {
				t.Fatalf("client packet %d: pt %d, payload equal %v", i, p.PayloadType, bytes.Equal(p.Payload, frame(n+i)))
			}
		}

		// PBX -> client.
		c.phoneVideo.sendRTCP(t, c.video.LocalAddr(), &rtcp.PictureLossIndication{SenderSSRC: 0x5678, MediaSSRC: c.video.SSRC()})
		// Client -> PBX.
		c.mu.Lock()
		remote := c.remoteTracks[webrtc.RTPCodecTypeVideo]
		c.mu.Unlock()
		must(t, c.client.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(remote.SSRC())}}))
		time.Sleep(100 * time.Millisecond)

		c.mu.Lock()
		var clientPLIs int
		for _, p := range c.clientRTCP {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok && pli.MediaSSRC == c.clientVideo.SSRC() {
				clientPLIs++
			}
		}
		pfu := c.pfu
		c.mu.Unlock()
		if clientPLIs != 1 {
			t.Errorf("client's video sender got %d PLIs, want 1", clientPLIs)
		}
		var phonePLIs int
		for _, p := range c.phoneVideo.rtcpPackets() {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok && pli.MediaSSRC == 0x5678 && pli.SenderSSRC == c.video.SSRC() {
				phonePLIs++
			}
		}
		if phonePLIs != 1 || pfu != 1 {
			t.Errorf("phone got %d PLIs and the call layer %d picture_fast_update, want 1 and 1", phonePLIs, pfu)
		}
		st := c.bridge.Stats()
		v := st.Video
		if v.SIP.PLIsReceived != 1 || v.WebRTC.PLIsSent != 1 || v.WebRTC.PLIsReceived != 1 || v.SIP.PLIsSent != 1 || st.Repair.PLIsSent != 1 || st.Repair.PLIsReceived != 1 {
			t.Errorf("PLI counters: video %+v, repair %+v", v, st.Repair)
		}
	})
}

// TestNACKRepairsAudioLossOnWebRTCLeg: with 5% loss each way on the client's access link (and
// 20 ms of delay), NACK and retransmission repair audio both ways, and the counters show it.
func TestNACKRepairsAudioLossOnWebRTCLeg(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		link := netem.LinkConfig{
			Loss:  netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05},
			Delay: netem.DelayModel{Base: 20 * time.Millisecond},
		}
		c := newCall(t, callOptions{sip: []rtc.Codec{sipPCMU, sipTE8k}, clientLink: link, seed: 3})
		frames := 1000
		if testing.Short() {
			frames = 250
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			sendTone(context.Background(), frames, 1000, func(i int, payload []byte) {
				h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160)}
				_ = c.clientAudio.WriteRTP(&h, payload)
				c.phoneAudio.send(t, c.audio.LocalAddr(), &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 0, SSRC: 9, SequenceNumber: uint16(i), Timestamp: uint32(i * 160)},
					Payload: payload,
				})
			})
		})
		wg.Wait()
		time.Sleep(time.Second) // retransmissions arrive

		unique := func(pkts []rtp.Packet) int {
			seen := map[uint16]bool{}
			for _, p := range pkts {
				seen[p.SequenceNumber] = true
			}
			return len(seen)
		}
		up, down := c.clientHost.Up.Stats(), c.clientHost.Down.Stats()
		toPhone, toClient := unique(c.phoneAudio.packets()), unique(c.clientPackets(webrtc.RTPCodecTypeAudio))
		st := c.bridge.Stats()
		t.Logf("dropped %d/%d up, %d/%d down; phone has %d/%d, client %d/%d; repair %+v; webrtc leg %+v",
			up.DroppedLoss, up.OfferedPackets, down.DroppedLoss, down.OfferedPackets, toPhone, frames, toClient, frames, st.Repair, st.Audio.WebRTC)
		if up.DroppedLoss == 0 || down.DroppedLoss == 0 {
			t.Fatal("the link dropped nothing: the test proves nothing")
		}
		// A loss among the last packets has no later packet to reveal it: allow two.
		if frames-toPhone > 2 || frames-toClient > 2 {
			t.Errorf("after NACK the phone misses %d and the client %d of %d packets", frames-toPhone, frames-toClient, frames)
		}
		r := st.Repair
		if r.NACKsSent == 0 || r.NACKsReceived == 0 || r.Retransmissions == 0 || r.NACKedReceived < r.Retransmissions/2 {
			t.Errorf("repair counters %+v: want NACKs both ways and retransmissions", r)
		}
		w := st.Audio.WebRTC
		if w.Late == 0 || w.Lost > 2 {
			t.Errorf("WebRTC leg: %d late (repairs arrive late), %d lost; want late > 0, lost <= 2", w.Late, w.Lost)
		}
		if r.TWCCFeedbackSent == 0 {
			t.Error("no TWCC feedback for the client's packets")
		}
		if w.RTT < 35*time.Millisecond || w.RTT > 50*time.Millisecond {
			t.Errorf("WebRTC leg RTT %v from the client's RR, want about 40 ms", w.RTT)
		}
	})
}

// TestOpusPayloadTypesMapped: the client's opus (111) and telephone-event/48000 (110) arrive
// at a PBX that numbers them 107 and 106, and back; generated DTMF runs on Opus's 48 kHz clock.
func TestOpusPayloadTypesMapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCall(t, callOptions{sip: []rtc.Codec{sipOpus, sipTE48k}})
		if got := c.sel.Audio[0]; got.WebRTC.PayloadType != 111 || got.SIP.PayloadType != 107 {
			t.Fatalf("selected %v", got)
		}
		tick := time.NewTicker(20 * time.Millisecond)
		for i := range 20 {
			payload := []byte{0xfc, byte(i), 1, 2, 3}
			h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}
			must(t, c.clientAudio.WriteRTP(&h, payload))
			c.phoneAudio.send(t, c.audio.LocalAddr(), &rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 107, SSRC: 1, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)},
				Payload: payload,
			})
			<-tick.C
		}
		tick.Stop()
		must(t, c.audio.SendDTMF(context.Background(), LegSIP, '9', 100*time.Millisecond))
		time.Sleep(50 * time.Millisecond)

		toPhone := c.phoneAudio.packets()
		if n := len(byPT(toPhone, 107)); n != 20 {
			t.Errorf("phone got %d opus packets as 107, want 20", n)
		}
		events := byPT(toPhone, 106)
		if len(events) != 4 {
			t.Fatalf("phone got %d telephone-event/48000 packets (106), want 4", len(events))
		}
		if e, _ := parseTelephoneEvent(events[3].Payload); !e.end || e.duration != 4800 || e.code != 9 {
			t.Errorf("last event packet %+v, want end of 9 after 4800 ticks (100 ms at 48 kHz)", e)
		}
		if n := len(byPT(c.clientPackets(webrtc.RTPCodecTypeAudio), 111)); n != 20 {
			t.Errorf("client got %d opus packets as 111, want 20", n)
		}
	})
}
