package sipphone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// errCancelCrossed: the callee answered while our CANCEL was on its way; the call was hung up.
var errCancelCrossed = errors.New("sipphone: answered before the CANCEL took effect; hung up")

// CallOption tunes one outgoing call.
type CallOption func(*callConfig)

type callConfig struct {
	headers       []sip.Header
	onProvisional func(*sip.Response)
	onEarlyMedia  func(*sip.Response)
}

// WithHeader adds a header field to the INVITE (X-Number, P-Asserted-Identity, ...).
func WithHeader(name, value string) CallOption {
	return func(c *callConfig) { c.headers = append(c.headers, sip.NewHeader(name, value)) }
}

// WithProvisionalHandler observes every 1xx of the INVITE once (a retransmitted reliable one is
// not passed again). It runs on the goroutine of Call: keep it short.
func WithProvisionalHandler(f func(*sip.Response)) CallOption {
	return func(c *callConfig) { c.onProvisional = f }
}

// WithEarlyMediaHandler observes 1xx responses that carry a session description (183 with early
// media). The phone records early RTP on the call's socket either way.
func WithEarlyMediaHandler(f func(*sip.Response)) CallOption {
	return func(c *callConfig) { c.onEarlyMedia = f }
}

// Call is an established call, outgoing or incoming.
type Call struct {
	p        *Phone
	outgoing bool
	dlg      *dialog
	media    *Media
	invite   *sip.Request  // the INVITE sent or received
	answer   *sip.Response // the 2xx received or sent
	localSDP []byte

	mu        sync.Mutex
	remoteSDP []byte
	pracks    []*sip.Response

	inviteTx sip.ClientTransaction // outgoing: kept to ACK retransmitted 2xx
	ack      *sip.Request          // outgoing: the ACK of the 2xx, under mu

	serverTx  sip.ServerTransaction // incoming: to retransmit the 2xx until the ACK
	acked     chan struct{}         // incoming: closed on the ACK
	offerless bool                  // incoming: the INVITE had no offer, the ACK brings the answer
	ackOnce   sync.Once

	done    chan struct{}
	endOnce sync.Once
}

func newCall(p *Phone, outgoing bool, d *dialog, m *Media) *Call {
	return &Call{p: p, outgoing: outgoing, dlg: d, media: m, acked: make(chan struct{}), done: make(chan struct{})}
}

// Done is closed when the call ends: BYE sent or received, or the phone closed.
func (c *Call) Done() <-chan struct{} { return c.done }

// Media is the call's RTP session.
func (c *Call) Media() *Media { return c.media }

// LocalSDP is the session description the phone sent (offer or answer).
func (c *Call) LocalSDP() []byte { return c.localSDP }

// RemoteSDP is the session description of the peer.
func (c *Call) RemoteSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteSDP
}

// CallID is the dialog's Call-ID.
func (c *Call) CallID() string { return c.dlg.callID }

// Outgoing reports whether the phone placed the call.
func (c *Call) Outgoing() bool { return c.outgoing }

// Invite is the INVITE that set the call up (sent or received).
func (c *Call) Invite() *sip.Request { return c.invite }

// Answer is the 2xx that established the call (received or sent).
func (c *Call) Answer() *sip.Response { return c.answer }

// PRACKs are the final responses to the PRACKs this phone sent while the call was set up.
func (c *Call) PRACKs() []*sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Response(nil), c.pracks...)
}

// Hangup sends BYE and waits for its answer. The call ends when the BYE is sent; a non-2xx answer
// is returned as a *StatusError. Hanging up an ended call does nothing.
func (c *Call) Hangup(ctx context.Context) error {
	if !c.outgoing {
		// RFC 3261 15: the callee does not send BYE before the ACK (or its timeout).
		select {
		case <-c.acked:
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-c.p.ctx.Done():
			return ErrClosed
		}
	}
	if !c.end() {
		return nil
	}
	req := c.dlg.request(sip.BYE, 0)
	req.AppendHeader(sip.NewHeader("User-Agent", c.p.opts.userAgent))
	res, err := c.p.send(ctx, req, c.dlg.nextSeq)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return statusError(sip.BYE, res)
	}
	return nil
}

