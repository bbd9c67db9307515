package sipua

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// EndReason says why a dialog ended.
type EndReason int

// The reasons a dialog ends.
const (
	EndedLocally        EndReason = iota + 1 // Hangup: we sent BYE
	EndedByPeer                              // the peer sent BYE
	EndedSessionExpired                      // the session timer ran out (RFC 4028); we sent BYE
	EndedNoAck                               // our 2xx got no ACK in 64*T1; we sent BYE
	EndedClosed                              // the user agent closed; we sent BYE
)

func (r EndReason) String() string {
	switch r {
	case EndedLocally:
		return "local hangup"
	case EndedByPeer:
		return "remote hangup"
	case EndedSessionExpired:
		return "session expired"
	case EndedNoAck:
		return "no ACK"
	case EndedClosed:
		return "user agent closed"
	}
	return "active"
}

// DialogHandler says how a dialog reacts to the peer's in-dialog requests. Every field is
// optional; the functions run on the goroutine handling the request, so the response waits for
// them.
type DialogHandler struct {
	// Offer answers an offer the peer sent in a re-INVITE or UPDATE (hold, resume, a media
	// change, a session refresh); an error rejects it with 488. Nil answers with the current
	// local description.
	Offer func(offer []byte) (answer []byte, err error)
	// Answer receives the peer's answer to an offer we sent in a 2xx (it comes in the ACK of an
	// INVITE that had no offer).
	Answer func(answer []byte)
	// DTMF receives the digits the peer sends with SIP INFO.
	DTMF func(DTMF)
	// Info receives the INFO requests that are not DTMF (picture_fast_update, ...). Nil
	// answers them with 415.
	Info func(contentType string, body []byte)
}

// Dialog is an established call, outgoing or incoming (RFC 3261 12): hang it up, change its
// session with re-INVITE or UPDATE, send DTMF with INFO. Its session timer, if negotiated, runs
// on its own.
type Dialog struct {
	u        *UA
	acc      *Account
	outgoing bool
	st       *dialogState
	handler  DialogHandler
	invite   *sip.Request  // the INVITE sent or received
	answer   *sip.Response // the 2xx received or sent
	inviteTx sip.ClientTransaction

	confirmed   chan struct{} // closed once the INVITE's 2xx is acknowledged
	confirmOnce sync.Once
	done        chan struct{}
	endOnce     sync.Once

	mu        sync.Mutex
	localSDP  []byte
	remoteSDP []byte
	pracks    []*sip.Response
	peerAllow []string
	acks      map[uint32]*sip.Request // ACKs we sent by CSeq, sent again for a retransmitted 2xx
	offering  bool                    // our re-INVITE or UPDATE offer waits for its answer
	answering bool                    // the peer's offer is being answered
	serving   *served                 // an INVITE of the peer answered with 2xx, until its ACK
	reason    EndReason
	session   sessionState
}

// served is an INVITE we answered with 2xx, until its ACK (RFC 3261 13.3.1.4).
type served struct {
	cseq      uint32
	res       *sip.Response
	tx        sip.ServerTransaction
	offerless bool // our 2xx carries an offer: the ACK brings the answer
	acked     chan struct{}
	once      sync.Once
}

func newServed(req *sip.Request, res *sip.Response, tx sip.ServerTransaction) *served {
	return &served{cseq: req.CSeq().SeqNo, res: res, tx: tx, offerless: len(req.Body()) == 0, acked: make(chan struct{})}
}

func newDialog(u *UA, acc *Account, outgoing bool, st *dialogState, h DialogHandler) *Dialog {
	return &Dialog{u: u, acc: acc, outgoing: outgoing, st: st, handler: h,
		confirmed: make(chan struct{}), done: make(chan struct{}), acks: map[uint32]*sip.Request{}}
}

// Account is the user of the account the dialog belongs to.
func (d *Dialog) Account() string { return d.acc.User }

// CallID is the dialog's Call-ID.
func (d *Dialog) CallID() string { return d.st.callID }

// Outgoing reports whether this side sent the INVITE.
func (d *Dialog) Outgoing() bool { return d.outgoing }

// Invite is the INVITE that set the dialog up (sent or received).
func (d *Dialog) Invite() *sip.Request { return d.invite }

// Answer is the 2xx that established the dialog (received or sent).
func (d *Dialog) Answer() *sip.Response { return d.answer }

