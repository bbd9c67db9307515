package call

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/media"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// Direction says which side placed a call.
type Direction string

// The directions of a call.
const (
	// Outbound calls are placed by a WebRTC client to a SIP number.
	Outbound Direction = "webrtc-to-sip"
	// Inbound calls come from SIP for a WebRTC user.
	Inbound Direction = "sip-to-webrtc"
)

// Outcome is how a call ended, for metrics.
type Outcome string

// The outcomes.
const (
	OutcomeAnswered Outcome = "answered"
	OutcomeRefused  Outcome = "refused"
	OutcomeCanceled Outcome = "canceled"
	OutcomeOffline  Outcome = "offline"
	OutcomeNoCodec  Outcome = "no_common_codec"
	OutcomeFailed   Outcome = "failed"
)

// fastUpdateInterval is the shortest time between two SIP INFO picture_fast_update of a call.
const fastUpdateInterval = 500 * time.Millisecond

// The body of a SIP INFO asking for a key frame (RFC 5168).
const pictureFastUpdate = `<?xml version="1.0" encoding="utf-8" ?><media_control><vc_primitive><to_encoder><picture_fast_update></picture_fast_update></to_encoder></vc_primitive></media_control>`

var errNotEstablished = &signaling.Error{Code: signaling.CodeInvalidState, Message: "the call is not established"}

// Call is one call: a SIP dialog, a signalling invitation and a media bridge.
type Call struct {
	m       *Manager
	log     *slog.Logger
	id      string // the signalling call id
	dir     Direction
	user    string // the WebRTC user
	remote  string // the SIP party: the number dialled, or the caller
	account string

	li *signaling.LocalInvitation
	ri *signaling.RemoteInvitation
	in *sipua.Incoming

	peer    *rtc.Peer
	bridge  *media.Bridge
	streams map[webrtc.RTPCodecType]*media.Stream
	sess    sipSession

	// webrtcOffer is the client's offer (outbound); sipOffer the PBX's (inbound).
	webrtcOffer webrtc.SessionDescription
	sipOffer    []sipMedia

	ctx    context.Context // ends with the call: cancels a pending INVITE
	cancel context.CancelFunc
	done   chan struct{}

	// fastUpdates paces the SIP INFO picture_fast_update sent for the client's key-frame
	// requests (every PLI or FIR would be one).
	fastUpdates throttle

	mu        sync.Mutex
	session   string // the signalling session holding the call
	sel       *rtc.Selection
	answered  bool // the WebRTC side has its answer (outbound)
	dialog    *sipua.Dialog
	sipCallID string
	start     time.Time
	answer    time.Time
	ended     bool
	ending    ending
	endAt     time.Time
	// sipDirs is the direction the gateway last offered the SIP side per stream, following the
	// client's hold and resume (absent: sendrecv); answers to the PBX's offers never exceed it.
	sipDirs map[webrtc.RTPCodecType]string
}

// ending says how a call ends and what each side must be told.
type ending struct {
	reason  string
	code    int  // the SIP status for the record
	reject  int  // an incoming call not answered yet gets this final response
	bye     bool // an established dialog gets a BYE (false: the peer sent it)
	outcome Outcome
	// tellClient ends the invitation on the client side too (hangup event, FAILURE, ...):
	// set when SIP or the media ended the call, not the client.
	tellClient bool
	failure    signaling.FailureCode // outbound, not answered: FAILURE with this code
	refused    bool                  // outbound, not answered: REFUSED_BY_REMOTE
}

