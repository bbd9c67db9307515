package sipphone

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Incoming is a call offered to the phone and not answered yet. Exactly one of Answer and
// Reject settles it, unless the caller cancels first (Cancelled closes; the phone has answered
// the CANCEL with 200 and the INVITE with 487).
type Incoming struct {
	p        *Phone
	req      *sip.Request // as received
	base     *sip.Request // a copy with our To tag: every response is built from it
	tx       sip.ServerTransaction
	localTag string
	reliable bool         // provisional responses are sent reliably (RFC 3262)
	offer    *remoteAudio // nil for an INVITE without a session description
	codec    codec

	canceled   chan struct{}
	cancelOnce sync.Once
	finalized  chan struct{}
	finalOnce  sync.Once

	mu          sync.Mutex
	final       bool
	rseq        uint32
	unacked     chan struct{} // closed by the PRACK of the reliable provisional response in flight
	unackedRSeq uint32
	acked       map[uint32]bool
	pracks      []*sip.Request
}

// Request is the INVITE as received (tests read its headers, such as X-Number).
func (in *Incoming) Request() *sip.Request { return in.req }

// Reliable reports whether Ring sends its 180 reliably: the INVITE supports or requires 100rel
// and so does the phone.
func (in *Incoming) Reliable() bool { return in.reliable }

// Cancelled is closed when the caller cancels the call before it is answered.
func (in *Incoming) Cancelled() <-chan struct{} { return in.canceled }

// PRACKs are the PRACK requests the caller sent for this call's reliable provisional responses.
func (in *Incoming) PRACKs() []*sip.Request {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*sip.Request(nil), in.pracks...)
}

// Ring sends 180 Ringing. When reliable, the 180 carries Require: 100rel and an RSeq, is
// retransmitted at T1, 2*T1, ... until its PRACK arrives, and Ring returns once it has; with no
// PRACK within 64*T1 the call is rejected with 504 and ErrPRACKTimeout returned (RFC 3262 3).
func (in *Incoming) Ring() error {
	if err := in.waitPRACK(); err != nil {
		return err
	}
	in.mu.Lock()
	if in.final {
		in.mu.Unlock()
		return ErrFinalized
	}
	res := in.response(sip.StatusRinging, "Ringing", nil)
	var acked chan struct{}
	if in.reliable {
		in.rseq++
		res.AppendHeader(sip.NewHeader("Require", "100rel"))
		res.AppendHeader(sip.NewHeader("RSeq", itoa(in.rseq)))
		acked = make(chan struct{})
		in.unacked, in.unackedRSeq = acked, in.rseq
	}
	in.mu.Unlock()
	if err := in.respond(res); err != nil {
		return err
	}
	if acked == nil {
		return nil
	}

	// Retransmit at T1, 2*T1, 4*T1, ... and give up 64*T1 after the first transmission.
	interval, waited, limit := sip.T1, time.Duration(0), 64*sip.T1
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-acked:
			return nil
		case <-in.canceled:
			return ErrCanceled
		case <-in.finalized:
			return ErrFinalized
		case <-in.tx.Done():
			return fmt.Errorf("%w: INVITE: %w", ErrTransaction, in.tx.Err())
		case <-in.p.ctx.Done():
			return ErrClosed
		case <-timer.C:
			waited += interval
			if waited >= limit {
				_ = in.reject(sip.StatusGatewayTimeout, "No PRACK")
				return ErrPRACKTimeout
			}
			if err := in.respond(res); err != nil {
				return err
			}
			interval = min(2*interval, limit-waited)
			timer.Reset(interval)
		}
	}
}

// Answer answers with 200 OK and the phone's session description (the answer to the INVITE's
// offer, or an offer when it had none), and starts the call. The 200 is retransmitted until the
// ACK arrives. A reliable provisional response still unacknowledged is waited for first.
func (in *Incoming) Answer() (*Call, error) {
	if err := in.waitPRACK(); err != nil {
		return nil, err
	}
	in.mu.Lock()
	if in.final {
		in.mu.Unlock()
		return nil, ErrFinalized
	}
	in.final = true
	in.mu.Unlock()

	p := in.p
	media, err := p.newMedia()
	if err != nil {
		_ = in.respond(in.response(sip.StatusInternalServerError, "No RTP Port", nil))
		in.finish()
		return nil, err
	}
	cs := p.codecs
	if in.offer != nil {
		cs = []codec{in.codec}
	}
	local, err := sessionDescription(p.cfg.LocalIP, int(media.local.Port()), uint64(randUint32()), 1, cs)
	if err != nil {
		media.close()
		_ = in.respond(in.response(sip.StatusInternalServerError, "SDP", nil))
		in.finish()
		return nil, fmt.Errorf("sipphone: answer SDP: %w", err)
	}
	res := in.response(sip.StatusOK, "OK", local)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))

	d := uasDialog(in.req, in.localTag, randSeq(), in.req.Source())
	c := newCall(p, false, d, media)
	c.invite, c.answer, c.localSDP, c.serverTx = in.req, res, local, in.tx
	c.offerless = in.offer == nil
	c.setRemoteSDP(in.req.Body())
	if in.offer != nil {
		media.setRemote(*in.offer, in.codec)
	}
	if !c.register() {
		media.close()
		_ = in.respond(in.response(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil))
		in.finish()
		return nil, ErrClosed
	}
	if err := in.respond(res); err != nil {
		c.end()
		in.finish()
		return nil, err
	}
	in.finish()
	if in.offer != nil {
		c.startMedia()
	}
	if !p.goDo(c.retransmitAnswer) {
		c.end()
		return nil, ErrClosed
	}
	return c, nil
}

