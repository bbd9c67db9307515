package pbx

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

var errDialString = errors.New("unsupported dial string")

// appBridge runs mod_dptools' bridge: the targets separated by "|" are tried in turn; when all
// fail, continue_on_fail decides between running the next action and hanging up with the cause;
// after a successful bridge ends, hangup_after_bridge decides.
func appBridge(c *call, data string) bool {
	data = strings.TrimSpace(data)
	if strings.HasPrefix(data, "{") { // per-originate variables: {a=b,c=d}
		if end := strings.Index(data, "}"); end > 0 {
			for _, kv := range strings.Split(data[1:end], ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					c.set(strings.TrimSpace(k), v)
				}
			}
			data = data[end+1:]
		}
	}
	cause := causeNoRoute
	for _, target := range strings.Split(data, "|") {
		target = strings.TrimSpace(strings.Split(target, ",")[0]) // simultaneous ring: first target only
		var bridged bool
		bridged, cause = c.bridgeTo(target)
		if bridged {
			if c.isHungUp() || truthy(c.vars0("hangup_after_bridge")) {
				c.hangup(causeNormalClearing)
				return true
			}
			return false
		}
		c.set("originate_disposition", cause)
		c.set("DIALSTATUS", cause)
		c.mu.Lock()
		c.lastFail = cause
		c.mu.Unlock()
		if c.isHungUp() {
			return true
		}
	}
	c.log.Info("bridge failed", "cause", cause)
	if cof := c.vars0("continue_on_fail"); truthy(cof) || containsCause(cof, cause) {
		return false
	}
	c.hangup(cause)
	return true
}

func (c *call) vars0(name string) string {
	v, _ := c.Var(name)
	return v
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "enabled", "active", "allow":
		return true
	}
	return false
}

func containsCause(list, cause string) bool {
	for _, c := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(c), cause) {
			return true
		}
	}
	return false
}

// bridgeTo originates the B legs of one dial-string target and, once one answers, bridges it
// with the A leg until either side hangs up. A user/ target rings every live registration of
// the user at once, as FreeSWITCH's user/ endpoint does (sofia_contact returns them all): see
// ringForks for who wins and which cause a failure reports. With one registration this is the
// plain single B leg. It returns whether a B leg answered and, if none did, the cause.
func (c *call) bridgeTo(target string) (bool, string) {
	user, domain, regs, cause := c.resolveUser(target)
	if cause != "" {
		return false, cause
	}
	if len(c.a.media) == 0 {
		c.log.Warn("bridge: the caller sent no SDP offer; the embedded PBX needs an offer in the INVITE")
		return false, causeIncompatibleDest
	}
	if cause := c.anchorA(); cause != "" {
		return false, cause
	}
	forks, cause := c.newForks(user, domain, regs)
	if len(forks) == 0 {
		return false, cause
	}
	if len(forks) == 1 {
		// A single B leg carries the caller's media from the start; forks wait for early media
		// or an answer, since only one relay at a time may read the A leg's sockets.
		forks[0].connect(c.a)
	}
	c.mu.Lock()
	if c.hungUp {
		cause := c.cause
		c.mu.Unlock()
		for _, f := range forks {
			f.release(c.p)
		}
		return false, cause
	}
	c.mu.Unlock()
	forks, cause = c.sendForks(forks, cause)
	if len(forks) == 0 {
		return false, cause
	}
	return c.ringForks(forks, cause)
}

// resolveUser checks a user/NUMBER@DOMAIN target against the directory and the registrar, and
// returns the user's live registrations, newest first, or the cause the bridge fails with.
func (c *call) resolveUser(target string) (user, domain string, regs []Registration, cause string) {
	rest, ok := strings.CutPrefix(target, "user/")
	if !ok {
		c.log.Warn("bridge", "err", errDialString, "target", target, "supported", "user/NUMBER@DOMAIN")
		return "", "", nil, causeInvalidNumber
	}
	user, domain, ok = strings.Cut(rest, "@")
	if !ok || domain == "" {
		domain = c.vars0("domain_name")
	}
	if _, ok := c.p.conf.Directory.Lookup(user, domain); !ok {
		return "", "", nil, causeSubscriberAbsent
	}
	regs = c.p.loc.lookup(user, domain)
	if len(regs) == 0 {
		return "", "", nil, causeUserNotRegistered
	}
	return user, domain, regs, ""
}

