package webclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/siprtc/siprtc/gateway/signaling"
)

// Hold puts the call on hold as a browser does by setting its transceivers' direction to
// direction ("sendonly", or "inactive") and renegotiating: a new offer goes to the gateway in an
// sdp request, and Hold returns once the gateway's answer is applied. The gateway passes the
// hold to the SIP side (a re-INVITE) before it answers; a refusal is the request's error, and
// the offer is rolled back.
//
// pion has no public setter of a transceiver's direction, so the client writes direction into
// the audio and video sections of the offer it sends, while its own local description keeps
// sendrecv: the gateway's answer (recvonly or inactive) answers either validly.
func (c *Call) Hold(ctx context.Context, direction string) error {
	if direction != "sendonly" && direction != "inactive" {
		return fmt.Errorf("%w: hold direction %q (want sendonly or inactive)", ErrInvalidArgument, direction)
	}
	return c.renegotiate(ctx, direction)
}

// Resume takes the call off hold: a new offer with sendrecv, as Hold.
func (c *Call) Resume(ctx context.Context) error { return c.renegotiate(ctx, "sendrecv") }

// renegotiate offers the gateway the call's media with direction, and waits for the answer.
func (c *Call) renegotiate(ctx context.Context, direction string) error {
	c.mu.Lock()
	p := c.pc
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: no media yet", ErrNotConnected)
	}
	pc := p.PeerConnection
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("webclient: re-offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("webclient: re-offer: %w", err)
	}
	d := describe(p.LocalDescription()) // the Peer's: it signals audio RTX (WithAudioRTX)
	d.SDP = withDirection(d.SDP, direction)
	if _, err := c.cl.request(ctx, outMsg{Type: signaling.TypeSDP, CallID: c.ID(), Description: d}, nil); err != nil {
		if rbErr := pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rbErr != nil {
			c.log.Debug("re-offer rollback", "err", rbErr)
		}
		return err
	}
	// The answer event comes before the request's reply, and the call's goroutine applies it.
	return waitStable(ctx, pc)
}

// waitStable waits until the gateway's answer is applied (the signalling state is stable).
func waitStable(ctx context.Context, pc *webrtc.PeerConnection) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for pc.SignalingState() != webrtc.SignalingStateStable {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("webclient: waiting for the gateway's answer: %w", ctx.Err())
		}
	}
	return nil
}

// withDirection sets the direction attribute of the audio and video sections of sdp.
func withDirection(sdp, direction string) string {
	lines := strings.Split(sdp, "\r\n")
	media := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "m="):
			media = strings.HasPrefix(l, "m=audio ") || strings.HasPrefix(l, "m=video ")
		case media && (l == "a=sendrecv" || l == "a=sendonly" || l == "a=recvonly" || l == "a=inactive"):
			lines[i] = "a=" + direction
		}
	}
	return strings.Join(lines, "\r\n")
}