// Reject answers with a final error status (486 Busy Here, 480, 603...).
func (in *Incoming) Reject(code int, reason string) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("%w: %d", ErrBadStatus, code)
	}
	if err := in.waitPRACK(); err != nil {
		return err
	}
	return in.reject(code, reason)
}

func (in *Incoming) reject(code int, reason string) error {
	in.mu.Lock()
	if in.final {
		in.mu.Unlock()
		return ErrFinalized
	}
	in.final = true
	in.mu.Unlock()
	err := in.respond(in.response(code, reason, nil))
	in.finish()
	return err
}

func (in *Incoming) finish() { in.finalOnce.Do(func() { close(in.finalized) }) }

// waitPRACK waits until the reliable provisional response in flight, if any, is acknowledged:
// no other provisional or final response may be sent before (RFC 3262 3).
func (in *Incoming) waitPRACK() error {
	in.mu.Lock()
	acked := in.unacked
	in.mu.Unlock()
	if acked == nil {
		return nil
	}
	select {
	case <-acked:
		return nil
	case <-in.canceled:
		return ErrCanceled
	case <-in.finalized:
		return ErrFinalized
	case <-in.tx.Done():
		return fmt.Errorf("%w: INVITE: %w", ErrTransaction, in.tx.Err())
	case <-in.p.ctx.Done():
		return ErrClosed
	}
}

// response builds a response to the INVITE carrying our To tag (and, for 1xx and 2xx, our Contact).
func (in *Incoming) response(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(in.base, code, reason, body)
	if code < 300 {
		res.AppendHeader(in.p.contactHeader())
		in.p.commonHeaders(res)
	}
	return res
}

// respond hands a response to the INVITE transaction.
func (in *Incoming) respond(res *sip.Response) error {
	select {
	case <-in.canceled:
		return ErrCanceled
	default:
	}
	err := in.tx.Respond(res)
	if errors.Is(err, sip.ErrTransactionCanceled) {
		// The CANCEL won the race. sipgo ignored our response but keeps it as the one it
		// retransmits: put a 487 back in its place.
		_ = in.tx.Respond(in.response(sip.StatusRequestTerminated, "Request Terminated", nil))
		return ErrCanceled
	}
	if err != nil {
		return fmt.Errorf("%w: %d response: %w", ErrTransaction, res.StatusCode, err)
	}
	return nil
}

// prack matches a PRACK to the reliable provisional response it acknowledges.
func (in *Incoming) prack(req *sip.Request, rseq, cseq uint32, method string) (first, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if cseq != in.req.CSeq().SeqNo || !strings.EqualFold(method, string(sip.INVITE)) {
		return false, false
	}
	if in.acked[rseq] {
		return false, true // a retransmitted PRACK
	}
	if in.unacked == nil || rseq != in.unackedRSeq {
		return false, false
	}
	if in.acked == nil {
		in.acked = map[uint32]bool{}
	}
	in.acked[rseq] = true
	in.pracks = append(in.pracks, req)
	return true, true
}

// prackDone releases the waiters of the acknowledged provisional response.
func (in *Incoming) prackDone(rseq uint32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.unacked != nil && in.unackedRSeq == rseq {
		close(in.unacked)
		in.unacked = nil
	}
}

func (in *Incoming) markCanceled() { in.cancelOnce.Do(func() { close(in.canceled) }) }