// anchorA gives the A leg one PBX endpoint per accepted m-line (kept across bridge attempts,
// closed when the channel ends) and points each at the caller's media.
func (c *call) anchorA() string {
	c.mu.Lock()
	if c.a.eps == nil {
		c.a.eps = make([]*rtprelay.Endpoint, len(c.a.media))
	}
	c.mu.Unlock()
	for i, m := range c.a.media {
		if m.Port == 0 {
			continue
		}
		if c.a.eps[i] == nil {
			e, err := c.p.alloc.Allocate()
			if err != nil {
				c.log.Error("bridge: RTP ports", "err", err)
				return causeNormalTempFail
			}
			c.a.eps[i] = e
		}
		setRemote(c.a.eps[i], m)
	}
	return ""
}

// newBLeg builds the dialog state of a B leg towards one registration of user@domain, with the
// caller ID the dialplan chose.
func (c *call) newBLeg(user, domain string, reg Registration) *leg {
	b := newLeg(c.p, c, false)
	b.callID = uuid.NewString()
	b.localTag = newTag()
	cidNum, cidName := c.vars0("effective_caller_id_number"), c.vars0("effective_caller_id_name")
	if cidNum == "" {
		cidNum = c.vars0("caller_id_number")
	}
	if cidName == "" {
		cidName = c.vars0("caller_id_name")
	}
	b.local = sip.Uri{Scheme: "sip", User: cidNum, Host: c.p.addr.Addr().String()}
	b.localName = strconv.Quote(cidName)
	b.remote = sip.Uri{Scheme: "sip", User: user, Host: domain}
	b.target = *reg.Contact.Clone()
	b.localCSeq = 1
	return b
}

