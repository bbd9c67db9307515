package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/icholy/digest"

	"github.com/siprtc/siprtc/lab/pbx/fsconf"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

// call is one channel (the A leg) with its dialplan execution and, while bridged, its B leg.
type call struct {
	p    *Embedded
	uuid string
	log  *slog.Logger
	a    *leg

	mu        sync.Mutex
	vars      map[string]string
	exports   map[string]string // export: variables for the B legs, by name
	b         *leg
	relays    []*rtprelay.Relay
	answered  bool
	final     chan struct{} // closed once the A leg's INVITE has its final response
	finalOnce sync.Once
	hungUp    bool
	cause     string
	lastFail  string // cause of the last failed bridge (originate_disposition)

	ctx    context.Context // ends when the channel hangs up
	cancel context.CancelFunc
}

func (c *call) markFinal() { c.finalOnce.Do(func() { close(c.final) }) }

// Var implements fsconf.Channel: channel variables, then the global (preprocessor) variables, as
// FreeSWITCH's ${var} expansion does.
func (c *call) Var(name string) (string, bool) {
	c.mu.Lock()
	v, ok := c.vars[name]
	c.mu.Unlock()
	if ok {
		return v, true
	}
	v, ok = c.p.conf.Vars[name]
	return v, ok
}

func (c *call) set(name, value string) {
	c.mu.Lock()
	c.vars[name] = value
	c.mu.Unlock()
}

func (c *call) expand(s string) string {
	return fsconf.Expand(s, c.Var)
}

// handleInvite runs one inbound call: authorization (ACL, digest), dialplan routing and
// execution. It returns when the channel has hung up.
func (p *Embedded) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		p.handleReinvite(req, tx)
		return
	}
	if p.ctx.Err() != nil {
		p.respond(tx, req, 503, "Service Unavailable", nil)
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		// As sofia: a request out of hops ends here, so a routing loop ends with 483.
		p.respond(tx, req, 483, "Too Many Hops", nil)
		return
	}
	p.respond(tx, req, 100, "Trying", nil)
	src := sourceAddr(req)

	vars := map[string]string{"max_forwards": maxForwardsOut(req)}
	authed, ok := p.authorizeInvite(req, tx, src, vars)
	if !ok {
		return
	}
	p.stats.calls.Add(1)

	c := &call{p: p, uuid: uuid.NewString(), vars: vars, exports: map[string]string{}, final: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(p.ctx)
	defer c.cancel()
	c.log = p.log.With("call", c.uuid[:8])
	a := newLeg(p, c, true)
	a.callID = req.CallID().Value()
	a.invite = req
	a.tx = tx
	a.localTag = newTag()
	a.local = *req.To().Address.Clone()
	a.remote = *req.From().Address.Clone()
	if tag, ok := req.From().Params.Get("tag"); ok {
		a.remoteTag = tag
	}
	if ct := req.Contact(); ct != nil {
		a.target = *ct.Address.Clone()
	} else {
		a.target = *req.From().Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			a.routes = append(a.routes, *rr.Address.Clone())
		}
	}
	if strings.EqualFold(req.Transport(), "TCP") {
		a.transport, a.dest = "TCP", req.Source()
	}
	a.reliable = p.profile.Bool("enable-100rel", false) && (hasOption(req, "Supported", "100rel") || hasOption(req, "Require", "100rel"))
	c.a = a
	if body := req.Body(); len(body) > 0 {
		_, media, err := rtprelay.ParseSDP(body)
		if err != nil {
			c.log.Warn("unreadable SDP offer", "err", err)
			p.respond(tx, req, 488, "Not Acceptable Here", nil)
			return
		}
		a.media = media
	}
	p.addLeg(a)
	defer p.removeLeg(a)
	// The executor is the only writer of the A leg's endpoints; they go when it returns.
	defer func() { closeAll(a.eps) }()

	c.setChannelVars(req, src, authed)
	tx.OnCancel(func(*sip.Request) {
		// sipgo has answered 200 to the CANCEL and 487 to the INVITE.
		c.markFinal()
		c.hangup(causeOriginatorCancel)
	})

	dpContext := c.vars["user_context"]
	if dpContext == "" {
		dpContext = p.profile.Param("context", "public")
	}
	c.set("context", dpContext)
	actions, err := p.conf.Dialplan.Route(dpContext, c, c.set)
	if err != nil {
		c.log.Error("dialplan", "err", err)
		c.hangup(causeNoRoute)
		return
	}
	if len(actions) == 0 {
		c.log.Info("no route", "context", dpContext, "destination_number", c.vars["destination_number"])
		c.hangup(causeNoRoute)
		return
	}
	c.log.Info("routing", "context", dpContext, "destination_number", c.vars["destination_number"],
		"caller", c.vars["caller_id_number"], "extension", actions[0].Extension, "actions", len(actions))
	c.execute(actions)
}