func newCall(m *Manager, dir Direction, user, remote, account string) *Call {
	ctx, cancel := context.WithCancel(m.ctx)
	var b [16]byte
	_, _ = rand.Read(b[:])
	c := &Call{
		m: m, dir: dir, user: user, remote: remote, account: account,
		streams: map[webrtc.RTPCodecType]*media.Stream{},
		ctx:     ctx, cancel: cancel, done: make(chan struct{}),
		start: time.Now(),
	}
	// The SIP leg's CNAME (SDP a=ssrc and RTCP SDES) is random per call (RFC 7022): known before
	// the signalling id, which an inbound call only gets once the invitation is delivered.
	c.sess = sipSession{ip: m.sdpIP(), id: binary.BigEndian.Uint64(b[:8]) >> 2,
		cname: fmt.Sprintf("siprtc-%016x", binary.BigEndian.Uint64(b[8:]))}
	c.log = m.log.With("dir", string(dir), "user", user, "remote", remote, "account", account)
	return c
}

// ID is the call's signalling id.
func (c *Call) ID() string { return c.id }

// Direction is who placed the call.
func (c *Call) Direction() Direction { return c.dir }

// Done is closed once the call is torn down.
func (c *Call) Done() <-chan struct{} { return c.done }

// Stats is a snapshot of the call's media counters.
func (c *Call) Stats() media.Stats {
	if c.bridge == nil {
		return media.Stats{}
	}
	return c.bridge.Stats()
}

func (c *Call) sessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *Call) currentDialog() *sipua.Dialog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialog
}

func (c *Call) selection() *rtc.Selection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sel
}

// hangup ends the call from the gateway (shutdown): every side is told.
func (c *Call) hangup(reason string) {
	c.end(ending{reason: reason, code: 0, reject: 503, bye: true, outcome: OutcomeFailed, tellClient: true, failure: signaling.PeerOffline})
}

// end ends the call once, whoever ends it: the pending INVITE is cancelled at once, and the
// rest (BYE or final response, the client's event, media teardown, the record) runs on a
// tracked goroutine, so that callers never wait for the network.
func (c *Call) end(e ending) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.ending, c.endAt = true, e, time.Now()
	c.mu.Unlock()
	c.cancel()
	c.m.goTrack(func() { c.teardown(e) })
}

func (c *Call) teardown(e ending) {
	if e.tellClient {
		c.tellClient(e)
	}
	if c.in != nil && e.reject != 0 {
		if err := c.in.Reject(e.reject, reasonPhrase(e.reject)); err != nil && !errors.Is(err, sipua.ErrFinalized) && !errors.Is(err, sipua.ErrCanceled) {
			c.log.Debug("final response not sent", "code", e.reject, "err", err)
		}
	}
	if d := c.currentDialog(); d != nil && e.bye {
		ctx, cancel := context.WithTimeout(context.Background(), c.m.cfg.HangupTimeout)
		if err := d.Hangup(ctx); err != nil {
			c.log.Debug("BYE", "err", err)
		}
		cancel()
	}
	if c.peer != nil {
		if err := c.peer.Close(); err != nil {
			c.log.Debug("peer close", "err", err)
		}
	}
	if c.bridge != nil {
		if err := c.bridge.Close(); err != nil {
			c.log.Debug("bridge close", "err", err)
		}
	}
	// The final counters leave the live calls and reach OnEnd in one step, so that Observe
	// never sees a call twice or not at all.
	c.m.statsMu.Lock()
	rec := c.record(c.Stats())
	if c.m.cfg.OnEnd != nil {
		c.m.cfg.OnEnd(rec)
	}
	c.m.remove(c) // after OnEnd: once Active is 0, every record is out
	c.m.statsMu.Unlock()
	c.log.Info("call ended", "reason", rec.EndReason, "sip_code", rec.SIPCode, "outcome", rec.Outcome, "duration", rec.Duration)
	close(c.done)
}