// Done is closed when the dialog ends; Reason then says why.
func (d *Dialog) Done() <-chan struct{} { return d.done }

// Confirmed is closed once the 2xx of the INVITE is acknowledged (at once for an outgoing
// dialog, at the ACK for an incoming one).
func (d *Dialog) Confirmed() <-chan struct{} { return d.confirmed }

// Reason says why the dialog ended (0 while it lasts).
func (d *Dialog) Reason() EndReason {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}

// LocalSDP is the session description this side sent last (offer or answer).
func (d *Dialog) LocalSDP() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.localSDP
}

// RemoteSDP is the session description the peer sent last.
func (d *Dialog) RemoteSDP() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remoteSDP
}

// PRACKs are the final responses to the PRACKs sent while an outgoing call was set up.
func (d *Dialog) PRACKs() []*sip.Response {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*sip.Response(nil), d.pracks...)
}

// Hangup sends BYE and waits for its answer. The dialog ends when the BYE is sent; a non-2xx
// answer is returned as a *StatusError. Hanging up an ended dialog does nothing.
func (d *Dialog) Hangup(ctx context.Context) error {
	if !d.outgoing {
		// RFC 3261 15: the callee does not send BYE before the ACK (or its timeout).
		select {
		case <-d.confirmed:
		case <-d.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-d.u.ctx.Done():
			return ErrClosed
		}
	}
	if !d.end(EndedLocally) {
		return nil
	}
	return d.bye(ctx)
}

func (d *Dialog) bye(ctx context.Context) error {
	res, err := d.u.send(ctx, d.acc, d.request(sip.BYE), d.st.nextSeq)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return statusError(sip.BYE, res)
	}
	return nil
}

// byeAndForget ends the dialog with a BYE whose answer nobody waits for (Close).
func (d *Dialog) byeAndForget() {
	if !d.end(EndedClosed) {
		return
	}
	if tx, err := d.u.request(d.u.ctx, d.request(sip.BYE)); err == nil {
		tx.Terminate()
	}
}

// endWithBye ends the dialog for reason and sends the BYE on a goroutine of its own.
func (d *Dialog) endWithBye(reason EndReason) {
	if !d.end(reason) {
		return
	}
	d.u.log.Info("ending dialog", "call", d.CallID(), "reason", reason)
	d.u.Go(func() {
		ctx, cancel := context.WithTimeout(d.u.ctx, 64*sip.T1)
		defer cancel()
		if err := d.bye(ctx); err != nil {
			d.u.log.Debug("BYE", "call", d.CallID(), "error", err)
		}
	})
}

// end ends the dialog once: it leaves the UA's dialogs, its timers stop, Done closes. It reports
// whether this call ended it.
func (d *Dialog) end(reason EndReason) bool {
	ended := false
	d.endOnce.Do(func() {
		ended = true
		d.u.mu.Lock()
		if d.u.dialogs[d.st.key()] == d {
			delete(d.u.dialogs, d.st.key())
		}
		d.u.mu.Unlock()
		d.mu.Lock()
		d.reason = reason
		d.stopSessionLocked()
		d.mu.Unlock()
		if d.inviteTx != nil {
			d.inviteTx.Terminate()
		}
		close(d.done) // last: whoever waits on Done finds the dialog fully stopped
	})
	return ended
}

func (d *Dialog) ended() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// register makes the dialog findable by in-dialog requests; false when the UA is closing.
func (d *Dialog) register() bool {
	d.u.mu.Lock()
	defer d.u.mu.Unlock()
	if d.u.closed {
		return false
	}
	d.u.dialogs[d.st.key()] = d
	return true
}

func (d *Dialog) confirm() { d.confirmOnce.Do(func() { close(d.confirmed) }) }

// request builds a request within the dialog; INVITE and UPDATE carry the target-refresh
// headers (Contact) and what the UA supports.
func (d *Dialog) request(method sip.RequestMethod) *sip.Request {
	req := d.st.request(method, 0)
	switch method {
	case sip.INVITE, sip.UPDATE:
		req.AppendHeader(d.u.contactHeader(d.acc))
		d.u.commonHeaders(req)
	default:
		req.AppendHeader(sip.NewHeader("User-Agent", d.u.cfg.UserAgent))
	}
	return req
}