// handleInvite takes a new INVITE to an Incoming and holds the transaction until it is settled:
// sipgo terminates the server transaction when its handler returns.
func (p *Phone) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.CallID() == nil || req.From() == nil || req.To() == nil || req.CSeq() == nil {
		p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	if req.To().Params.Has("tag") {
		p.handleReInvite(req, tx)
		return
	}
	var unsupported []string
	for _, tag := range optionTags(req, "Require") {
		if !strings.EqualFold(tag, "100rel") || !p.cfg.Support100rel {
			unsupported = append(unsupported, tag)
		}
	}
	if len(unsupported) > 0 {
		res := sip.NewResponseFromRequest(req, sip.StatusBadExtension, "Bad Extension", nil)
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
		p.respond(tx, res)
		return
	}

	in := &Incoming{
		p:         p,
		req:       req,
		tx:        tx,
		localTag:  sip.GenerateTagN(16),
		reliable:  p.cfg.Support100rel && (hasOptionTag(req, "Require", "100rel") || hasOptionTag(req, "Supported", "100rel")),
		rseq:      randSeq(),
		canceled:  make(chan struct{}),
		finalized: make(chan struct{}),
	}
	if len(req.Body()) > 0 {
		ra, err := parseAudio(req.Body())
		if err != nil {
			p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil))
			return
		}
		c, ok := negotiate(p.codecs, ra.codecs)
		if !ok {
			p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusNotAcceptableHere, "Not Acceptable Here", nil))
			return
		}
		in.offer, in.codec = &ra, c
	}
	in.base = req.Clone()
	in.base.To().Params.Add("tag", in.localTag)
	if !tx.OnCancel(func(*sip.Request) { in.markCanceled() }) {
		return // the transaction is over already
	}

	key := dialogKey(req.CallID().Value(), in.localTag, fromTag(req))
	p.mu.Lock()
	p.pending[key] = in
	handle := p.onIncoming
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, key)
		p.mu.Unlock()
	}()
	if handle == nil {
		handle = p.autoAnswer
	}
	p.log.Debug("incoming call", "from", req.From().Address.String(), "call", key)
	handle(in)

	select {
	case <-in.finalized:
	case <-in.canceled:
	case <-tx.Done():
	case <-p.ctx.Done():
		_ = in.reject(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
	}
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

// handleReInvite answers an INVITE within a call with the phone's session description, following
// the peer's new address if it sent one (hold, media relocation). Session changes are not
// negotiated further.
func (p *Phone) handleReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := p.callOf(req)
	if c == nil {
		p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	if len(req.Body()) > 0 {
		if ra, err := parseAudio(req.Body()); err == nil {
			if cd, ok := negotiate(p.codecs, ra.codecs); ok {
				c.media.setRemote(ra, cd)
				c.setRemoteSDP(req.Body())
			}
		}
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", c.localSDP)
	res.AppendHeader(p.contactHeader())
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	p.commonHeaders(res)
	p.respond(tx, res)
}

func (p *Phone) handleAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := p.callOf(req); c != nil {
		c.onAck(req)
	}
}

func (p *Phone) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.callOf(req)
	if c == nil {
		p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	p.log.Debug("call ended by peer", "call", c.CallID())
	c.end()
}

// handlePrack answers a PRACK (RFC 3262 4): 200 when it acknowledges the reliable provisional
// response in flight (or repeats an earlier PRACK), 481 otherwise.
func (p *Phone) handlePrack(req *sip.Request, tx sip.ServerTransaction) {
	key, _ := requestDialogKey(req)
	p.mu.Lock()
	in, established := p.pending[key], p.calls[key] != nil
	p.mu.Unlock()

	var rseq, cseq uint32
	var method string
	ok := false
	if h := req.GetHeader("RAck"); h != nil {
		_, err := fmt.Sscanf(h.Value(), "%d %d %s", &rseq, &cseq, &method)
		ok = err == nil
	}
	first := false
	switch {
	case in != nil && ok:
		first, ok = in.prack(req, rseq, cseq, method)
	case established:
		ok = true // a retransmitted PRACK after the answer
	default:
		ok = false
	}
	if !ok {
		p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	// The 200 goes out before the waiters of Ring are released, so it precedes the final response.
	p.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	if first {
		in.prackDone(rseq)
	}
}

// callOf finds the call an in-dialog request belongs to.
func (p *Phone) callOf(req *sip.Request) *Call {
	key, ok := requestDialogKey(req)
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

func fromTag(req *sip.Request) string {
	tag, _ := req.From().Params.Get("tag")
	return tag
}

// onAck confirms an answered incoming call; an ACK to an offer of ours carries the answer.
func (c *Call) onAck(req *sip.Request) {
	c.ackOnce.Do(func() {
		if c.offerless && len(req.Body()) > 0 {
			c.setRemoteSDP(req.Body())
			if ra, err := parseAudio(req.Body()); err == nil {
				if cd, ok := negotiate(c.p.codecs, ra.codecs); ok {
					c.media.setRemote(ra, cd)
					c.startMedia()
				}
			}
		}
		close(c.acked)
	})
}

// retransmitAnswer retransmits the 2xx of an incoming call at T1, 2*T1, ... T2 until the ACK; with
// no ACK in 64*T1 the call is hung up (RFC 3261 13.3.1.4).
func (c *Call) retransmitAnswer() {
	interval, waited := sip.T1, time.Duration(0)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-c.acked:
			return
		case <-c.done:
			return
		case <-c.p.ctx.Done():
			return
		case ack := <-c.serverTx.Acks(): // an ACK that reused the INVITE's branch
			c.onAck(ack)
			return
		case <-timer.C:
			waited += interval
			if waited >= 64*sip.T1 {
				c.p.log.Warn("no ACK for 200 OK, hanging up", "call", c.CallID())
				c.ackOnce.Do(func() { close(c.acked) })
				_ = c.Hangup(c.p.ctx)
				return
			}
			if err := c.serverTx.Respond(c.answer); err != nil {
				c.p.log.Debug("200 OK retransmission", "error", err)
			}
			interval = min(2*interval, sip.T2)
			timer.Reset(interval)
		}
	}
}
