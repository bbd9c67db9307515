package sipphone

import (
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/gateway/sipua"
)

// Incoming is a call offered to the phone and not answered yet. Exactly one of Answer and
// Reject settles it, unless the caller cancels first (Cancelled closes; the phone has answered
// the CANCEL with 200 and the INVITE with 487).
type Incoming struct {
	p     *Phone
	in    *sipua.Incoming
	offer *remoteAudio // nil for an INVITE without a session description
	codec codec

	early    *Call         // the call Progress prepared: its media runs from the 183 on
	local    []byte        // the answer Progress sent, sent again in the 200
	answered chan struct{} // closed when the early call is answered
}

// Request is the INVITE as received (tests read its headers, such as X-Number).
func (in *Incoming) Request() *sip.Request { return in.in.Request() }

// Reliable reports whether Ring sends its 180 reliably: the INVITE supports or requires 100rel
// and so does the phone.
func (in *Incoming) Reliable() bool { return in.in.Reliable() }

// Cancelled is closed when the caller cancels the call before it is answered.
func (in *Incoming) Cancelled() <-chan struct{} { return in.in.Cancelled() }

// PRACKs are the PRACK requests the caller sent for this call's reliable provisional responses.
func (in *Incoming) PRACKs() []*sip.Request { return in.in.PRACKs() }

// Ring sends 180 Ringing. When reliable, the 180 carries Require: 100rel and an RSeq, is
// retransmitted at T1, 2*T1, ... until its PRACK arrives, and Ring returns once it has; with no
// PRACK within 64*T1 the call is rejected with 504 and ErrPRACKTimeout returned (RFC 3262 3).
func (in *Incoming) Ring() error { return in.in.Ring() }

// Progress sends 183 Session Progress with the phone's answer and starts the tone at once:
// early media (reliably when Reliable). It needs an INVITE with an offer.
func (in *Incoming) Progress() error {
	if in.offer == nil {
		return fmt.Errorf("%w: early media needs an offer in the INVITE", ErrBadSDP)
	}
	if in.early == nil {
		c, local, err := in.prepare()
		if err != nil {
			return err
		}
		in.early, in.local = c, local
		in.answered = make(chan struct{})
		// A call cancelled after its early media leaves no media behind.
		p := in.p
		p.ua.Go(func() {
			select {
			case <-in.Cancelled():
				c.media.close()
			case <-in.answered:
			case <-p.ctx.Done():
			}
		})
	}
	if err := in.in.Progress(in.local); err != nil {
		return err
	}
	in.early.startMedia()
	return nil
}

// prepare binds the call's media and renders the phone's answer (or offer).
func (in *Incoming) prepare() (*Call, []byte, error) {
	p := in.p
	media, err := p.newMedia()
	if err != nil {
		_ = in.in.Reject(sip.StatusInternalServerError, "No RTP Port")
		return nil, nil, err
	}
	c := newCall(p, media)
	cs := p.codecs
	if in.offer != nil {
		cs = []codec{in.codec}
	}
	if in.offer != nil { // first: the answer's video line follows the offer's
		media.setRemote(*in.offer, in.codec)
	}
	local, err := c.description(cs, "sendrecv")
	if err != nil {
		media.close()
		_ = in.in.Reject(sip.StatusInternalServerError, "SDP")
		return nil, nil, err
	}
	return c, local, nil
}

// Answer answers with 200 OK and the phone's session description (the answer to the INVITE's
// offer, or an offer when it had none), and starts the call. The 200 is retransmitted until the
// ACK arrives. A reliable provisional response still unacknowledged is waited for first.
func (in *Incoming) Answer() (*Call, error) {
	c, local := in.early, in.local
	if c == nil {
		var err error
		if c, local, err = in.prepare(); err != nil {
			return nil, err
		}
	}
	// The call is tracked before the 200 leaves: a caller whose Call returned finds it here.
	_, err := in.in.AnswerWith(local, c.handler(), c.track)
	if err != nil {
		c.media.close() // idempotent: a tracked call whose 200 failed closes it too
		return nil, err
	}
	if in.answered != nil {
		close(in.answered)
	}
	if in.offer != nil {
		c.startMedia()
	}
	return c, nil
}

// Reject answers with a final error status (486 Busy Here, 480, 603...).
func (in *Incoming) Reject(code int, reason string) error {
	err := in.in.Reject(code, reason)
	if in.early != nil && err == nil {
		in.early.media.close()
	}
	return err
}

// handleIncoming takes a call from the user agent: an offer without a common codec gets 488, the
// rest goes to the phone's handler.
func (p *Phone) handleIncoming(si *sipua.Incoming) {
	in := &Incoming{p: p, in: si}
	if body := si.Offer(); len(body) > 0 {
		ra, err := parseAudio(body)
		var c codec
		ok := err == nil
		if ok {
			c, ok = negotiate(p.codecs, ra.codecs)
		}
		if !ok {
			_ = si.Reject(sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		in.offer, in.codec = &ra, c
	}
	p.mu.Lock()
	handle := p.onIncoming
	p.mu.Unlock()
	if handle == nil {
		handle = p.autoAnswer
	}
	p.log.Debug("incoming call", "from", si.Request().From().Address.String())
	handle(in)
}

// autoAnswer is the default incoming-call handler: ring, wait the AutoAnswer delay, answer.
func (p *Phone) autoAnswer(in *Incoming) {
	if err := in.Ring(); err != nil {
		p.log.Debug("ring failed", "error", err)
		return
	}
	if d := p.opts.autoAnswerDelay; d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-in.Cancelled():
			return
		case <-p.ctx.Done():
			return
		}
	}
	if _, err := in.Answer(); err != nil {
		p.log.Debug("answer failed", "error", err)
	}
}