// tellClient ends the invitation on the client's side, as SIP or the media ended the call.
func (c *Call) tellClient(e ending) {
	reason := e.reason
	switch {
	case c.li != nil:
		switch c.li.State() {
		case signaling.LocalAcceptedByRemote:
			_ = c.li.Hangup(reason, e.code)
		case signaling.LocalSentToRemote, signaling.LocalReceivedByRemote, signaling.LocalIdle:
			if e.refused {
				_ = c.li.Refused(e.code, reason)
				return
			}
			code := e.failure
			if code == "" {
				code = signaling.PeerOffline
			}
			_ = c.li.Fail(code, e.code, reason)
		}
	case c.ri != nil:
		switch c.ri.State() {
		case signaling.RemoteAccepted:
			_ = c.ri.Hangup(reason, e.code)
		case signaling.RemoteAcceptSentToLocal:
			if c.currentDialog() == nil {
				_ = c.ri.Fail(signaling.AcceptFailure, e.code, reason)
				return
			}
			_ = c.ri.Hangup(reason, e.code)
		case signaling.RemoteIdle, signaling.RemoteInvitationReceived:
			if e.code == 487 {
				_ = c.ri.Cancel(reason)
				return
			}
			_ = c.ri.Fail(signaling.AcceptFailure, e.code, reason)
		}
	}
}

// setDialog records the established dialog; false when the call ended meanwhile (the caller
// hangs the dialog up).
func (c *Call) setDialog(d *sipua.Dialog) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialog, c.sipCallID = d, d.CallID()
	if c.ended {
		return false
	}
	c.answer = time.Now()
	if c.m.cfg.OnAnswer != nil {
		c.m.cfg.OnAnswer(c.dir, c.answer.Sub(c.start))
	}
	return true
}

// watchDialog ends the call when the SIP side ends the dialog.
func (c *Call) watchDialog(d *sipua.Dialog) {
	c.m.goTrack(func() {
		select {
		case <-d.Done():
		case <-c.ctx.Done():
			return
		}
		switch d.Reason() {
		case sipua.EndedByPeer:
			c.end(ending{reason: "BYE", outcome: OutcomeAnswered, tellClient: true})
		case sipua.EndedSessionExpired:
			c.end(ending{reason: "SIP session expired", outcome: OutcomeAnswered, tellClient: true})
		case sipua.EndedNoAck:
			c.end(ending{reason: "no ACK for the 200", code: 408, outcome: OutcomeFailed, tellClient: true})
		default:
			c.end(ending{reason: "dialog ended: " + d.Reason().String(), outcome: OutcomeAnswered, tellClient: true})
		}
	})
}

// dialogHandler reacts to the PBX's in-dialog requests: re-INVITE/UPDATE offers (hold,
// resume, a new media address), DTMF and picture_fast_update INFO.
func (c *Call) dialogHandler() sipua.DialogHandler {
	return sipua.DialogHandler{
		Offer: c.reoffer,
		DTMF: func(d sipua.DTMF) {
			c.toClientDTMF(string(d.Digit), d.Duration)
		},
		Info: func(contentType string, body []byte) {
			if strings.Contains(string(body), "picture_fast_update") {
				if v := c.streams[webrtc.RTPCodecTypeVideo]; v != nil {
					v.RequestKeyFrame()
				}
			}
		},
	}
}

// reoffer answers a re-INVITE or UPDATE of the PBX: the bridge follows the new addresses (and
// keeps its own), the answer mirrors the offer's direction.
func (c *Call) reoffer(offer []byte) ([]byte, error) {
	ms, err := parseSIPSDP(offer)
	if err != nil {
		return nil, err
	}
	next, err := c.rematch(ms)
	if err != nil {
		return nil, err
	}
	hold := false
	streams := make([]sdpStream, 0, len(ms))
	for _, m := range ms {
		kind := webrtc.NewRTPCodecType(m.kind)
		st := c.streams[kind]
		pairs := next.Pairs(kind)
		if st == nil || m.rejected() || len(pairs) == 0 {
			streams = append(streams, sdpStream{kind: m.kind, formats: m.formats})
			continue
		}
		if m.onHold() {
			hold = true
		}
		if m.rtp.Addr().IsValid() && !m.rtp.Addr().IsUnspecified() {
			st.SetRemote(m.rtp, m.rtcp, m.rtcpMux)
		}
		if err := st.SetCodecs(pairs); err != nil {
			return nil, err
		}
		streams = append(streams, sdpStream{kind: m.kind, port: st.LocalAddr().Port(), codecs: sipCodecs(pairs), direction: c.answerDirection(kind, m.direction), ssrc: st.SSRC()})
	}
	c.mu.Lock()
	c.sel = next
	c.mu.Unlock()
	c.log.Info("SIP re-offer", "call", c.id, "hold", hold)
	return c.render(streams), nil
}

