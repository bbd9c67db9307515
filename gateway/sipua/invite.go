package sipua

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// errCancelCrossed: the callee answered while our CANCEL was on its way; the call was hung up.
var errCancelCrossed = errors.New("sipua: answered before the CANCEL took effect; hung up")

// InviteOption tunes one outgoing INVITE.
type InviteOption func(*inviteConfig)

type inviteConfig struct {
	headers       []sip.Header
	onProvisional func(*sip.Response)
	onEarlyMedia  func(*sip.Response)
	handler       DialogHandler
}

// WithHeader adds a header field to the INVITE (X-Number, P-Asserted-Identity, ...).
func WithHeader(name, value string) InviteOption {
	return func(c *inviteConfig) { c.headers = append(c.headers, sip.NewHeader(name, value)) }
}

// OnProvisional observes every 1xx of the INVITE once (a retransmitted reliable one is not
// passed again): 180 is ringing, 183 session progress. It runs on the goroutine of Invite: keep
// it short.
func OnProvisional(f func(*sip.Response)) InviteOption {
	return func(c *inviteConfig) { c.onProvisional = f }
}

// OnEarlyMedia observes the 1xx responses that carry a session description (183 with early
// media): the body is the answer to the INVITE's offer.
func OnEarlyMedia(f func(*sip.Response)) InviteOption {
	return func(c *inviteConfig) { c.onEarlyMedia = f }
}

// WithHandler sets how the dialog reacts to the callee's in-dialog requests.
func WithHandler(h DialogHandler) InviteOption { return func(c *inviteConfig) { c.handler = h } }

// Invite places a call from the account from to target: a user or number ("1001", sent to
// Server as sip:1001@Domain) or a SIP URI (sent to its host directly when that is an IP
// address). offer is the SDP offer. Invite waits for the final response: a 2xx is acknowledged
// and returns the dialog; a non-2xx returns a *StatusError. 401/407 challenges are answered once
// with the account's credentials, a 422 once with the Min-SE asked. Reliable provisional
// responses (Require: 100rel) are PRACKed.
//
// Cancelling ctx before the answer sends CANCEL, once a provisional response has arrived
// (RFC 3261 9.1), and returns the *StatusError of the 487 joined with ctx's error.
func (u *UA) Invite(ctx context.Context, from, target string, offer []byte, opts ...InviteOption) (*Dialog, error) {
	if err := u.ready(); err != nil {
		return nil, err
	}
	acc, err := u.account(from)
	if err != nil {
		return nil, err
	}
	if len(offer) == 0 {
		return nil, ErrNoOffer
	}
	var cfg inviteConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	ruri, next, err := u.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	o := &outgoing{u: u, acc: acc, cfg: cfg, next: next, offer: offer, seq: new(atomic.Uint32),
		rseqs: map[string]bool{}, sessionExpires: u.cfg.SessionExpires, minSE: u.cfg.MinSE}
	return o.run(ctx, ruri)
}

// outgoing is one INVITE client transaction (and its authenticated retry) until the answer.
type outgoing struct {
	u     *UA
	acc   *Account
	cfg   inviteConfig
	next  hop
	offer []byte

	req            *sip.Request // the INVITE in flight; a retry is a copy
	tx             sip.ClientTransaction
	seq            *atomic.Uint32 // our CSeq, shared by the INVITE's early dialogs and the dialog
	provisional    bool           // a provisional response arrived: CANCEL is allowed
	authTried      bool
	minSETried     bool
	sessionExpires time.Duration
	minSE          time.Duration
	earlySDP       []byte

	rseqs      map[string]bool // the RSeqs PRACKed, by To tag and RSeq
	prackDone  []chan struct{}
	prackMu    sync.Mutex
	prackFinal []*sip.Response
}

