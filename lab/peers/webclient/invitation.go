package webclient

import (
	"context"
	"fmt"

	"github.com/siprtc/siprtc/gateway/signaling"
)

// Invitation is a call offered to the client (a RemoteInvitation): acknowledge it with
// Received, then Accept or Refuse it. The gateway is the offerer: the invitation normally
// carries its SDP offer and the client answers in the accept; without one the client offers
// (an sdp request before the accept) and the gateway's answer follows as an sdp event.
type Invitation struct {
	call      *Call
	Caller    string
	Content   string
	ChannelID string
	Offer     *signaling.SessionDescription // the offer that came with the invitation, or nil
}

// Call is the invitation's call: its states (INVITATION_RECEIVED, ...) and, once accepted,
// its media.
func (inv *Invitation) Call() *Call { return inv.call }

// Received acknowledges the invitation: the gateway then sends SIP 180 to the caller.
func (inv *Invitation) Received(ctx context.Context) error {
	_, err := inv.call.cl.request(ctx, outMsg{Type: signaling.TypeReceived, CallID: inv.call.ID()}, nil)
	return err
}

// Refuse declines the invitation with a SIP code: 486 (busy), 600 (busy everywhere) or 603
// (decline; 0 means the gateway's default, 603).
func (inv *Invitation) Refuse(ctx context.Context, response string, sipCode int) error {
	c := inv.call
	c.mu.Lock()
	if c.answered {
		c.mu.Unlock()
		return ErrAlreadyAnswered
	}
	c.answered = true
	c.mu.Unlock()
	_, err := c.cl.request(ctx, outMsg{Type: signaling.TypeRefuse, CallID: c.ID(), Response: response, SIPCode: sipCode}, nil)
	return err
}

// Accept answers the invitation: the client's PeerConnection answers the gateway's offer and
// the accept carries that answer; candidates trickle after it. It returns the call once the
// gateway took the accept (ACCEPT_SENT_TO_LOCAL, then ACCEPTED when the SIP side confirms).
func (inv *Invitation) Accept(ctx context.Context, response string) (*Call, error) {
	c := inv.call
	c.mu.Lock()
	if c.answered {
		c.mu.Unlock()
		return nil, ErrAlreadyAnswered
	}
	c.answered = true
	c.mu.Unlock()
	result := make(chan error, 1)
	// On the call's goroutine: the gateway's candidates and a newer offer are handled in order
	// with the answer.
	c.enqueue(func() { result <- c.accept(ctx, response) })
	select {
	case err := <-result:
		if err != nil {
			return nil, err
		}
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%w: %s", ErrCallEnded, c.EndReason())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Call) accept(ctx context.Context, response string) error {
	pc, err := c.newPeer()
	if err != nil {
		return err
	}
	c.mu.Lock()
	offer := c.offer
	c.mu.Unlock()
	m := outMsg{Type: signaling.TypeAccept, CallID: c.ID(), Response: response}
	if offer != nil {
		if err := pc.SetRemoteDescription(webrtcDescription(*offer)); err != nil {
			return fmt.Errorf("webclient: gateway offer: %w", err)
		}
		if err := c.attachMedia(pc.PeerConnection, true); err != nil {
			return err
		}
		answer, err := pc.CreateAnswer(nil)
		if err != nil {
			return fmt.Errorf("webclient: answer: %w", err)
		}
		if err := pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("webclient: answer: %w", err)
		}
		m.Description = describe(pc.LocalDescription())
		c.flushRemoteCandidates()
	} else {
		// No offer came: offer from here before accepting, so the gateway has it when it
		// answers the SIP side; its answer comes as an sdp event.
		if err := c.attachMedia(pc.PeerConnection, false); err != nil {
			return err
		}
		o, err := pc.CreateOffer(nil)
		if err != nil {
			return fmt.Errorf("webclient: offer: %w", err)
		}
		if err := pc.SetLocalDescription(o); err != nil {
			return fmt.Errorf("webclient: offer: %w", err)
		}
		if _, err := c.cl.request(ctx, outMsg{Type: signaling.TypeSDP, CallID: c.ID(), Description: describe(pc.LocalDescription())}, nil); err != nil {
			return err
		}
	}
	if _, err := c.cl.request(ctx, m, nil); err != nil {
		return err
	}
	c.startTrickle()
	return nil
}