// onMediaDTMF sees the RFC 4733 events of both legs. A client's digit the SIP side cannot take
// in RTP (no telephone-event there: the bridge consumed the event and flags it SIPInfo) goes
// as SIP INFO; a digit from the SIP side is also told to the client as a dtmf event.
func (c *Call) onMediaDTMF(kind webrtc.RTPCodecType, ev media.DTMF) {
	if !ev.End {
		return
	}
	switch ev.From {
	case media.LegWebRTC:
		if !ev.SIPInfo {
			return // the bridge forwards the events themselves
		}
		if d := c.currentDialog(); d != nil {
			c.m.goTrack(func() {
				ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
				defer cancel()
				if err := d.SendDTMF(ctx, sipua.DTMF{Digit: ev.Digit, Duration: ev.Duration}); err != nil {
					c.log.Debug("DTMF INFO", "err", err)
				}
			})
		}
	case media.LegSIP:
		c.toClientDTMF(string(ev.Digit), ev.Duration)
	}
}

// toClientDTMF sends a digit from the SIP side to the client as a dtmf event.
func (c *Call) toClientDTMF(digit string, d time.Duration) {
	if d < signaling.MinDTMFDuration {
		d = signaling.DefaultDTMFDuration
	}
	ev := signaling.DTMF{Digit: digit, Duration: d}
	var err error
	switch {
	case c.li != nil:
		err = c.li.SendDTMF(ev)
	case c.ri != nil:
		err = c.ri.SendDTMF(ev)
	}
	if err != nil {
		c.log.Debug("DTMF to the client", "err", err)
	}
}

// sipHasTelephoneEvent reports whether the SIP side negotiated telephone-event at the clock
// of the audio it receives.
func (c *Call) sipHasTelephoneEvent() bool {
	sel := c.selection()
	if sel == nil || len(sel.Audio) == 0 {
		return false
	}
	for _, e := range sel.Events {
		if e.SIP.ClockRate == sel.Audio[0].SIP.ClockRate {
			return true
		}
	}
	return false
}

// sendDTMF sends a digit of the client to the SIP side.
func (c *Call) sendDTMF(digit rune, d time.Duration) error {
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	dlg := c.currentDialog()
	if dlg == nil {
		return errNotEstablished
	}
	audio := c.streams[webrtc.RTPCodecTypeAudio]
	if c.sipHasTelephoneEvent() && audio != nil {
		c.m.goTrack(func() {
			if err := audio.SendDTMF(c.ctx, media.LegSIP, digit, d); err != nil {
				c.log.Debug("DTMF RFC 4733", "err", err)
			}
		})
		return nil
	}
	c.m.goTrack(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		if err := dlg.SendDTMF(ctx, sipua.DTMF{Digit: digit, Duration: d}); err != nil {
			c.log.Debug("DTMF INFO", "err", err)
		}
	})
	return nil
}

// onPictureFastUpdate passes the client's key-frame request to the SIP side as SIP INFO (the
// bridge already sent an RTCP PLI on the SIP leg), at most one per fastUpdateInterval: a
// receiver repeats its PLIs until the key frame comes, and one INFO asks for it already.
func (c *Call) onPictureFastUpdate() {
	d := c.currentDialog()
	if d == nil || !c.fastUpdates.allow(time.Now(), fastUpdateInterval) {
		return
	}
	c.m.goTrack(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		if err := d.SendInfo(ctx, "application/media_control+xml", []byte(pictureFastUpdate)); err != nil {
			c.log.Debug("picture_fast_update INFO", "err", err)
		}
	})
}