func (o *outgoing) run(ctx context.Context, ruri sip.Uri) (*Dialog, error) {
	u := o.u
	o.seq.Store(randSeq())
	req := u.outOfDialog(sip.INVITE, o.acc, ruri, o.seq.Load())
	o.setSessionExpires(req)
	for _, h := range o.cfg.headers {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(o.offer)
	o.next.apply(req)

	o.req = req
	var err error
	if o.tx, err = u.request(ctx, req); err != nil {
		return nil, err
	}
	for {
		select {
		case res := <-o.tx.Responses():
			if d, done, err := o.handle(ctx, res); done {
				return d, err
			}
		case <-o.tx.Done():
			return nil, fmt.Errorf("%w: INVITE %s: %w", ErrTransaction, ruri.String(), o.tx.Err())
		case <-ctx.Done():
			return o.cancel(ctx.Err())
		case <-u.ctx.Done():
			o.tx.Terminate()
			return nil, ErrClosed
		}
	}
}

// setSessionExpires asks for session timers (RFC 4028 7.1): the UAS picks the refresher.
func (o *outgoing) setSessionExpires(req *sip.Request) {
	if o.sessionExpires <= 0 {
		return
	}
	req.RemoveHeader("Session-Expires")
	req.RemoveHeader("Min-SE")
	req.AppendHeader(sip.NewHeader("Session-Expires", seconds(o.sessionExpires)))
	req.AppendHeader(sip.NewHeader("Min-SE", seconds(o.minSE)))
}

// handle processes one response to the INVITE; done says whether it was final.
func (o *outgoing) handle(ctx context.Context, res *sip.Response) (d *Dialog, done bool, err error) {
	switch {
	case res.IsProvisional():
		o.provisional = true
		o.onProvisional(res)
		return nil, false, nil
	case res.IsSuccess():
		d, err := o.established(ctx, res)
		return d, true, err
	case isChallenge(res) && !o.authTried && o.acc.Password != "":
		o.authTried = true
		return nil, false, o.retry(ctx, func(req *sip.Request) error { return authorize(o.acc, req, res) })
	case res.StatusCode == statusIntervalTooSmall && !o.minSETried && o.sessionExpires > 0:
		// 422: ask again with at least the Min-SE the UAS wants (RFC 4028 7.3).
		o.minSETried = true
		minSE, ok := HeaderUint(res, "Min-SE")
		if !ok {
			return nil, true, statusError(sip.INVITE, res)
		}
		o.minSE = max(o.minSE, time.Duration(minSE)*time.Second)
		o.sessionExpires = max(o.sessionExpires, o.minSE)
		return nil, false, o.retry(ctx, func(req *sip.Request) error {
			o.setSessionExpires(req)
			return nil
		})
	default:
		// The transaction ACKs the non-2xx and absorbs its retransmissions until Timer D.
		return nil, true, statusError(sip.INVITE, res)
	}
}

// retry sends the INVITE again, changed by edit, with the next CSeq in a new transaction.
func (o *outgoing) retry(ctx context.Context, edit func(*sip.Request) error) error {
	o.tx.Terminate()
	req := o.req.Clone() // the ended transaction still reads o.req
	if err := edit(req); err != nil {
		return err
	}
	req.CSeq().SeqNo = o.seq.Add(1)
	req.RemoveHeader("Via")
	tx, err := o.u.request(ctx, req)
	if err != nil {
		return err
	}
	o.req, o.tx, o.provisional = req, tx, false
	return nil
}

func (o *outgoing) onProvisional(res *sip.Response) {
	if rseq, ok := reliableRSeq(res); ok {
		// sipgo hands responses over on goroutines of their own, so two reliable provisional
		// responses sent back to back (a 180 then a 183) can arrive swapped: each RSeq not seen
		// yet is PRACKed and passed on, rather than only last+1 (RFC 3262 4).
		tag, _ := res.To().Params.Get("tag")
		key := tag + "|" + itoa(rseq)
		if o.rseqs[key] {
			return // a retransmission: our PRACK transaction retransmits on its own
		}
		o.rseqs[key] = true
		o.prack(res, rseq)
	}
	if len(res.Body()) > 0 {
		o.earlySDP = res.Body()
	}
	if o.cfg.onProvisional != nil {
		o.cfg.onProvisional(res)
	}
	if len(res.Body()) > 0 && o.cfg.onEarlyMedia != nil {
		o.cfg.onEarlyMedia(res)
	}
}

// reliableRSeq returns the RSeq of a reliable provisional response (RFC 3262).
func reliableRSeq(res *sip.Response) (uint32, bool) {
	if res.StatusCode == sip.StatusTrying || !HasOption(res, "Require", "100rel") {
		return 0, false
	}
	return HeaderUint(res, "RSeq")
}

// prack acknowledges a reliable provisional response in its early dialog (RFC 3262 7.2).
func (o *outgoing) prack(res *sip.Response, rseq uint32) {
	u := o.u
	if res.To() == nil || !res.To().Params.Has("tag") {
		return
	}
	d := uacDialog(o.req, res, o.seq, o.next)
	req := d.request(sip.PRACK, 0)
	req.AppendHeader(sip.NewHeader("RAck", fmt.Sprintf("%d %d %s", rseq, o.req.CSeq().SeqNo, sip.INVITE)))
	done := make(chan struct{})
	o.prackDone = append(o.prackDone, done)
	if !u.Go(func() {
		defer close(done)
		r, err := u.send(u.ctx, o.acc, req, d.nextSeq)
		if err != nil {
			u.log.Warn("PRACK failed", "rseq", rseq, "error", err)
			return
		}
		o.prackMu.Lock()
		o.prackFinal = append(o.prackFinal, r)
		o.prackMu.Unlock()
	}) {
		close(done)
	}
}

// established acknowledges the 2xx and makes the dialog.
func (o *outgoing) established(ctx context.Context, res *sip.Response) (*Dialog, error) {
	u := o.u
	// PRACK answers usually arrive before the 2xx; wait so that the dialog reports them.
	for _, done := range o.prackDone {
		select {
		case <-done:
		case <-ctx.Done():
		case <-u.ctx.Done():
		}
	}
	st := uacDialog(o.req, res, o.seq, o.next)
	d := newDialog(u, o.acc, true, st, o.cfg.handler)
	d.invite, d.answer, d.inviteTx = o.req, res, o.tx
	d.peerAllow = optionTags(res, "Allow")
	body := res.Body()
	if len(body) == 0 {
		body = o.earlySDP // the answer came in a provisional response
	}
	d.localSDP, d.remoteSDP = o.offer, body
	o.prackMu.Lock()
	d.pracks = append(d.pracks, o.prackFinal...)
	o.prackMu.Unlock()
	d.confirm()

	// Findable before the ACK leaves: the callee may send BYE right after it.
	if !d.register() {
		d.byeAndForget()
		return nil, ErrClosed
	}
	if err := d.sendAck(o.req.CSeq().SeqNo); err != nil {
		d.end(EndedLocally)
		return nil, err
	}
	o.tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			d.resendAck(r.CSeq().SeqNo)
		}
	})
	d.sessionTimerFromAnswer(res)
	return d, nil
}