// byeAndForget ends the call with a BYE whose answer nobody waits for (Close).
func (c *Call) byeAndForget() {
	if !c.end() {
		return
	}
	if tx, err := c.p.request(c.p.ctx, c.dlg.request(sip.BYE, 0)); err == nil {
		tx.Terminate()
	}
}

// end ends the call once: it leaves the phone's calls, its media stops, Done closes. It reports
// whether this call ended it.
func (c *Call) end() bool {
	ended := false
	c.endOnce.Do(func() {
		ended = true
		c.p.mu.Lock()
		if c.p.calls[c.dlg.key()] == c {
			delete(c.p.calls, c.dlg.key())
		}
		c.p.mu.Unlock()
		c.media.close()
		if c.inviteTx != nil {
			c.inviteTx.Terminate()
		}
		close(c.done) // last: whoever waits on Done finds the call fully stopped
	})
	return ended
}

func (c *Call) resendAck() {
	c.mu.Lock()
	ack := c.ack
	c.mu.Unlock()
	if ack == nil {
		return
	}
	if err := c.p.write(ack.Clone()); err != nil {
		c.p.log.Debug("ACK retransmission", "error", err)
	}
}

func (c *Call) setRemoteSDP(b []byte) {
	c.mu.Lock()
	c.remoteSDP = b
	c.mu.Unlock()
}

// register makes the call findable by in-dialog requests; false when the phone is closing.
func (c *Call) register() bool {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.p.closed {
		return false
	}
	c.p.calls[c.dlg.key()] = c
	return true
}

func (c *Call) startMedia() {
	if c.p.opts.manualMedia {
		return
	}
	if err := c.media.Start(); err != nil {
		c.p.log.Debug("media start", "call", c.CallID(), "error", err)
	}
}

// Call places a call. target is a user ("1001", sent to the registrar as sip:1001@Domain), or a
// SIP URI ("sip:bob@10.77.0.3:5062", sent to its host directly when that is an IP address). It
// waits for the final response: a 2xx is acknowledged and returns the call, with the tone
// started; a non-2xx returns a *StatusError. 401/407 challenges are answered once with the
// phone's credentials. Reliable provisional responses (Require: 100rel) are PRACKed.
//
// Cancelling ctx before the answer sends CANCEL, once a provisional response has arrived
// (RFC 3261 9.1), and returns the *StatusError of the 487 joined with ctx's error.
func (p *Phone) Call(ctx context.Context, target string, opts ...CallOption) (*Call, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	var cc callConfig
	for _, opt := range opts {
		opt(&cc)
	}
	ruri, dest, err := p.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	media, err := p.newMedia()
	if err != nil {
		return nil, err
	}
	o := &outgoing{p: p, cfg: cc, media: media, dest: dest, seq: new(atomic.Uint32), rseqs: map[string]uint32{}}
	c, err := o.run(ctx, ruri)
	if err != nil {
		media.close()
		return nil, err
	}
	return c, nil
}

// resolveTarget turns Call's target into a Request-URI and the address of the next hop.
func (p *Phone) resolveTarget(target string) (sip.Uri, string, error) {
	var u sip.Uri
	bare := false
	lower := strings.ToLower(target)
	switch {
	case target == "":
		return u, "", fmt.Errorf("%w: empty", ErrBadTarget)
	case strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:"):
		if err := sip.ParseUri(target, &u); err != nil {
			return u, "", fmt.Errorf("%w: %q: %w", ErrBadTarget, target, err)
		}
	case strings.Contains(target, "@"):
		if err := sip.ParseUri("sip:"+target, &u); err != nil {
			return u, "", fmt.Errorf("%w: %q: %w", ErrBadTarget, target, err)
		}
	default:
		u, bare = sip.Uri{Scheme: "sip", User: target, Host: p.domain()}, true
	}
	if u.Scheme != "sip" {
		return u, "", fmt.Errorf("%w: %q: only sip: over UDP", ErrBadTarget, target)
	}
	if dest, ok := uriDestination(u); ok && !bare {
		return u, dest, nil
	}
	if p.cfg.Registrar.IsValid() {
		return u, p.cfg.Registrar.String(), nil
	}
	if dest, ok := uriDestination(u); ok {
		return u, dest, nil
	}
	return u, "", fmt.Errorf("%w: to reach %q", ErrNoRegistrar, target)
}

