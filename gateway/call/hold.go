package call

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/signaling"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// A client's hold and resume reach the SIP side as a re-INVITE (RFC 3264 8.4): when the
// client's new offer changes the direction of its audio or video (sendonly or inactive to hold,
// sendrecv to resume), the gateway offers the PBX the same direction, with the codecs and ports
// the call already uses. The client's offer is answered only once the PBX answered: its `sdp`
// request blocks (bounded by reinviteTimeout) and a refused change is that request's error,
// with both legs left as they were. Answering the client at once would leave the WebRTC leg
// held while the SIP leg is not whenever the PBX refuses, with no way to tell the client but a
// new offer of the gateway's.

// reinviteTimeout bounds a client's hold or resume: the re-INVITE, its glare retries and
// their waits. The client's signalling connection waits for it.
const reinviteTimeout = 15 * time.Second

// glareRetries is how many times a re-INVITE refused with 491 (or crossing an exchange of the
// PBX) is sent again.
const glareRetries = 2

// followClientDirection sends the SIP side a re-INVITE when the client's offer changes a
// stream's direction, and applies the PBX's answer. undo puts the SIP side back (best effort)
// when the client's offer is refused afterwards; it does nothing when nothing changed.
func (c *Call) followClientDirection(offer string) (undo func(), err error) {
	undo = func() {}
	want, err := clientDirections(offer)
	if err != nil {
		return undo, &signaling.Error{Code: signaling.CodeInvalidArgument, Message: "offer not taken: " + err.Error()}
	}
	dlg := c.currentDialog()
	prev := c.directions()
	next := c.mergeDirections(prev, want)
	if dlg == nil || sameDirections(prev, next) {
		return undo, nil
	}
	if err := c.reinviteSIP(dlg, next); err != nil {
		c.log.Info("client hold/resume refused by the SIP side", "call", c.id, "dirs", fmt.Sprint(next), "err", err)
		return undo, reinviteError(err)
	}
	c.log.Info("client hold/resume passed to the SIP side", "call", c.id, "dirs", fmt.Sprint(next))
	return func() {
		if err := c.reinviteSIP(dlg, prev); err != nil {
			c.log.Warn("SIP side not put back after a refused client offer", "call", c.id, "err", err)
		}
	}, nil
}

// reinviteSIP offers the SIP side the call's streams with dirs, retrying a glare (491, or an
// exchange of the PBX in progress) after RFC 3261 14.1's random delay, and applies the answer.
func (c *Call) reinviteSIP(dlg *sipua.Dialog, dirs map[webrtc.RTPCodecType]string) error {
	ctx, cancel := context.WithTimeout(c.ctx, reinviteTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		answer, err := dlg.Reinvite(ctx, c.render(c.directedStreams(dirs)))
		if err == nil {
			c.mu.Lock()
			c.sipDirs = dirs
			for kind, st := range c.streams {
				// The client gets nothing while it holds, whatever the PBX sends.
				st.HoldToWebRTC(!canReceive(dirs[kind]))
			}
			c.mu.Unlock()
			return c.applySIPAnswer(answer)
		}
		if !isGlare(err) || attempt == glareRetries {
			return err
		}
		if err := sleepCtx(ctx, glareDelay(dlg.Outgoing())); err != nil {
			return fmt.Errorf("waiting to retry the re-INVITE: %w", err)
		}
	}
}

// directedStreams describes the call's SIP streams as they are, with the directions dirs.
func (c *Call) directedStreams(dirs map[webrtc.RTPCodecType]string) []sdpStream {
	streams := c.sipStreams(c.selection())
	for i := range streams {
		streams[i].direction = dirs[webrtc.NewRTPCodecType(streams[i].kind)]
	}
	return streams
}

// applySIPAnswer points the bridge at the addresses and formats of the PBX's answer to our
// re-INVITE.
func (c *Call) applySIPAnswer(answer []byte) error {
	ms, err := parseSIPSDP(answer)
	if err != nil {
		return fmt.Errorf("re-INVITE answer: %w", err)
	}
	sel, err := c.rematch(ms)
	if err != nil {
		return fmt.Errorf("re-INVITE answer: %w", err)
	}
	return c.applyRemote(ms, sel)
}

// rematch matches the call's WebRTC formats with a new SIP description's (a re-offer of the
// PBX, or its answer to ours).
func (c *Call) rematch(ms []sipMedia) (*rtc.Selection, error) {
	sel := c.selection()
	if sel == nil {
		return nil, errBadSDP
	}
	var webrtcSide []rtc.Codec
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		for _, p := range sel.Pairs(kind) {
			webrtcSide = append(webrtcSide, p.WebRTC)
		}
	}
	return c.m.cfg.RTC.Match(webrtcSide, codecsOf(ms))
}