// sendAck acknowledges the 2xx of our INVITE with CSeq cseq, and keeps the ACK for the 2xx's
// retransmissions.
func (d *Dialog) sendAck(cseq uint32) error {
	ack := d.st.request(sip.ACK, cseq)
	if err := d.u.write(ack); err != nil {
		return fmt.Errorf("%w: ACK: %w", ErrTransaction, err)
	}
	d.mu.Lock()
	d.acks[cseq] = ack
	d.mu.Unlock()
	return nil
}

func (d *Dialog) resendAck(cseq uint32) {
	d.mu.Lock()
	ack := d.acks[cseq]
	d.mu.Unlock()
	if ack == nil {
		return
	}
	if err := d.u.write(ack.Clone()); err != nil {
		d.u.log.Debug("ACK retransmission", "error", err)
	}
}

// beginOffer reserves the dialog's offer/answer exchange for an offer of ours. A 2xx of ours
// still waiting for its ACK is waited for (RFC 3261 14.1: no new INVITE before the last one
// completed).
func (d *Dialog) beginOffer(ctx context.Context) error {
	for {
		d.mu.Lock()
		sv := d.serving
		switch {
		case d.ended():
			d.mu.Unlock()
			return ErrEnded
		case d.offering || d.answering:
			d.mu.Unlock()
			return ErrOfferPending
		case sv == nil:
			d.offering = true
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		select {
		case <-sv.acked:
		case <-d.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.u.ctx.Done():
			return ErrClosed
		}
	}
}

func (d *Dialog) endOffer() {
	d.mu.Lock()
	d.offering = false
	d.mu.Unlock()
}

// Reinvite sends a re-INVITE with a new offer (hold: a=sendonly, resume: a=sendrecv, a media
// change) and returns the peer's answer. A non-2xx (488, 491 on glare...) is a *StatusError and
// leaves the session as it was.
func (d *Dialog) Reinvite(ctx context.Context, offer []byte) ([]byte, error) {
	if err := d.beginOffer(ctx); err != nil {
		return nil, err
	}
	defer d.endOffer()
	req := d.request(sip.INVITE)
	d.addSessionExpires(req)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	res, err := d.inviteInDialog(ctx, req)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.localSDP, d.remoteSDP = offer, res.Body()
	d.peerAllow = optionTags(res, "Allow")
	d.mu.Unlock()
	d.sessionTimerFromAnswer(res)
	return res.Body(), nil
}

// inviteInDialog runs a re-INVITE transaction (one challenge answered) and ACKs its 2xx.
func (d *Dialog) inviteInDialog(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	u := d.u
	authTried := false
	for {
		tx, err := u.request(ctx, req)
		if err != nil {
			return nil, err
		}
		res, err := u.waitFinal(ctx, tx, d.done)
		if err != nil {
			tx.Terminate()
			return nil, err
		}
		switch {
		case res.IsSuccess():
			// Retransmissions of the 2xx reach onStrayResponse, which ACKs them again.
			err := d.sendAck(res.CSeq().SeqNo)
			tx.Terminate()
			if err != nil {
				return nil, err
			}
			return res, nil
		case isChallenge(res) && !authTried && d.acc.Password != "":
			authTried = true
			tx.Terminate()
			req = req.Clone()
			if err := authorize(d.acc, req, res); err != nil {
				return nil, err
			}
			req.CSeq().SeqNo = d.st.nextSeq()
			req.RemoveHeader("Via")
		default:
			tx.Terminate()
			return nil, statusError(sip.INVITE, res)
		}
	}
}

// Update sends UPDATE (RFC 3311): with an offer it changes the session like a re-INVITE and
// returns the answer; without one (nil) it only refreshes the session timer.
func (d *Dialog) Update(ctx context.Context, offer []byte) ([]byte, error) {
	if offer != nil {
		if err := d.beginOffer(ctx); err != nil {
			return nil, err
		}
		defer d.endOffer()
	} else if d.ended() {
		return nil, ErrEnded
	}
	req := d.request(sip.UPDATE)
	d.addSessionExpires(req)
	if offer != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(offer)
	}
	res, err := d.u.send(ctx, d.acc, req, d.st.nextSeq)
	if err != nil {
		return nil, err
	}
	if !res.IsSuccess() {
		return nil, statusError(sip.UPDATE, res)
	}
	if offer != nil {
		d.mu.Lock()
		d.localSDP, d.remoteSDP = offer, res.Body()
		d.mu.Unlock()
	}
	d.sessionTimerFromAnswer(res)
	return res.Body(), nil
}