// outgoing is one INVITE client transaction (and its authenticated retry) until the answer.
type outgoing struct {
	p     *Phone
	cfg   callConfig
	media *Media
	dest  string
	offer []byte

	req         *sip.Request // the INVITE in flight; a retry is a copy
	tx          sip.ClientTransaction
	seq         *atomic.Uint32 // our CSeq, shared by the INVITE's early dialogs and the call
	provisional bool           // a provisional response arrived: CANCEL is allowed
	authTried   bool
	earlySDP    []byte

	rseqs      map[string]uint32 // last RSeq PRACKed, by To tag
	prackDone  []chan struct{}
	prackMu    sync.Mutex
	prackFinal []*sip.Response
}

func (o *outgoing) run(ctx context.Context, ruri sip.Uri) (*Call, error) {
	p := o.p
	offer, err := sessionDescription(p.cfg.LocalIP, int(o.media.local.Port()), uint64(randUint32()), 1, p.codecs)
	if err != nil {
		return nil, fmt.Errorf("sipphone: offer: %w", err)
	}
	o.offer = offer
	req := sip.NewRequest(sip.INVITE, ruri)
	req.AppendHeader(p.fromHeader(sip.GenerateTagN(16)))
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: ruri.Scheme, User: ruri.User, Host: ruri.Host, Port: ruri.Port}})
	callID := sip.CallIDHeader(newCallID())
	req.AppendHeader(&callID)
	o.seq.Store(randSeq())
	req.AppendHeader(&sip.CSeqHeader{SeqNo: o.seq.Load(), MethodName: sip.INVITE})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(p.contactHeader())
	p.commonHeaders(req)
	for _, h := range o.cfg.headers {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	req.SetDestination(o.dest)

	o.req = req
	if o.tx, err = p.request(ctx, req); err != nil {
		return nil, err
	}
	for {
		select {
		case res := <-o.tx.Responses():
			if c, done, err := o.handle(ctx, res); done {
				return c, err
			}
		case <-o.tx.Done():
			return nil, fmt.Errorf("%w: INVITE %s: %w", ErrTransaction, ruri.String(), o.tx.Err())
		case <-ctx.Done():
			return o.cancel(ctx.Err())
		case <-p.ctx.Done():
			o.tx.Terminate()
			return nil, ErrClosed
		}
	}
}

// handle processes one response to the INVITE; done says whether it was final.
func (o *outgoing) handle(ctx context.Context, res *sip.Response) (c *Call, done bool, err error) {
	p := o.p
	switch {
	case res.IsProvisional():
		o.provisional = true
		o.onProvisional(res)
		return nil, false, nil
	case res.IsSuccess():
		c, err := o.established(ctx, res)
		return c, true, err
	case isChallenge(res) && !o.authTried && p.cfg.Password != "":
		o.authTried = true
		o.tx.Terminate()
		req := o.req.Clone() // the ended transaction still reads o.req
		if err := p.authorize(req, res); err != nil {
			return nil, true, err
		}
		req.CSeq().SeqNo = o.seq.Add(1)
		req.RemoveHeader("Via")
		tx, err := p.request(ctx, req)
		if err != nil {
			return nil, true, err
		}
		o.req, o.tx, o.provisional = req, tx, false
		return nil, false, nil
	default:
		// The transaction ACKs the non-2xx and absorbs its retransmissions until Timer D.
		return nil, true, statusError(sip.INVITE, res)
	}
}