// cancel cancels the INVITE after ctx ended (RFC 3261 9.1) and waits for its final response.
func (o *outgoing) cancel(cause error) (*Dialog, error) {
	u := o.u
	// No CANCEL before a provisional response; a final one may come first.
	for !o.provisional {
		select {
		case res := <-o.tx.Responses():
			d, done, err := o.handle(u.ctx, res)
			if !done {
				continue
			}
			if d != nil {
				_ = d.Hangup(u.ctx)
				return nil, fmt.Errorf("%w: %w", errCancelCrossed, cause)
			}
			return nil, fmt.Errorf("%w: %w", err, cause)
		case <-o.tx.Done():
			return nil, fmt.Errorf("%w: INVITE: %w: %w", ErrTransaction, o.tx.Err(), cause)
		case <-u.ctx.Done():
			o.tx.Terminate()
			return nil, ErrClosed
		}
	}

	if res, err := u.send(u.ctx, o.acc, o.cancelRequest(), nil); err != nil {
		u.log.Warn("CANCEL failed", "error", err)
	} else if !res.IsSuccess() {
		u.log.Debug("CANCEL answered", "status", res.StatusCode)
	}

	// A UAC cannot count on the 487: give up after 64*T1 (RFC 3261 9.1).
	timer := time.NewTimer(64 * sip.T1)
	defer timer.Stop()
	for {
		select {
		case res := <-o.tx.Responses():
			switch {
			case res.IsProvisional():
				continue
			case res.IsSuccess():
				if d, err := o.established(u.ctx, res); err == nil {
					_ = d.Hangup(u.ctx)
				}
				return nil, fmt.Errorf("%w: %w", errCancelCrossed, cause)
			default:
				return nil, fmt.Errorf("%w: %w", statusError(sip.INVITE, res), cause)
			}
		case <-o.tx.Done():
			return nil, fmt.Errorf("%w: INVITE: %w: %w", ErrTransaction, o.tx.Err(), cause)
		case <-timer.C:
			o.tx.Terminate()
			return nil, fmt.Errorf("%w: no final response after CANCEL: %w", ErrTransaction, cause)
		case <-u.ctx.Done():
			o.tx.Terminate()
			return nil, ErrClosed
		}
	}
}

// cancelRequest builds the CANCEL of the INVITE in flight (RFC 3261 9.1): same Request-URI, top
// Via, From, To, Call-ID, CSeq number and Route.
func (o *outgoing) cancelRequest() *sip.Request {
	inv := o.req
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(inv.Via().Clone())
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	sip.CopyHeaders("Route", inv, req)
	o.next.apply(req)
	req.SetBody(nil)
	return req
}