// clientSDP takes a description the client sends outside invite and accept.
func (c *Call) clientSDP(d signaling.SessionDescription) error {
	pc := c.peer
	switch d.Type {
	case "answer":
		if pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
			return &signaling.Error{Code: signaling.CodeInvalidState, Message: "no offer of the gateway waits for an answer"}
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
			return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "answer not taken: " + err.Error()}
		}
		return nil
	case "offer":
		if c.selection() == nil || pc.RemoteDescription() == nil {
			return &signaling.Error{Code: signaling.CodeInvalidState, Message: "the call is not set up yet"}
		}
		undo, err := c.followClientDirection(d.SDP)
		if err != nil {
			return err
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
			undo()
			return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "offer not taken: " + err.Error()}
		}
		if err := rtc.PreferCodecs(pc.PeerConnection, c.selection()); err != nil {
			return err
		}
		answer, err := c.localDescription(false)
		if err != nil {
			return err
		}
		return c.sendSDP(answer)
	}
	return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "description type " + d.Type + " is not supported here"}
}

// localDescription creates the gateway's offer or answer, waits for its candidates (host
// candidates only: no trickle from the gateway) and returns it.
func (c *Call) localDescription(offer bool) (webrtc.SessionDescription, error) {
	pc := c.peer.PeerConnection
	var (
		d   webrtc.SessionDescription
		err error
	)
	if offer {
		d, err = pc.CreateOffer(nil)
	} else {
		d, err = pc.CreateAnswer(nil)
	}
	if err != nil {
		return d, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return d, err
	}
	select {
	case <-gathered:
	case <-c.ctx.Done():
		return d, c.ctx.Err()
	}
	// The Peer's description: it signals the audio RTX stream pion leaves out (rtc.Peer).
	return *c.peer.LocalDescription(), nil
}

func (c *Call) sendSDP(d webrtc.SessionDescription) error {
	sd := signaling.SessionDescription{Type: d.Type.String(), SDP: d.SDP}
	if c.li != nil {
		return c.li.SendSDP(sd)
	}
	return c.ri.SendSDP(sd)
}

// sipStreams describes the SIP legs for an offer: every stream of the selection.
func (c *Call) sipStreams(sel *rtc.Selection) []sdpStream {
	var out []sdpStream
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		st := c.streams[kind]
		if st == nil {
			continue
		}
		out = append(out, sdpStream{kind: kind.String(), port: st.LocalAddr().Port(), codecs: sipCodecs(sel.Pairs(kind)), ssrc: st.SSRC()})
	}
	return out
}

// addStreams opens the bridge's streams of sel.
func (c *Call) addStreams(sel *rtc.Selection) error {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		pairs := sel.Pairs(kind)
		if len(pairs) == 0 {
			continue
		}
		st, err := c.bridge.AddStream(kind, pairs)
		if err != nil {
			return err
		}
		c.streams[kind] = st
	}
	return nil
}

// applyRemote points the bridge's streams at the PBX's media and installs the final codecs.
func (c *Call) applyRemote(ms []sipMedia, sel *rtc.Selection) error {
	for kind, st := range c.streams {
		m, ok := firstOf(ms, kind)
		pairs := sel.Pairs(kind)
		if !ok || len(pairs) == 0 {
			continue
		}
		if m.rtp.Addr().IsValid() && !m.rtp.Addr().IsUnspecified() {
			st.SetRemote(m.rtp, m.rtcp, m.rtcpMux)
		}
		if err := st.SetCodecs(pairs); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.sel = sel
	c.mu.Unlock()
	return nil
}

func reasonPhrase(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Error"
}

// throttle lets an action through at most once per interval.
type throttle struct {
	mu   sync.Mutex
	last time.Time
}

// allow reports whether the action may run at now, and if so counts it as run.
func (t *throttle) allow(now time.Time, interval time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < interval {
		return false
	}
	t.last = now
	return true
}