func (o *outgoing) onProvisional(res *sip.Response) {
	if rseq, ok := reliableRSeq(res); ok {
		tag, _ := res.To().Params.Get("tag")
		if last, seen := o.rseqs[tag]; seen && rseq <= last {
			return // a retransmission: our PRACK transaction retransmits on its own
		}
		o.rseqs[tag] = rseq
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
	if res.StatusCode == sip.StatusTrying || !hasOptionTag(res, "Require", "100rel") {
		return 0, false
	}
	return headerUint(res, "RSeq")
}

// prack acknowledges a reliable provisional response in its early dialog (RFC 3262 7.2).
func (o *outgoing) prack(res *sip.Response, rseq uint32) {
	p := o.p
	if res.To() == nil || !res.To().Params.Has("tag") {
		return
	}
	d := uacDialog(o.req, res, o.seq, o.dest)
	req := d.request(sip.PRACK, 0)
	req.AppendHeader(sip.NewHeader("RAck", fmt.Sprintf("%d %d %s", rseq, o.req.CSeq().SeqNo, sip.INVITE)))
	done := make(chan struct{})
	o.prackDone = append(o.prackDone, done)
	if !p.goDo(func() {
		defer close(done)
		r, err := p.send(p.ctx, req, d.nextSeq)
		if err != nil {
			p.log.Warn("PRACK failed", "rseq", rseq, "error", err)
			return
		}
		o.prackMu.Lock()
		o.prackFinal = append(o.prackFinal, r)
		o.prackMu.Unlock()
	}) {
		close(done)
	}
}

// established acknowledges the 2xx and starts the call.
func (o *outgoing) established(ctx context.Context, res *sip.Response) (*Call, error) {
	p := o.p
	// PRACK answers usually arrive before the 2xx; wait so that the call reports them.
	for _, done := range o.prackDone {
		select {
		case <-done:
		case <-ctx.Done():
		case <-p.ctx.Done():
		}
	}
	d := uacDialog(o.req, res, o.seq, o.dest)
	c := newCall(p, true, d, o.media)
	c.invite, c.answer, c.localSDP, c.inviteTx = o.req, res, o.offer, o.tx
	o.prackMu.Lock()
	c.pracks = append(c.pracks, o.prackFinal...)
	o.prackMu.Unlock()

	// Findable before the ACK leaves: the callee may send BYE right after it.
	if !c.register() {
		c.byeAndForget()
		return nil, ErrClosed
	}
	ack := d.request(sip.ACK, o.req.CSeq().SeqNo)
	if err := p.write(ack); err != nil {
		c.end()
		return nil, fmt.Errorf("%w: ACK: %w", ErrTransaction, err)
	}
	c.mu.Lock()
	c.ack = ack
	c.mu.Unlock()
	o.tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			c.resendAck()
		}
	})

	body := res.Body()
	if len(body) == 0 {
		body = o.earlySDP // the answer came in a reliable provisional response
	}
	c.setRemoteSDP(body)
	ra, err := parseAudio(body)
	if err == nil {
		if cd, ok := negotiate(p.codecs, ra.codecs); ok {
			o.media.setRemote(ra, cd)
			c.startMedia()
			return c, nil
		}
		err = ErrNoCommonCodec
	}
	// Established but useless: end it properly.
	_ = c.Hangup(ctx)
	return nil, fmt.Errorf("sipphone: answer of %s: %w", o.req.Recipient.String(), err)
}

// cancel cancels the INVITE after ctx ended (RFC 3261 9.1) and waits for its final response.
func (o *outgoing) cancel(cause error) (*Call, error) {
	p := o.p
	// No CANCEL before a provisional response; a final one may come first.
	for !o.provisional {
		select {
		case res := <-o.tx.Responses():
			c, done, err := o.handle(p.ctx, res)
			if !done {
				continue
			}
			if c != nil {
				_ = c.Hangup(p.ctx)
				return nil, fmt.Errorf("%w: %w", errCancelCrossed, cause)
			}
			return nil, fmt.Errorf("%w: %w", err, cause)
		case <-o.tx.Done():
			return nil, fmt.Errorf("%w: INVITE: %w: %w", ErrTransaction, o.tx.Err(), cause)
		case <-p.ctx.Done():
			o.tx.Terminate()
			return nil, ErrClosed
		}
	}

	if res, err := p.send(p.ctx, o.cancelRequest(), nil); err != nil {
		p.log.Warn("CANCEL failed", "error", err)
	} else if !res.IsSuccess() {
		p.log.Debug("CANCEL answered", "status", res.StatusCode)
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
				if c, err := o.established(p.ctx, res); err == nil {
					_ = c.Hangup(p.ctx)
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
		case <-p.ctx.Done():
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
	req.SetDestination(inv.Destination())
	req.SetBody(nil)
	return req
}