// render writes the gateway's next SIP description; the lock orders the o= versions of the
// PBX's re-offers and the client's re-INVITEs, which run on different goroutines.
func (c *Call) render(streams []sdpStream) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess.render(streams)
}

// directions is a copy of the directions offered to the SIP side.
func (c *Call) directions() map[webrtc.RTPCodecType]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[webrtc.RTPCodecType]string{}
	for kind := range c.streams {
		out[kind] = "sendrecv"
		if d := c.sipDirs[kind]; d != "" {
			out[kind] = d
		}
	}
	return out
}

// mergeDirections is prev with the directions the client's offer gives its bridged streams.
func (c *Call) mergeDirections(prev, client map[webrtc.RTPCodecType]string) map[webrtc.RTPCodecType]string {
	out := map[webrtc.RTPCodecType]string{}
	for kind, d := range prev {
		out[kind] = d
		if cd, ok := client[kind]; ok {
			out[kind] = cd
		}
	}
	return out
}

// answerDirection answers a PBX offer's direction for a stream, never beyond what the client
// asked (a client on hold stays on hold when the PBX re-offers sendrecv).
func (c *Call) answerDirection(kind webrtc.RTPCodecType, offered string) string {
	c.mu.Lock()
	local := c.sipDirs[kind]
	c.mu.Unlock()
	return intersectDirections(answerDirection(offered), local)
}

func sameDirections(a, b map[webrtc.RTPCodecType]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// intersectDirections is what both directions allow ("" is sendrecv).
func intersectDirections(a, b string) string {
	sends := canSend(a) && canSend(b)
	recvs := canReceive(a) && canReceive(b)
	switch {
	case sends && recvs:
		return "sendrecv"
	case sends:
		return "sendonly"
	case recvs:
		return "recvonly"
	}
	return "inactive"
}

func canSend(dir string) bool    { return dir == "" || dir == "sendrecv" || dir == "sendonly" }
func canReceive(dir string) bool { return dir == "" || dir == "sendrecv" || dir == "recvonly" }

// clientDirections reads the direction of the client offer's first audio and video m-lines
// (a=sendonly, ... or the session's; sendrecv by default). A rejected m-line (port 0) is left
// out: the client stopped that stream rather than held it.
func clientDirections(offer string) (map[webrtc.RTPCodecType]string, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, err
	}
	session := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			session = a.Key
		}
	}
	out := map[webrtc.RTPCodecType]string{}
	for _, md := range sd.MediaDescriptions {
		kind := webrtc.NewRTPCodecType(md.MediaName.Media)
		if _, seen := out[kind]; seen || kind == 0 || md.MediaName.Port.Value == 0 {
			continue
		}
		out[kind] = session
		for _, a := range md.Attributes {
			if isDirection(a.Key) {
				out[kind] = a.Key
			}
		}
	}
	return out, nil
}

// isGlare reports a re-INVITE to send again later: 491 Request Pending, or an offer/answer
// exchange of the dialog still in progress (the PBX's re-offer, or a session refresh).
func isGlare(err error) bool {
	return sipua.StatusCode(err) == 491 || errors.Is(err, sipua.ErrOfferPending)
}

// glareDelay is RFC 3261 14.1's wait before a re-INVITE refused with 491: 2.1 to 4 s for the
// owner of the Call-ID (the side that sent the dialog's INVITE), 0 to 2 s for the other, in
// 10 ms units.
func glareDelay(owner bool) time.Duration {
	if owner {
		return 2100*time.Millisecond + time.Duration(rand.IntN(191))*10*time.Millisecond
	}
	return time.Duration(rand.IntN(201)) * 10 * time.Millisecond
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reinviteError is the client's error for a hold or resume the SIP side did not take.
func reinviteError(err error) error {
	if code := sipua.StatusCode(err); code != 0 {
		return &signaling.Error{Code: signaling.CodeInvalidState, Message: fmt.Sprintf("the SIP side refused the change (%d); the call keeps its previous media state", code)}
	}
	if errors.Is(err, sipua.ErrEnded) || errors.Is(err, context.Canceled) {
		return &signaling.Error{Code: signaling.CodeInvalidState, Message: "the call is ending"}
	}
	return &signaling.Error{Code: signaling.CodeInternal, Message: "the SIP side did not answer the change; the call keeps its previous media state"}
}
