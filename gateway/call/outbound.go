package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// invite places a client's call to a SIP number. The client offered with its invite; the
// gateway selects what both sides can carry against its own SIP formats, opens the bridge,
// and offers that selection to the PBX. The client gets its answer once the SIP side has
// answered (183 with SDP or 200), so both legs carry exactly the formats the PBX accepted.
func (m *Manager) invite(s *signaling.Session, li *signaling.LocalInvitation) error {
	if !m.Accepting() {
		return &signaling.Error{Code: signaling.CodeInvalidState, Message: "the gateway is shutting down"}
	}
	offer := li.Offer()
	if offer == nil || offer.Type != "offer" {
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "an invite needs the client's SDP offer (description of type offer)"}
	}
	wOffer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}
	sel, err := m.cfg.RTC.PickCodecs(wOffer, m.supported)
	switch {
	case errors.Is(err, rtc.ErrNoCommonCodec):
		m.log.Info("invite refused: no common codec", "user", s.User(), "callee", li.Callee(), "err", err)
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "no common codec: the offer has no audio format the gateway supports"}
	case err != nil:
		return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "unusable offer"}
	}
	target := li.Callee()
	if isPSTN(li.Content()) {
		server := m.cfg.PSTNServer
		if !server.IsValid() {
			return &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "PSTN calls are not configured"}
		}
		target = fmt.Sprintf("sip:%s%s@%s", m.cfg.PSTNPrefix, li.Callee(), server)
	}
	account, err := m.accountFor(s.User())
	if err != nil {
		return &signaling.Error{Code: signaling.CodeLimitExceeded, Message: "no free SIP account in the pool"}
	}

	c := newCall(m, Outbound, s.User(), li.Callee(), account)
	c.id, c.li, c.session, c.webrtcOffer = li.CallID(), li, s.ID(), wOffer
	c.log = c.log.With("call", c.id)
	if err := m.newPeer(c); err != nil {
		c.log.Error("peer", "err", err)
		return err
	}
	abort := func(err error) error {
		_ = c.peer.Close()
		_ = c.bridge.Close()
		c.cancel()
		return err
	}
	if err := c.peer.SetRemoteDescription(wOffer); err != nil {
		return abort(&signaling.Error{Code: signaling.CodeInvalidArgument, Message: "offer not taken: " + err.Error()})
	}
	if err := c.addStreams(sel); err != nil {
		c.log.Error("bridge streams", "err", err)
		return abort(err)
	}
	c.sel = sel
	sipOffer := c.sess.render(c.sipStreams(sel))
	if err := m.add(c); err != nil {
		return abort(&signaling.Error{Code: signaling.CodeInvalidState, Message: "the gateway is shutting down"})
	}
	c.log.Info("calling", "target", target)
	m.goTrack(func() { c.runOutbound(target, sipOffer) })
	return nil
}

// runOutbound sends the INVITE and follows it to its end: provisional responses become
// RECEIVED_BY_REMOTE, early media is bridged, the answer ACCEPTED_BY_REMOTE; a failure is
// mapped to the invitation outcome.
func (c *Call) runOutbound(target string, offer []byte) {
	opts := []sipua.InviteOption{
		sipua.OnProvisional(func(r *sip.Response) {
			if r.StatusCode == 180 || r.StatusCode == 183 {
				if err := c.li.Received(r.StatusCode); err != nil {
					c.log.Debug("ringing not reported", "err", err)
				}
			}
		}),
		sipua.OnEarlyMedia(func(r *sip.Response) {
			if err := c.sipAnswer(r.Body()); err != nil {
				c.log.Warn("early media not bridged", "err", err)
			}
		}),
		sipua.WithHandler(c.dialogHandler()),
	}
	d, err := c.m.cfg.UA.Invite(c.ctx, c.account, target, offer, opts...)
	if err != nil {
		c.inviteFailed(err)
		return
	}
	if !c.setDialog(d) { // canceled or shut down while the 200 was on its way
		ctx, cancel := context.WithTimeout(context.Background(), c.m.cfg.HangupTimeout)
		_ = d.Hangup(ctx)
		cancel()
		return
	}
	c.watchDialog(d)
	if err := c.sipAnswer(d.RemoteSDP()); err != nil {
		c.end(ending{reason: "unusable SIP answer: " + err.Error(), code: 488, bye: true, outcome: OutcomeNoCodec, tellClient: true, refused: true})
		return
	}
	if err := c.li.Accepted(""); err != nil {
		c.end(ending{reason: "invitation over before the answer", bye: true, outcome: OutcomeCanceled})
		return
	}
	c.log.Info("answered", "setup", time.Since(c.start))
}

// sipAnswer applies the PBX's answer (from a 183 or the 200): the bridge points at its media
// with the formats it accepted, and the first time, the client gets the gateway's answer.
func (c *Call) sipAnswer(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	ms, err := parseSIPSDP(body)
	if err != nil {
		return err
	}
	sel, err := c.m.cfg.RTC.PickCodecs(c.webrtcOffer, codecsOf(ms))
	if err != nil {
		return err
	}
	if err := c.applyRemote(ms, sel); err != nil {
		return err
	}
	c.mu.Lock()
	already := c.answered
	c.answered = true
	c.mu.Unlock()
	if already {
		return nil
	}
	pc := c.peer.PeerConnection
	if err := rtc.PreferCodecs(pc, sel); err != nil {
		return err
	}
	if len(sel.Video) == 0 {
		for _, tr := range pc.GetTransceivers() {
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				_ = tr.Stop()
			}
		}
	}
	answer, err := c.localDescription(false)
	if err != nil {
		return err
	}
	return c.sendSDP(answer)
}

// inviteFailed maps the INVITE's failure to the invitation's outcome:
//
//	486, 600, 603, 488, 403, other 6xx     REFUSED_BY_REMOTE with the code
//	404, 410, 480, 484, 5xx, others        FAILURE PEER_OFFLINE
//	408, no response at all                FAILURE PEER_NO_RESPONSE
//	487 after the client's cancel          nothing more (the invitation is CANCELED already)
func (c *Call) inviteFailed(err error) {
	if c.ctx.Err() != nil {
		c.end(ending{reason: "canceled", code: 487, outcome: OutcomeCanceled})
		return
	}
	code := sipua.StatusCode(err)
	reason := err.Error()
	var se *sipua.StatusError
	if errors.As(err, &se) {
		reason = se.Reason
	}
	e := ending{reason: reason, code: code, tellClient: true}
	switch {
	case code == 486 || code == 488 || code == 403 || code >= 600:
		e.outcome, e.refused = OutcomeRefused, true
		if code == 488 {
			e.outcome = OutcomeNoCodec
		}
	case code == 408 || (code == 0 && errors.Is(err, sipua.ErrTransaction)):
		e.outcome, e.failure = OutcomeFailed, signaling.PeerNoResponse
	case code == 404 || code == 410 || code == 480 || code == 484:
		e.outcome, e.failure = OutcomeOffline, signaling.PeerOffline
	default:
		e.outcome, e.failure = OutcomeFailed, signaling.PeerOffline
	}
	c.log.Info("call failed", "sip_code", code, "reason", reason)
	c.end(e)
}