// bInvite builds the INVITE of a B leg carrying offer.
func (c *call) bInvite(b *leg, reg Registration, offer []byte) *sip.Request {
	req := sip.NewRequest(sip.INVITE, *b.target.Clone())
	from := &sip.FromHeader{DisplayName: b.localName, Address: *b.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", b.localTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: *b.remote.Clone(), Params: sip.NewParams()})
	cid := sip.CallIDHeader(b.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	mf := sip.MaxForwardsHeader(69)
	if n, err := strconv.ParseUint(c.vars0("max_forwards"), 10, 32); err == nil {
		mf = sip.MaxForwardsHeader(n)
	}
	req.AppendHeader(&mf)
	req.AppendHeader(c.p.contact())
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, INFO, UPDATE"))
	if c.p.profile.Bool("enable-100rel", false) {
		req.AppendHeader(sip.NewHeader("Supported", "100rel"))
	}
	for _, h := range c.bLegHeaders() {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	if reg.Transport == "TCP" {
		// Like sofia for a binding that came over TCP: use the connection it registered on.
		req.SetTransport("TCP")
		req.SetDestination(reg.Source.String())
		b.transport, b.dest = "TCP", reg.Source.String()
	}
	return req
}

// waitBridged holds an answered bridge until one side hangs up.
func (c *call) waitBridged(b *leg) string {
	select {
	case <-b.bye:
		c.log.Info("B leg hung up")
		return ""
	case <-c.a.bye:
		b.sendBye()
		c.hangup(causeNormalClearing)
		return ""
	case <-c.ctx.Done():
		b.sendBye()
		return ""
	}
}

// bLegHeaders turns sip_h_* variables into headers of the outgoing leg, as mod_sofia does (the
// overlay's X-Number comes through here): the A channel's own, which FreeSWITCH copies to the
// B leg, then the exported ones (export, export nolocal:), which win. Sorted, for stable INVITEs.
func (c *call) bLegHeaders() []sip.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	vals := map[string]string{}
	for _, vars := range []map[string]string{c.vars, c.exports} {
		for k, v := range vars {
			if name, ok := strings.CutPrefix(k, "sip_h_"); ok && name != "" {
				vals[name] = v
			}
		}
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]sip.Header, 0, len(names))
	for _, n := range names {
		out = append(out, sip.NewHeader(n, vals[n]))
	}
	return out
}

// setRemoteMedia points the B leg's endpoints at the media its SDP gives.
func (b *leg) setRemoteMedia(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	_, media, err := rtprelay.ParseSDP(body)
	if err != nil {
		return err
	}
	b.media = media
	for i, m := range media {
		if i < len(b.eps) && b.eps[i] != nil {
			setRemote(b.eps[i], m)
		}
	}
	return nil
}

// ack acknowledges a 2xx on the B leg (a new request, RFC 3261 13.2.2.4).
func (b *leg) ack(res *sip.Response) {
	ack := sip.NewRequest(sip.ACK, *b.target.Clone())
	from := &sip.FromHeader{DisplayName: b.localName, Address: *b.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", b.localTag)
	ack.AppendHeader(from)
	to := &sip.ToHeader{Address: *b.remote.Clone(), Params: sip.NewParams()}
	to.Params.Add("tag", b.remoteTag)
	ack.AppendHeader(to)
	cid := sip.CallIDHeader(b.callID)
	ack.AppendHeader(&cid)
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: res.CSeq().SeqNo, MethodName: sip.ACK})
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	for _, r := range b.routes {
		ack.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	b.route(ack)
	if err := b.p.cli.WriteRequest(ack, sipnet.BuildRequest); err != nil {
		b.p.log.Warn("ACK failed", "callid", b.callID, "err", err)
	}
	b.mu.Lock()
	b.confirmed = true
	b.mu.Unlock()
}

// inOrderReliable reports whether a reliable provisional of the B leg is the next one in RSeq
// order, and records it. RFC 3262 section 4: a retransmission (same RSeq) or one out of order
// MUST NOT be PRACKed; a lost PRACK is retransmitted by its own transaction instead.
func (b *leg) inOrderReliable(res *sip.Response) bool {
	h := res.GetHeader("RSeq")
	if h == nil {
		return false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
	if err != nil || n == 0 {
		b.p.log.Debug("reliable provisional with a bad RSeq", "callid", b.callID, "rseq", h.Value())
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peerRSeq != 0 && uint32(n) != b.peerRSeq+1 {
		return false
	}
	b.peerRSeq = uint32(n)
	return true
}

// prackB acknowledges a reliable provisional response of the B leg (RFC 3262).
func (c *call) prackB(b *leg, res *sip.Response) {
	h := res.GetHeader("RSeq")
	if h == nil {
		return
	}
	pr := b.newRequest(sip.PRACK)
	pr.AppendHeader(sip.NewHeader("RAck", strings.TrimSpace(h.Value())+" "+strconv.FormatUint(uint64(res.CSeq().SeqNo), 10)+" INVITE"))
	c.p.wg.Add(1)
	go func() {
		defer c.p.wg.Done()
		ctx, cancel := context.WithTimeout(c.p.ctx, 32*time.Second)
		defer cancel()
		if res, err := b.do(ctx, pr); err != nil || res.StatusCode != 200 {
			c.log.Warn("PRACK to B leg failed", "err", err)
		}
	}()
}

// cancelB cancels the pending INVITE of the B leg (RFC 3261 9.1) and waits briefly for its 487.
func (c *call) cancelB(b *leg, tx sip.ClientTransaction) {
	inv := b.invite
	cancel := sip.NewRequest(sip.CANCEL, inv.Recipient)
	if v := inv.Via(); v != nil {
		cancel.AppendHeader(v.Clone())
	}
	cancel.AppendHeader(sip.HeaderClone(inv.From()))
	cancel.AppendHeader(sip.HeaderClone(inv.To()))
	cancel.AppendHeader(sip.HeaderClone(inv.CallID()))
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	sip.CopyHeaders("Route", inv, cancel)
	b.route(cancel)
	ctx, stop := context.WithTimeout(context.Background(), 32*sip.T1)
	defer stop()
	// Keep the INVITE's Via (a CANCEL must match its branch); over TCP use the pooled connection.
	keepVia := func(_ *sipgo.Client, r *sip.Request) error {
		if sip.IsReliable(r.Transport()) {
			r.Laddr = sip.Addr{}
		}
		return nil
	}
	if _, err := c.p.cli.Do(ctx, cancel, keepVia); err != nil {
		c.log.Debug("CANCEL to B leg", "err", err)
		return
	}
	wait := time.NewTimer(4 * time.Second)
	defer wait.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsSuccess() { // answered while we cancelled: hang it up
				b.setDialogFromResponse(res)
				b.ack(res)
				b.sendBye()
				return
			}
			if res.StatusCode >= 300 {
				return
			}
		case <-tx.Done():
			return
		case <-wait.C:
			return
		}
	}
}

func hasOptionRes(res *sip.Response, header, option string) bool {
	for _, h := range res.GetHeaders(header) {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), option) {
				return true
			}
		}
	}
	return false
}
