package call

import (
	"context"
	"errors"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// HandleIncoming takes a SIP call for a WebRTC user (install it with sipua.UA.OnIncoming):
// the call is routed (X-Number on the proxy account, the holder of a pool account), the
// gateway offers the client what both sides can carry, and the call is answered only when the
// client accepts. It returns once the invitation is delivered; the UA holds the INVITE until
// the call is settled.
func (m *Manager) HandleIncoming(in *sipua.Incoming) {
	reject := func(code int, why string, args ...any) {
		m.log.Info("incoming call rejected", append([]any{"account", in.Account(), "code", code, "why", why}, args...)...)
		if err := in.Reject(code, reasonPhrase(code)); err != nil {
			m.log.Debug("reject", "err", err)
		}
	}
	srv := m.srv.Load()
	if !m.Accepting() || srv == nil {
		reject(503, "not accepting calls")
		return
	}
	user, ok := m.routeIncoming(in)
	if !ok {
		reject(404, "no WebRTC user for this call (X-Number missing or unknown account)", "x_number", in.Header("X-Number"))
		return
	}
	req := in.Request()
	caller := "anonymous"
	if f := req.From(); f != nil && f.Address.User != "" {
		caller = f.Address.User
	}
	if len(in.Offer()) == 0 {
		reject(488, "INVITE without an SDP offer")
		return
	}
	ms, err := parseSIPSDP(in.Offer())
	if err != nil {
		reject(488, "unusable SDP offer", "err", err)
		return
	}
	sel, err := m.cfg.RTC.Match(m.supported, codecsOf(ms))
	if err != nil {
		reject(488, "no common codec", "err", err)
		return
	}

	c := newCall(m, Inbound, user, caller, in.Account())
	c.in, c.sipOffer = in, ms
	if cid := req.CallID(); cid != nil {
		c.sipCallID = cid.Value()
		// The signalling id comes with the delivery, after the bridge exists: until then (and in
		// the bridge's log) the SIP Call-ID names the call.
		c.log = c.log.With("sip_call_id", c.sipCallID)
	}
	if err := m.newPeer(c); err != nil {
		c.log.Error("peer", "err", err)
		reject(500, "no peer")
		return
	}
	abort := func(code int, why string, err error) {
		_ = c.peer.Close()
		_ = c.bridge.Close()
		c.cancel()
		reject(code, why, "err", err)
	}
	if err := c.addStreams(sel); err != nil {
		abort(500, "bridge streams", err)
		return
	}
	if err := c.applyRemote(ms, sel); err != nil {
		abort(500, "bridge codecs", err)
		return
	}
	if err := rtc.PreferCodecs(c.peer.PeerConnection, sel); err != nil {
		abort(500, "codec preferences", err)
		return
	}
	offer, err := c.localDescription(true)
	if err != nil {
		abort(500, "WebRTC offer", err)
		return
	}

	m.deliverMu.Lock()
	ri, err := srv.DeliverInvitation(signaling.IncomingInvitation{
		Caller: caller, Callee: user, Offer: &signaling.SessionDescription{Type: "offer", SDP: offer.SDP},
	})
	if err != nil {
		m.deliverMu.Unlock()
		var perr *signaling.Error
		switch {
		case errors.Is(err, signaling.ErrBusy):
			abort(486, "callee busy", err)
		case errors.As(err, &perr):
			abort(404, "not a valid callee", err)
		case errors.Is(err, signaling.ErrServerClosed):
			abort(503, "signalling closed", err)
		default:
			abort(500, "delivery failed", err)
		}
		return
	}
	c.id, c.ri = ri.CallID(), ri
	c.log = c.log.With("call", c.id)
	err = m.add(c)
	m.deliverMu.Unlock()
	if err != nil {
		c.end(ending{reason: "gateway shutting down", code: 503, reject: 503, outcome: OutcomeFailed, tellClient: true})
		return
	}
	c.log.Info("incoming call delivered")
	m.goTrack(func() {
		select {
		case <-in.Cancelled():
			c.end(ending{reason: "canceled by the caller", code: 487, outcome: OutcomeCanceled, tellClient: true})
		case <-c.ctx.Done():
		}
	})
}

// accept answers the SIP side once the client has accepted with its SDP answer: 200 OK now,
// ACCEPTED at the ACK.
func (c *Call) accept(s *signaling.Session, answer *signaling.SessionDescription) error {
	fail := func(code int, msg string) error {
		c.end(ending{reason: "accept failed: " + msg, code: code, reject: code, outcome: OutcomeNoCodec})
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: msg}
	}
	if answer == nil || answer.Type != "answer" {
		return fail(500, "an accept needs the client's SDP answer (description of type answer)")
	}
	c.mu.Lock()
	c.session = s.ID()
	c.mu.Unlock()
	wAnswer := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}
	if err := c.peer.SetRemoteDescription(wAnswer); err != nil {
		return fail(488, "answer not taken: "+err.Error())
	}
	codecs, err := webrtcCodecsOf(wAnswer)
	if err != nil {
		return fail(488, "unusable answer")
	}
	sel, err := c.m.cfg.RTC.Match(codecs, codecsOf(c.sipOffer))
	if err != nil {
		return fail(488, "no common codec in the answer")
	}
	if err := c.applyRemote(c.sipOffer, sel); err != nil {
		return fail(500, "bridge codecs")
	}
	// The SIP answer mirrors the offer's m-lines: the first audio and video ones carry the
	// selection, every other one is refused.
	used := map[string]bool{}
	streams := make([]sdpStream, 0, len(c.sipOffer))
	for _, m := range c.sipOffer {
		kind := webrtc.NewRTPCodecType(m.kind)
		st, pairs := c.streams[kind], sel.Pairs(kind)
		if st == nil || m.rejected() || len(pairs) == 0 || used[m.kind] {
			streams = append(streams, sdpStream{kind: m.kind, formats: m.formats})
			continue
		}
		used[m.kind] = true
		streams = append(streams, sdpStream{kind: m.kind, port: st.LocalAddr().Port(), codecs: sipCodecs(pairs), direction: answerDirection(m.direction), ssrc: st.SSRC()})
	}
	sipAnswer := c.sess.render(streams)
	c.m.goTrack(func() { c.answerSIP(sipAnswer) })
	return nil
}

// answerSIP sends the 200 and confirms the invitation at the ACK.
func (c *Call) answerSIP(sdp []byte) {
	d, err := c.in.Answer(sdp, c.dialogHandler())
	if err != nil {
		if errors.Is(err, sipua.ErrCanceled) {
			c.end(ending{reason: "canceled by the caller", code: 487, outcome: OutcomeCanceled, tellClient: true})
			return
		}
		c.end(ending{reason: "200 not sent: " + err.Error(), code: 500, outcome: OutcomeFailed, tellClient: true})
		return
	}
	if !c.setDialog(d) {
		ctx, cancel := context.WithTimeout(context.Background(), c.m.cfg.HangupTimeout)
		_ = d.Hangup(ctx)
		cancel()
		return
	}
	c.watchDialog(d)
	select {
	case <-d.Confirmed():
		if err := c.ri.Confirm(); err != nil {
			c.end(ending{reason: "invitation over before the ACK", bye: true, outcome: OutcomeFailed})
			return
		}
		c.log.Info("answered")
	case <-d.Done():
	case <-c.ctx.Done():
	}
}