// authorizeInvite applies apply-inbound-acl and auth-calls as mod_sofia does: an address allowed
// by the ACL is let in without digest; otherwise the call is challenged (407) when auth-calls is
// on, and refused (403) when it is off.
func (p *Embedded) authorizeInvite(req *sip.Request, tx sip.ServerTransaction, src netip.AddrPort, vars map[string]string) (authed string, ok bool) {
	authCalls := p.profile.Bool("auth-calls", false)
	if list := p.profile.Values("apply-inbound-acl"); len(list) > 0 {
		allowed, _, err := p.conf.CheckACLs(list, src.Addr())
		if err != nil {
			p.log.Error("inbound ACL", "acl", list, "err", err)
		}
		if allowed {
			p.log.Debug("IP approved by ACL, access granted", "ip", src.Addr(), "acl", list)
			return "", true
		}
		if !authCalls {
			p.log.Warn("IP rejected by ACL", "ip", src.Addr(), "acl", list)
			p.respond(tx, req, 403, "Forbidden", nil)
			return "", false
		}
		p.log.Debug("IP rejected by ACL, falling back to digest", "ip", src.Addr(), "acl", list)
	}
	if !authCalls {
		return "", true
	}
	if src == p.addr {
		// A request from the profile's own address and port is the PBX calling itself: sofia lets
		// it in without digest and marks it sip_looped_call, which the unloop extension ends with
		// 483. Only here, as in sofia: a looped request the ACL let in is not marked (then
		// Max-Forwards ends the loop, with 483 too).
		p.log.Warn("looped call", "ip", src)
		vars["sip_looped_call"] = "true"
		return "", true
	}
	domain := p.registerDomain(req.Recipient.Host)
	cred, err := credentials(req, true)
	if err != nil {
		p.stats.challenges.Add(1)
		p.respondRes(tx, p.auth.challenge(req, domain, false, true))
		return "", false
	}
	switch err := p.authenticate(cred, req.From().Address.User, domain, "INVITE"); {
	case errors.Is(err, errStaleNonce), errors.Is(err, errBadNonce):
		p.stats.challenges.Add(1)
		p.respondRes(tx, p.auth.challenge(req, domain, errors.Is(err, errStaleNonce), true))
		return "", false
	case err != nil:
		p.log.Warn("INVITE authentication failed", "user", cred.Username, "ip", src.Addr(), "err", err)
		p.respond(tx, req, 403, "Forbidden", nil)
		return "", false
	}
	if u, ok := p.conf.Directory.Lookup(cred.Username, domain); ok {
		for k, v := range u.Variables {
			vars[k] = v
		}
		vars["user_name"] = u.ID
		vars["domain_name"] = domain
	}
	return credUser(cred), true
}

func credUser(c *digest.Credentials) string { return c.Username }

// maxForwardsOut is the Max-Forwards of the B legs this request leads to: one less than it
// arrived with (FreeSWITCH's max_forwards variable), 69 without the header.
func maxForwardsOut(req *sip.Request) string {
	if mf := req.MaxForwards(); mf != nil && mf.Val() > 0 {
		return strconv.FormatUint(uint64(mf.Val()-1), 10)
	}
	return "69"
}

// setChannelVars fills the channel fields the XML dialplan and the overlay use.
func (c *call) setChannelVars(req *sip.Request, src netip.AddrPort, authed string) {
	from := req.From()
	v := c.vars
	v["uuid"] = c.uuid
	v["destination_number"] = req.Recipient.User
	v["sip_req_user"] = req.Recipient.User
	v["sip_req_host"] = req.Recipient.Host
	v["sip_to_user"] = req.To().Address.User
	v["sip_from_user"] = from.Address.User
	v["sip_from_host"] = from.Address.Host
	v["sip_call_id"] = req.CallID().Value()
	v["caller_id_number"] = from.Address.User
	v["ani"] = from.Address.User
	name := strings.Trim(from.DisplayName, `"`)
	if name == "" {
		name = from.Address.User
	}
	v["caller_id_name"] = name
	v["network_addr"] = src.Addr().String()
	v["sip_network_ip"] = src.Addr().String()
	v["sip_network_port"] = fmt.Sprint(src.Port())
	v["source"] = "mod_sofia"
	v["chan_name"] = "sofia/" + c.p.profile.Name + "/" + from.Address.User + "@" + from.Address.Host
	v["sofia_profile_name"] = c.p.profile.Name
	if authed != "" {
		v["username"] = authed
		v["sip_authorized"] = "true"
	}
	if _, ok := v["domain_name"]; !ok {
		d := req.Recipient.Host
		if _, ok := c.p.conf.Directory.Domains[d]; !ok {
			d = c.p.domain
		}
		v["domain_name"] = d
	}
	// SIP headers of the inbound INVITE, as mod_sofia exposes X- headers.
	for _, h := range req.Headers() {
		if n := h.Name(); strings.HasPrefix(strings.ToLower(n), "x-") {
			v["sip_h_"+n] = h.Value()
		}
	}
}

