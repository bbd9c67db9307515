package pbx

import (
	"errors"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

// fork is one B leg of a bridge while it rings: its INVITE transaction, its own media endpoints
// towards its phone, and, once it carries the caller's media, the relays joining those to the
// A leg's endpoints.
type fork struct {
	b         *leg
	reg       Registration
	tx        sip.ClientTransaction
	relays    []*rtprelay.Relay
	connected bool
	done      bool // it has its final response, or its transaction ended
}

// newForks prepares one B leg per registration (endpoints, offer, INVITE). A registration whose
// leg cannot be prepared is skipped; the cause of the last such failure is returned with the
// others.
func (c *call) newForks(user, domain string, regs []Registration) ([]*fork, string) {
	forks := make([]*fork, 0, len(regs))
	var cause string
	for _, reg := range regs {
		f, err := c.newFork(user, domain, reg)
		if err != "" {
			cause = err
			continue
		}
		forks = append(forks, f)
	}
	return forks, cause
}

// newFork prepares the B leg towards one registration: one PBX endpoint per m-line of the
// caller's offer, and the offer rewritten to name them.
func (c *call) newFork(user, domain string, reg Registration) (*fork, string) {
	b := c.newBLeg(user, domain, reg)
	b.eps = make([]*rtprelay.Endpoint, len(c.a.media))
	for i, m := range c.a.media {
		if m.Port == 0 {
			continue
		}
		e, err := c.p.alloc.Allocate()
		if err != nil {
			c.log.Error("bridge: RTP ports", "err", err)
			closeAll(b.eps)
			return nil, causeNormalTempFail
		}
		b.eps[i] = e
	}
	offer, err := b.nextSDP(c.a.invite.Body(), true)
	if err != nil {
		c.log.Error("bridge: rewrite offer", "err", err)
		closeAll(b.eps)
		return nil, causeIncompatibleDest
	}
	b.invite = c.bInvite(b, reg, offer)
	return &fork{b: b, reg: reg}, ""
}

// connect joins the fork's endpoints to the A leg's with one relay per m-line: from then on the
// fork and the caller hear each other. At most one fork of a call is connected at a time, since
// a relay reads the A leg's sockets.
func (f *fork) connect(a *leg) {
	if f.connected {
		return
	}
	f.connected = true
	for i, e := range f.b.eps {
		if e == nil || i >= len(a.eps) || a.eps[i] == nil {
			continue
		}
		r := rtprelay.NewRelay(a.eps[i], e)
		r.Start()
		f.relays = append(f.relays, r)
	}
}

// disconnect stops the fork's relays; its endpoints stay open.
func (f *fork) disconnect() {
	for _, r := range f.relays {
		r.Close()
	}
	f.relays, f.connected = nil, false
}

// release frees everything a fork that did not win holds: relays, endpoints (its RTP ports),
// its transaction and its place in the call table.
func (f *fork) release(p *Embedded) {
	f.disconnect()
	closeAll(f.b.eps)
	if f.tx != nil {
		f.tx.Terminate()
	}
	p.removeLeg(f.b)
}

// sendForks sends the INVITE of every fork. A fork whose INVITE cannot be sent is released and
// fails with DESTINATION_OUT_OF_ORDER; the forks sent and the cause of the last failure (or the
// cause given) are returned.
func (c *call) sendForks(forks []*fork, cause string) ([]*fork, string) {
	sent := forks[:0]
	for _, f := range forks {
		c.p.addLeg(f.b)
		tx, err := c.p.cli.TransactionRequest(c.p.ctx, f.b.invite, sipnet.BuildRequest)
		if err != nil {
			c.log.Warn("bridge: send INVITE", "contact", f.reg.Contact.String(), "err", err)
			f.release(c.p)
			cause = causeDestOutOfOrder
			continue
		}
		f.tx = tx
		c.log.Info("originate", "to", f.reg.User+"@"+f.reg.Domain, "contact", f.reg.Contact.String(), "callid", f.b.callID)
		sent = append(sent, f)
	}
	return sent, cause
}

// ringing is the state of the B legs of one bridge until one answers or all fail.
type ringing struct {
	forks          []*fork
	media          *fork // the fork connected to the A leg, if any
	ringing, early bool  // the caller got a 180 / a 183 with session description
	cause          string
}

func (r *ringing) pending() []*fork {
	var out []*fork
	for _, f := range r.forks {
		if !f.done {
			out = append(out, f)
		}
	}
	return out
}

// fail records a fork's failure. The bridge's cause, when every fork fails, is USER_BUSY if any
// fork was busy (a busy device says more about the user than another one's silence, and it is
// what a caller expects when the user is on the phone), else the cause of the last fork to fail.
// A 6xx never gets here: it ends the bridge at once (see ringForks).
func (r *ringing) fail(cause string) {
	if r.cause != causeUserBusy {
		r.cause = cause
	}
}

// ringForks waits for the forks' responses, as FreeSWITCH's originate does for the
// comma-separated contacts of a user/ dial string. Every fork rings; the first 180 from any of
// them reaches the caller as 180, the first 183 with a session description as the caller's
// early media (that fork is then connected, and no later 183 replaces it). The first 2xx wins:
// the other forks are cancelled and the winner is bridged. Like a forking proxy (RFC 3261
// 16.7), a 6xx ends the bridge at once with its cause and cancels the rest; otherwise the
// bridge fails when the last fork does, with the cause ringing.fail picks. call_timeout and the
// caller's CANCEL cancel every fork. The causes are the single-leg ones: sipToCause of a final
// response, and NO_USER_RESPONSE or DESTINATION_OUT_OF_ORDER for a transaction that ended
// without one.
func (c *call) ringForks(forks []*fork, cause string) (bool, string) {
	r := &ringing{forks: forks, cause: cause}
	for _, f := range forks {
		if f.connected {
			r.media = f
		}
	}
	timeout := 60 * time.Second
	if n, err := strconv.Atoi(c.vars0("call_timeout")); err == nil && n > 0 {
		timeout = time.Duration(n) * time.Second
	}
	noAnswer := time.NewTimer(timeout)
	defer noAnswer.Stop()

	for {
		pending := r.pending()
		if len(pending) == 0 {
			return false, r.cause
		}
		// One select over a varying number of transactions; reflect.Select needs no helper
		// goroutine per fork, which could not hand a transaction back for its CANCEL.
		cases := []reflect.SelectCase{recvCase(noAnswer.C), recvCase(c.ctx.Done())}
		for _, f := range pending {
			cases = append(cases, recvCase(f.tx.Responses()), recvCase(f.tx.Done()))
		}
		i, v, ok := reflect.Select(cases)
		switch {
		case i == 0:
			c.cancelForks(pending, true)
			return false, causeNoAnswer
		case i == 1:
			c.cancelForks(pending, true)
			return false, causeOriginatorCancel
		}
		f := pending[(i-2)/2]
		if (i-2)%2 == 1 || !ok {
			r.ended(c, f)
			continue
		}
		res, _ := v.Interface().(*sip.Response)
		if res == nil {
			continue
		}
		if done, bridged, cause := c.onForkResponse(r, f, res); done {
			return bridged, cause
		}
	}
}

func recvCase[T any](ch <-chan T) reflect.SelectCase {
	return reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
}

// ended handles a fork whose transaction ended without a final response.
func (r *ringing) ended(c *call, f *fork) {
	cause := causeDestOutOfOrder
	if errors.Is(f.tx.Err(), sip.ErrTransactionTimeout) {
		cause = causeNoUserResponse
	}
	r.drop(c, f)
	r.fail(cause)
}

// drop releases a fork that failed.
func (r *ringing) drop(c *call, f *fork) {
	f.done = true
	if r.media == f {
		r.media = nil
	}
	f.release(c.p)
}

// onForkResponse handles one response of a fork; done says the bridge is decided, with the
// result bridgeTo returns.
func (c *call) onForkResponse(r *ringing, f *fork, res *sip.Response) (done, bridged bool, cause string) {
	switch {
	case res.StatusCode == 100:
	case res.IsProvisional():
		c.onForkProvisional(r, f, res)
	case res.IsSuccess():
		f.done = true
		bridged, cause := c.bridgeAnswered(r, f, res)
		return true, bridged, cause
	default:
		cause := sipToCause(res.StatusCode)
		r.drop(c, f)
		if res.StatusCode >= 600 {
			c.cancelForks(r.pending(), false)
			return true, false, cause
		}
		r.fail(cause)
	}
	return false, false, ""
}

// onForkProvisional PRACKs a fork's reliable provisional and passes the first ringing or early
// media of any fork on to the caller.
func (c *call) onForkProvisional(r *ringing, f *fork, res *sip.Response) {
	b := f.b
	b.setDialogFromResponse(res)
	if hasOptionRes(res, "Require", "100rel") {
		if !b.inOrderReliable(res) {
			return // RFC 3262 section 4: neither PRACKed again nor processed
		}
		c.prackB(b, res)
	}
	if body := res.Body(); len(body) > 0 && !r.early {
		if b.setRemoteMedia(body) == nil {
			r.early = true
			r.switchMedia(c, f)
			if ans, err := c.a.nextSDP(body, true); err == nil {
				c.a.sendProvisional(183, "Session Progress", ans, c.final)
			}
		}
	} else if !r.ringing && !r.early {
		r.ringing = true
		c.a.sendProvisional(180, "Ringing", nil, c.final)
	}
}

// switchMedia makes f the fork connected to the caller's media.
func (r *ringing) switchMedia(c *call, f *fork) {
	if r.media == f {
		return
	}
	if r.media != nil {
		r.media.disconnect()
	}
	f.connect(c.a)
	r.media = f
}

// bridgeAnswered bridges the fork that answered first with the A leg, until either hangs up;
// the other forks are cancelled.
func (c *call) bridgeAnswered(r *ringing, f *fork, res *sip.Response) (bool, string) {
	b := f.b
	defer f.tx.Terminate()
	defer c.p.removeLeg(b)
	b.setDialogFromResponse(res)
	b.ack(res)
	if err := b.setRemoteMedia(res.Body()); err != nil {
		c.log.Warn("bridge: B leg answer", "err", err)
	}
	// Connect the winner before the losers go: a loser's cancel frees its relays itself.
	r.switchMedia(c, f)
	c.cancelForks(r.pending(), false)
	ans, err := c.a.nextSDP(res.Body(), true)
	if err != nil {
		c.log.Warn("bridge: rewrite answer", "err", err)
		b.sendBye()
		f.release(c.p)
		return false, causeIncompatibleDest
	}
	c.mu.Lock()
	c.relays = append(c.relays, f.relays...)
	c.b = b
	answered := c.answered
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.b = nil
		c.mu.Unlock()
	}()
	// However the bridge ends, the B leg's RTP ports go with it (its relays first: they read
	// them). They used to stay bound after every answered call.
	defer func() {
		f.disconnect()
		closeAll(b.eps)
	}()
	if !answered && !c.confirmA(ans) {
		b.sendBye()
		return true, causeRecoveryOnTimer
	}
	c.log.Info("bridged", "a", c.a.callID, "b", b.callID, "contact", f.reg.Contact.String())
	return true, c.waitBridged(b)
}

// cancelForks cancels forks still ringing (RFC 3261 9.1), each in its own goroutine, and frees
// them once their 487 (or a racing 2xx, then ACKed and hung up) has come. wait says whether to
// wait for them: a bridge that ends for all its forks does; cancelling the losers of an answered
// or 6xx-rejected bridge does not hold up the caller.
func (c *call) cancelForks(forks []*fork, wait bool) {
	var wg sync.WaitGroup
	for _, f := range forks {
		f.done = true
		wg.Add(1)
		c.p.wg.Add(1)
		go func() {
			defer c.p.wg.Done()
			defer wg.Done()
			c.cancelB(f.b, f.tx)
			f.release(c.p)
		}()
	}
	if wait {
		wg.Wait()
	}
}