// SendInfo sends INFO with a body of contentType (application/media_control+xml for a
// picture_fast_update, ...); a non-2xx is a *StatusError.
func (d *Dialog) SendInfo(ctx context.Context, contentType string, body []byte) error {
	if d.ended() {
		return ErrEnded
	}
	req := d.request(sip.INFO)
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody(body)
	res, err := d.u.send(ctx, d.acc, req, d.st.nextSeq)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return statusError(sip.INFO, res)
	}
	return nil
}

// SendDTMF sends one DTMF event with SIP INFO, in the body of Config.DTMFType.
func (d *Dialog) SendDTMF(ctx context.Context, ev DTMF) error {
	body, err := ev.body(d.u.cfg.DTMFType)
	if err != nil {
		return err
	}
	return d.SendInfo(ctx, d.u.cfg.DTMFType, body)
}

// onAck takes the ACK of a 2xx we sent.
func (d *Dialog) onAck(req *sip.Request) {
	d.mu.Lock()
	sv := d.serving
	d.mu.Unlock()
	if sv == nil || req.CSeq() == nil || req.CSeq().SeqNo != sv.cseq {
		return
	}
	d.acked(sv, req.Body())
}

// acked completes the 2xx sv: by its ACK, or by a later INVITE of the peer (which only comes
// after the ACK, so it was lost or overtaken).
func (d *Dialog) acked(sv *served, answer []byte) {
	sv.once.Do(func() {
		d.mu.Lock()
		if sv.offerless && len(answer) > 0 {
			d.remoteSDP = answer
		}
		if d.serving == sv {
			d.serving = nil
		}
		d.mu.Unlock()
		if sv.offerless && len(answer) > 0 && d.handler.Answer != nil {
			d.handler.Answer(answer)
		}
		close(sv.acked)
		d.confirm()
	})
}

// retransmit retransmits a 2xx at T1, 2*T1, ... T2 until its ACK (over UDP; over TCP and TLS it
// only waits); with no ACK in 64*T1 the dialog is hung up (RFC 3261 13.3.1.4).
func (d *Dialog) retransmit(sv *served, reliable bool) {
	interval, waited := sip.T1, time.Duration(0)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case ack := <-sv.tx.Acks(): // an ACK that reused the INVITE's branch
			d.onAck(ack)
			return
		case <-sv.acked:
			return
		case <-d.done:
			return
		case <-d.u.ctx.Done():
			return
		}
		waited += interval
		if waited >= 64*sip.T1 {
			d.u.log.Warn("no ACK for 200 OK, hanging up", "call", d.CallID())
			d.confirm()
			d.endWithBye(EndedNoAck)
			return
		}
		if !reliable {
			if err := sv.tx.Respond(sv.res); err != nil {
				d.u.log.Debug("200 OK retransmission", "error", err)
			}
		}
		interval = min(2*interval, sip.T2)
		timer.Reset(interval)
	}
}

// handleReInvite answers an INVITE within a dialog: its offer goes to the handler (none: our
// current description is the offer, the ACK brings the answer).
func (u *UA) handleReInvite(d *Dialog, req *sip.Request, tx sip.ServerTransaction) {
	if !d.beginAnswer(req, tx) {
		return
	}
	timer, ok := u.negotiateTimer(req, tx)
	if !ok {
		d.endAnswer(nil)
		return
	}
	answer, ok := d.answerOffer(req, tx)
	if !ok {
		d.endAnswer(nil)
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", answer)
	res.AppendHeader(u.contactHeader(d.acc))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	u.commonHeaders(res)
	timer.apply(res)
	sv := newServed(req, res, tx)
	d.endAnswer(sv) // before the 2xx leaves: the peer may go on as soon as it has it
	u.respond(tx, res)
	d.armSession(timer.interval, timer.weRefresh)
	u.Go(func() { d.retransmit(sv, sip.IsReliable(req.Transport())) })
}

// beginAnswer reserves the offer/answer exchange for the peer's offer in req, or answers 491
// (glare: our own offer is out, RFC 3261 14.2) or 500 with Retry-After (the peer's previous
// offer is still being answered). A 2xx of ours still waiting for its ACK counts as acknowledged
// by a later INVITE.
func (d *Dialog) beginAnswer(req *sip.Request, tx sip.ServerTransaction) bool {
	d.mu.Lock()
	offering, answering, sv := d.offering, d.answering, d.serving
	if !offering && !answering {
		d.answering = true
	}
	d.mu.Unlock()
	switch {
	case offering:
		d.u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusRequestPending, "Request Pending", nil))
		return false
	case answering:
		res := sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		d.u.respond(tx, res)
		return false
	}
	if sv != nil && req.IsInvite() && req.CSeq().SeqNo > sv.cseq {
		d.acked(sv, nil)
	}
	return true
}