// hangup ends the channel with cause: the A leg gets the mapped final response before answer or
// a BYE after, a B leg in progress is cancelled or hung up, and media stops.
func (c *call) hangup(cause string) {
	c.mu.Lock()
	if c.hungUp {
		c.mu.Unlock()
		return
	}
	c.hungUp = true
	c.cause = cause
	answered := c.answered
	b := c.b
	relays := c.relays
	c.relays = nil
	c.mu.Unlock()
	c.cancel()

	select {
	case <-c.final:
	default:
		if !answered {
			code, reason := causeToSIP(cause)
			c.p.respondRes(c.a.tx, c.a.response(code, reason, nil))
			c.markFinal()
		}
	}
	if answered {
		c.a.sendBye()
	}
	if b != nil {
		b.signalBye()
	}
	for _, r := range relays {
		r.Close()
	}
	c.log.Info("hangup", "cause", cause, "answered", answered)
}

func (c *call) isHungUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hungUp
}

// execute runs the routed actions in order, as a FreeSWITCH session thread does, and hangs up at
// the end of the dialplan.
func (c *call) execute(actions []fsconf.RoutedAction) {
	for _, act := range actions {
		if c.isHungUp() {
			return
		}
		data := c.expand(act.Data)
		app, ok := apps[act.App]
		if !ok { // fsconf.Load rejects these; keep the guard for programmatic configs
			c.log.Error("dialplan application not implemented", "app", act.App, "at", act.Pos)
			c.hangup(causeNormalTempFail)
			return
		}
		c.log.Debug("execute", "app", act.App, "data", data, "at", act.Pos)
		if stop := app(c, data); stop {
			return
		}
		select {
		case <-c.a.bye:
			c.hangup(causeNormalClearing)
			return
		default:
		}
	}
	cause := causeNormalClearing
	c.mu.Lock()
	if !c.answered && c.lastFail != "" {
		cause = c.lastFail
	}
	c.mu.Unlock()
	c.hangup(cause)
}

// waitAHangup blocks an answered channel until the caller hangs up or the PBX stops.
func (c *call) waitAHangup() {
	select {
	case <-c.a.bye:
		c.hangup(causeNormalClearing)
	case <-c.ctx.Done():
	}
}

// handleReinvite answers an in-dialog INVITE. With an offer on a bridged call (hold, resume, a
// new address) it is relayed to the other leg, as FreeSWITCH's bypass-less re-INVITE passing
// does: each leg's endpoints follow the new addresses, the offer and the answer cross with the
// PBX's addresses and their direction attributes kept. Otherwise (a session refresh, or no
// bridge) the PBX answers with its current session description.
func (p *Embedded) handleReinvite(req *sip.Request, tx sip.ServerTransaction) {
	l := p.findLeg(req)
	if l == nil {
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if other := l.bridged(); other != nil && len(req.Body()) > 0 {
		if p.relayReinvite(l, other, req, tx) {
			return
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(p.contact())
	grantSessionTimer(req, res)
	if len(l.localSDP) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(l.localSDP)
	}
	p.respondRes(tx, res)
}

// hangupAll hangs up every call (on Close).
func (p *Embedded) hangupAll() {
	p.mu.Lock()
	var cs []*call
	for _, l := range p.calls {
		if l.isA {
			cs = append(cs, l.call)
		}
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.hangup("SYSTEM_SHUTDOWN")
	}
}

// waitCalls waits (bounded) until every call has left the table.
func (p *Embedded) waitCalls() {
	deadline := time.Now().Add(10 * time.Second)
	for p.ActiveCalls() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func hasOption(req *sip.Request, header, option string) bool {
	for _, h := range req.GetHeaders(header) {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), option) {
				return true
			}
		}
	}
	return false
}

// relayReinvite passes a re-INVITE's offer from leg l to leg other and other's answer back; false
// when it could not (the caller answers locally then).
func (p *Embedded) relayReinvite(l, other *leg, req *sip.Request, tx sip.ServerTransaction) bool {
	if err := l.setRemoteMedia(req.Body()); err != nil {
		p.respond(tx, req, 488, "Not Acceptable Here", nil)
		return true
	}
	offer, err := other.nextSDP(req.Body(), true)
	if err != nil {
		return false
	}
	inv := other.newRequest(sip.INVITE)
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody(offer)
	ctx, cancel := context.WithTimeout(p.ctx, 16*time.Second)
	defer cancel()
	res, err := other.do(ctx, inv)
	if err != nil {
		p.log.Debug("re-INVITE relay failed", "call", l.call.uuid, "err", err)
		p.respond(tx, req, 500, "Server Internal Error", nil)
		return true
	}
	if !res.IsSuccess() {
		p.respond(tx, req, res.StatusCode, res.Reason, nil)
		return true
	}
	other.ack(res)
	if err := other.setRemoteMedia(res.Body()); err != nil {
		p.log.Debug("re-INVITE answer", "err", err)
	}
	answer, err := l.nextSDP(res.Body(), true)
	if err != nil {
		p.respond(tx, req, 500, "Server Internal Error", nil)
		return true
	}
	ok := sip.NewResponseFromRequest(req, 200, "OK", nil)
	ok.AppendHeader(p.contact())
	grantSessionTimer(req, ok) // the session timer is this leg's, not relayed
	ok.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ok.SetBody(answer)
	p.respondRes(tx, ok)
	return true
}
