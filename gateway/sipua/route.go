package sipua

import (
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// hop is where a request goes next: an address and the transport to it ("udp", "tcp", "tls").
type hop struct {
	addr      string
	transport string
}

// apply sets req's destination and transport.
func (h hop) apply(req *sip.Request) {
	req.SetDestination(h.addr)
	if h.transport != "" && h.transport != "udp" {
		req.SetTransport(strings.ToUpper(h.transport))
	}
}

// uriHop is the hop of a URI whose host is an IP address (the lab resolves no names): its
// transport parameter, else transport, and its port, else the transport's default.
func uriHop(u sip.Uri, transport string) (hop, bool) {
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return hop{}, false
	}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		transport = strings.ToLower(t)
	}
	if transport == "" {
		transport = "udp"
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if transport == "tls" {
			port = 5061
		}
	}
	return hop{addr: netip.AddrPortFrom(ip.Unmap(), uint16(port)).String(), transport: transport}, true
}

// dialogState is what RFC 3261 section 12 keeps for a dialog, enough to build requests in it.
type dialogState struct {
	callID       string
	local        sip.FromHeader // our URI and tag, as From of our requests
	remote       sip.ToHeader   // their URI and tag, as To of our requests
	remoteTarget sip.Uri        // Contact of the peer
	routeSet     []sip.Uri      // in the order the Route header field lists them
	fallback     hop            // next hop when the route set is empty and the target is not an IP
	transport    string         // the INVITE's transport: the default of the dialog's hops

	// localSeq is our CSeq counter. Early dialogs of one INVITE share it with the final one, so
	// PRACKs and the BYE keep counting up from the INVITE (RFC 3261 12.2.1.1).
	localSeq *atomic.Uint32
}

func (d *dialogState) key() string {
	lt, _ := d.local.Params.Get("tag")
	rt, _ := d.remote.Params.Get("tag")
	return dialogKey(d.callID, lt, rt)
}

func (d *dialogState) nextSeq() uint32 { return d.localSeq.Add(1) }

// uacDialog builds the dialog of an INVITE we sent from a response with a To tag: the route set
// is the response's Record-Route reversed, the remote target its Contact (RFC 3261 12.1.2).
func uacDialog(invite *sip.Request, res *sip.Response, seq *atomic.Uint32, fallback hop) *dialogState {
	d := &dialogState{
		callID:       invite.CallID().Value(),
		local:        *sip.HeaderClone(invite.From()).(*sip.FromHeader),
		remote:       *sip.HeaderClone(res.To()).(*sip.ToHeader),
		remoteTarget: invite.Recipient,
		fallback:     fallback,
		transport:    fallback.transport,
		localSeq:     seq,
	}
	if c := res.Contact(); c != nil {
		d.remoteTarget = *c.Address.Clone()
	}
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *h.Address.Clone())
		}
	}
	return d
}

// uasDialog builds the dialog of an INVITE we received and answer with localTag: the route set is
// the request's Record-Route in order, the remote target its Contact (RFC 3261 12.1.1).
func uasDialog(invite *sip.Request, localTag string, seq uint32, fallback hop) *dialogState {
	to := invite.To()
	local := sip.FromHeader{DisplayName: to.DisplayName, Address: *to.Address.Clone(), Params: to.Params.Clone()}
	local.Params.Add("tag", localTag)
	from := invite.From()
	remote := sip.ToHeader{DisplayName: from.DisplayName, Address: *from.Address.Clone(), Params: from.Params.Clone()}
	d := &dialogState{
		callID:       invite.CallID().Value(),
		local:        local,
		remote:       remote,
		remoteTarget: *from.Address.Clone(),
		fallback:     fallback,
		transport:    fallback.transport,
		localSeq:     new(atomic.Uint32),
	}
	d.localSeq.Store(seq)
	if c := invite.Contact(); c != nil {
		d.remoteTarget = *c.Address.Clone()
	}
	for _, h := range invite.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *rr.Address.Clone())
		}
	}
	return d
}

// request builds a request within the dialog (RFC 3261 12.2.1.1). CSeq counts up, except for ACK
// and CANCEL, which take cseq as given.
func (d *dialogState) request(method sip.RequestMethod, cseq uint32) *sip.Request {
	ruri := d.remoteTarget
	routes := d.routeSet
	strict := len(routes) > 0 && !routes[0].UriParams.Has("lr")
	if strict {
		// Strict routing: the first route becomes the Request-URI and the remote target the last route.
		ruri = routes[0]
		routes = append(append([]sip.Uri(nil), routes[1:]...), d.remoteTarget)
	}
	req := sip.NewRequest(method, *ruri.Clone())
	if method != sip.ACK && method != sip.CANCEL {
		cseq = d.nextSeq()
	}
	callID := sip.CallIDHeader(d.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(sip.HeaderClone(&d.local))
	req.AppendHeader(sip.HeaderClone(&d.remote))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(&maxFwd)
	for _, r := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	next := d.remoteTarget
	if len(d.routeSet) > 0 {
		next = d.routeSet[0]
	}
	if h, ok := uriHop(next, d.transport); ok {
		h.apply(req)
	} else if d.fallback.addr != "" {
		d.fallback.apply(req)
	}
	req.SetBody(nil)
	return req
}