// endAnswer ends the answering of the peer's offer; sv, when the answer is a 2xx to an INVITE,
// waits for its ACK.
func (d *Dialog) endAnswer(sv *served) {
	d.mu.Lock()
	d.answering = false
	if sv != nil {
		d.serving = sv
	}
	d.mu.Unlock()
}

// answerOffer runs the handler on the offer of a re-INVITE or UPDATE and keeps the result; with
// no offer, the current local description is offered. It answers 488 itself on failure.
func (d *Dialog) answerOffer(req *sip.Request, tx sip.ServerTransaction) ([]byte, bool) {
	offer := req.Body()
	d.mu.Lock()
	answer := d.localSDP
	d.mu.Unlock()
	if len(offer) > 0 && d.handler.Offer != nil {
		var err error
		if answer, err = d.handler.Offer(offer); err != nil {
			d.u.log.Info("offer refused", "call", d.CallID(), "error", err)
			d.u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil))
			return nil, false
		}
	}
	d.mu.Lock()
	d.localSDP = answer
	if len(offer) > 0 {
		d.remoteSDP = offer
	}
	if allow := optionTags(req, "Allow"); len(allow) > 0 {
		d.peerAllow = allow
	}
	d.mu.Unlock()
	return answer, true
}

// inDialog makes a handler of requests within a dialog: one that matches none gets 481 (an ACK
// none).
func (u *UA) inDialog(h func(*Dialog, *sip.Request, sip.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		switch d := u.dialogOf(req); {
		case d != nil:
			h(d, req, tx)
		case !req.IsAck():
			u.noDialog(req, tx)
		}
	}
}

func (u *UA) handleAck(d *Dialog, req *sip.Request, _ sip.ServerTransaction) { d.onAck(req) }

func (u *UA) handleBye(d *Dialog, req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	u.log.Debug("dialog ended by peer", "call", d.CallID())
	d.confirm()
	d.end(EndedByPeer)
}

// handleUpdate answers UPDATE (RFC 3311): an offer goes to the handler, and either way the
// session timer is refreshed.
func (u *UA) handleUpdate(d *Dialog, req *sip.Request, tx sip.ServerTransaction) {
	hasOffer := len(req.Body()) > 0
	if hasOffer {
		if !d.beginAnswer(req, tx) {
			return
		}
	}
	timer, ok := u.negotiateTimer(req, tx)
	if !ok {
		if hasOffer {
			d.endAnswer(nil)
		}
		return
	}
	var body []byte
	if hasOffer {
		body, ok = d.answerOffer(req, tx)
		d.endAnswer(nil) // before the 2xx leaves
		if !ok {
			return
		}
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", body)
	res.AppendHeader(u.contactHeader(d.acc))
	if hasOffer {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	u.commonHeaders(res)
	timer.apply(res)
	u.respond(tx, res)
	d.armSession(timer.interval, timer.weRefresh)
}

// handleInfo takes DTMF (application/dtmf-relay, application/dtmf) and hands other INFO bodies
// to the dialog's handler.
func (u *UA) handleInfo(d *Dialog, req *sip.Request, tx sip.ServerTransaction) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(h.Value())), ";")
		ct = strings.TrimSpace(ct)
	}
	switch {
	case len(req.Body()) == 0:
		u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	case ct == DTMFRelay || ct == DTMFPlain:
		ev, err := parseDTMF(ct, req.Body())
		if err != nil {
			u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad DTMF", nil))
			return
		}
		if d.handler.DTMF != nil {
			d.handler.DTMF(ev)
		}
		u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	case d.handler.Info != nil:
		d.handler.Info(ct, req.Body())
		u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusUnsupportedMediaType, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", DTMFRelay+", "+DTMFPlain))
		u.respond(tx, res)
	}
}

// peerAllows reports whether the peer listed method in its Allow.
func (d *Dialog) peerAllows(method sip.RequestMethod) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.peerAllow, func(m string) bool { return strings.EqualFold(m, string(method)) })
}
