package sipua

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Incoming is a call offered to one of the UA's accounts and not answered yet. Exactly one of
// Answer and Reject settles it, unless the caller cancels first (Cancelled closes; the UA has
// answered the CANCEL with 200 and the INVITE with 487).
type Incoming struct {
	u        *UA
	acc      *Account
	req      *sip.Request // as received
	base     *sip.Request // a copy with our To tag: every response is built from it
	tx       sip.ServerTransaction
	localTag string
	reliable bool // provisional responses are sent reliably (RFC 3262)
	timer    timerAnswer

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

// Account is the user of the account the call is for (the Request-URI's user, else To's).
func (in *Incoming) Account() string { return in.acc.User }

// Request is the INVITE as received.
func (in *Incoming) Request() *sip.Request { return in.req }

// Header is the value of a header field of the INVITE ("" when absent): X-Number carries the
// number the caller dialled through the PBX.
func (in *Incoming) Header(name string) string {
	if h := in.req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// Offer is the INVITE's SDP offer (nil when it had none: the answer then carries our offer).
func (in *Incoming) Offer() []byte { return in.req.Body() }

// Reliable reports whether provisional responses go reliably: the INVITE supports or requires
// 100rel and so does the UA.
func (in *Incoming) Reliable() bool { return in.reliable }

// Cancelled is closed when the caller cancels the call before it is answered.
func (in *Incoming) Cancelled() <-chan struct{} { return in.canceled }

// PRACKs are the PRACK requests the caller sent for this call's reliable provisional responses.
func (in *Incoming) PRACKs() []*sip.Request {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*sip.Request(nil), in.pracks...)
}

// Ring sends 180 Ringing (reliably when Reliable).
func (in *Incoming) Ring() error { return in.provisional(sip.StatusRinging, "Ringing", nil) }

// Progress sends 183 Session Progress with sdp, the answer to the offer, for early media
// (reliably when Reliable). The 2xx will carry the same answer.
func (in *Incoming) Progress(sdp []byte) error {
	return in.provisional(sip.StatusSessionInProgress, "Session Progress", sdp)
}

// provisional sends a provisional response. When reliable, it carries Require: 100rel and an
// RSeq, is retransmitted at T1, 2*T1, ... until its PRACK arrives, and provisional returns once
// it has; with no PRACK within 64*T1 the call is rejected with 504 and ErrPRACKTimeout returned
// (RFC 3262 3).
func (in *Incoming) provisional(code int, reason string, body []byte) error {
	if err := in.waitPRACK(); err != nil {
		return err
	}
	in.mu.Lock()
	if in.final {
		in.mu.Unlock()
		return ErrFinalized
	}
	res := in.response(code, reason, body)
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
		if ticked, err := in.await(acked, timer.C); !ticked {
			return err
		}
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

// await waits for done while the INVITE is pending (nil, or why it no longer is), or for a tick
// (ticked true).
func (in *Incoming) await(done <-chan struct{}, tick <-chan time.Time) (ticked bool, err error) {
	select {
	case <-done:
		return false, nil
	case <-tick:
		return true, nil
	case <-in.canceled:
		return false, ErrCanceled
	case <-in.finalized:
		return false, ErrFinalized
	case <-in.tx.Done():
		return false, fmt.Errorf("%w: INVITE: %w", ErrTransaction, in.tx.Err())
	case <-in.u.ctx.Done():
		return false, ErrClosed
	}
}

// Answer answers with 200 OK and sdp (the answer to the INVITE's offer, or an offer when it had
// none: the ACK brings the answer to h.Answer) and returns the dialog, handled by h. The 200 is
// retransmitted until the ACK arrives. A reliable provisional response still unacknowledged is
// waited for first.
func (in *Incoming) Answer(sdp []byte, h DialogHandler) (*Dialog, error) {
	return in.AnswerWith(sdp, h, nil)
}

// AnswerWith answers as Answer does and calls established with the dialog before the 200 OK
// leaves, so whatever the callee records about the call is in place before the caller can see
// the answer (on a virtual network the caller may run before Answer returns).
func (in *Incoming) AnswerWith(sdp []byte, h DialogHandler, established func(*Dialog)) (*Dialog, error) {
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

	u := in.u
	res := in.response(sip.StatusOK, "OK", sdp)
	in.timer.apply(res)
	transport := strings.ToLower(in.req.Transport())
	st := uasDialog(in.req, in.localTag, randSeq(), hop{addr: in.req.Source(), transport: transport})
	d := newDialog(u, in.acc, false, st, h)
	d.invite, d.answer = in.req, res
	d.localSDP, d.remoteSDP = sdp, in.req.Body()
	d.peerAllow = optionTags(in.req, "Allow")
	sv := newServed(in.req, res, in.tx)
	d.serving = sv
	if !d.register() {
		_ = in.respond(in.response(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil))
		in.finish()
		return nil, ErrClosed
	}
	if established != nil {
		established(d)
	}
	if err := in.respond(res); err != nil {
		d.end(EndedLocally)
		in.finish()
		return nil, err
	}
	in.finish()
	d.armSession(in.timer.interval, in.timer.weRefresh)
	if !u.Go(func() { d.retransmit(sv, sip.IsReliable(transport)) }) {
		d.end(EndedClosed)
		return nil, ErrClosed
	}
	return d, nil
}

// Reject answers with a final error status: 480 (user offline), 486 or 603 (refused), 488 (no
// common codec)...
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
	_, err := in.await(acked, nil)
	return err
}

// response builds a response to the INVITE carrying our To tag (and, for 1xx and 2xx, our
// Contact and what we support).
func (in *Incoming) response(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(in.base, code, reason, body)
	if code < 300 {
		res.AppendHeader(in.u.contactHeader(in.acc))
		in.u.commonHeaders(res)
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
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
func (u *UA) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.CallID() == nil || req.From() == nil || req.To() == nil || req.CSeq() == nil {
		u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	if req.To().Params.Has("tag") {
		u.inDialog(u.handleReInvite)(req, tx)
		return
	}
	var unsupported []string
	for _, tag := range optionTags(req, "Require") {
		if !u.supports(tag) {
			unsupported = append(unsupported, tag)
		}
	}
	if len(unsupported) > 0 {
		res := sip.NewResponseFromRequest(req, sip.StatusBadExtension, "Bad Extension", nil)
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(unsupported, ", ")))
		u.respond(tx, res)
		return
	}
	acc := u.accountOf(req)
	if acc == nil {
		u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusNotFound, "Not Found", nil))
		return
	}
	timer, ok := u.negotiateTimer(req, tx)
	if !ok {
		return
	}

	in := &Incoming{
		u:         u,
		acc:       acc,
		req:       req,
		tx:        tx,
		localTag:  sip.GenerateTagN(16),
		reliable:  u.cfg.Support100rel && (HasOption(req, "Require", "100rel") || HasOption(req, "Supported", "100rel")),
		timer:     timer,
		rseq:      randSeq(),
		canceled:  make(chan struct{}),
		finalized: make(chan struct{}),
	}
	in.base = req.Clone()
	in.base.To().Params.Add("tag", in.localTag)
	if !tx.OnCancel(func(*sip.Request) { in.markCanceled() }) {
		return // the transaction is over already
	}

	key := dialogKey(req.CallID().Value(), in.localTag, fromTag(req))
	u.mu.Lock()
	u.pending[key] = in
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pending, key)
		u.mu.Unlock()
	}()
	u.log.Debug("incoming call", "from", req.From().Address.String(), "account", acc.User, "call", key)
	if h := u.onIncoming.Load(); h != nil && *h != nil {
		(*h)(in)
	} else {
		_ = in.Reject(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
	}

	select {
	case <-in.finalized:
	case <-in.canceled:
	case <-tx.Done():
	case <-u.ctx.Done():
		_ = in.reject(sip.StatusTemporarilyUnavailable, "Temporarily Unavailable")
	}
}

// supports reports whether the UA supports the extension tag.
func (u *UA) supports(tag string) bool {
	return slices.ContainsFunc(u.supported(), func(t string) bool { return strings.EqualFold(t, tag) })
}

// handlePrack answers a PRACK (RFC 3262 4): 200 when it acknowledges the reliable provisional
// response in flight (or repeats an earlier PRACK), 481 otherwise.
func (u *UA) handlePrack(req *sip.Request, tx sip.ServerTransaction) {
	key, _ := requestDialogKey(req)
	u.mu.Lock()
	in, established := u.pending[key], u.dialogs[key] != nil
	u.mu.Unlock()

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
		u.noDialog(req, tx)
		return
	}
	// The 200 goes out before the waiters of Ring are released, so it precedes the final response.
	u.respond(tx, sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	if first {
		in.prackDone(rseq)
	}
}
