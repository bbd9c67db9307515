package pbx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/siprtc/siprtc/internal/sipnet"
	"github.com/siprtc/siprtc/lab/pbx/rtprelay"
)

// leg is one SIP dialog of a call as the B2BUA sees it: the A leg is the INVITE the PBX received,
// a B leg an INVITE the PBX sent for `bridge`.
type leg struct {
	p    *Embedded
	call *call
	isA  bool

	callID    string
	localTag  string
	remoteTag string
	local     sip.Uri // our URI in From (B leg) or To (A leg)
	remote    sip.Uri
	localName string
	target    sip.Uri   // remote target (Contact)
	routes    []sip.Uri // route set
	invite    *sip.Request
	tx        sip.ServerTransaction // A leg: the INVITE server transaction

	mu        sync.Mutex
	localCSeq uint32
	rseq      uint32 // RSeq of the last reliable provisional sent (A leg)
	unacked   uint32 // RSeq of the reliable provisional awaiting its PRACK, 0 when none
	peerRSeq  uint32 // RSeq of the last in-order reliable provisional received (B leg)
	reliable  bool   // the remote UAC supports 100rel and the profile enables it
	relQ      chan *sip.Response
	relOnce   sync.Once
	acked     chan struct{}
	ackOnce   sync.Once
	pracks    chan uint32
	bye       chan struct{}
	byeOnce   sync.Once
	confirmed bool
	ended     bool

	// transport and dest pin in-dialog requests to a TCP connection (empty: UDP to the target).
	transport, dest string

	eps      []*rtprelay.Endpoint
	media    []rtprelay.Media // the remote's media description
	sdpSess  uint64
	sdpVer   uint64
	localSDP []byte
}

func newLeg(p *Embedded, c *call, isA bool) *leg {
	return &leg{
		p: p, call: c, isA: isA,
		acked:  make(chan struct{}),
		pracks: make(chan uint32, 8),
		relQ:   make(chan *sip.Response, 8),
		bye:    make(chan struct{}),
	}
}

func (l *leg) signalAck() { l.ackOnce.Do(func() { close(l.acked) }) }
func (l *leg) signalBye() { l.byeOnce.Do(func() { close(l.bye) }) }

// newRequest builds an in-dialog request (RFC 3261 12.2.1.1).
func (l *leg) newRequest(method sip.RequestMethod) *sip.Request {
	l.mu.Lock()
	l.localCSeq++
	cseq := l.localCSeq
	l.mu.Unlock()
	req := sip.NewRequest(method, *l.target.Clone())
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{Address: *l.remote.Clone(), Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(l.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range l.routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	req.AppendHeader(l.p.contact())
	l.route(req)
	return req
}

// route sends a request of this dialog over the leg's TCP connection when it has one.
func (l *leg) route(req *sip.Request) {
	if l.transport != "" {
		req.SetTransport(l.transport)
		req.SetDestination(l.dest)
	}
}

// do sends an in-dialog request and returns the final response.
func (l *leg) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := l.p.cli.Do(ctx, req, sipnet.BuildRequest)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, l.callID, err)
	}
	return res, nil
}

// sendBye ends a confirmed dialog.
func (l *leg) sendBye() {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	l.mu.Unlock()
	// A BYE to a peer that vanished waits for its transaction timeout; bound it, and let Close
	// abort it. BYEs sent by Close itself (hangupAll) still go out, with a short wait.
	parent, timeout := l.p.ctx, 8*time.Second
	if parent.Err() != nil {
		parent, timeout = context.Background(), 500*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	if _, err := l.do(ctx, l.newRequest(sip.BYE)); err != nil {
		l.p.log.Debug("BYE failed", "call", l.call.uuid, "err", err)
	}
}

// setDialogFromResponse records the B leg's dialog state from a 1xx/2xx with a To tag.
func (l *leg) setDialogFromResponse(res *sip.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok {
			l.remoteTag = tag
		}
	}
	if c := res.Contact(); c != nil {
		l.target = *c.Address.Clone()
	}
	// The route set is the Record-Route list in reverse order (RFC 3261 12.1.2).
	rr := res.GetHeaders("Record-Route")
	if len(rr) > 0 {
		l.routes = l.routes[:0]
		for i := len(rr) - 1; i >= 0; i-- {
			if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
				l.routes = append(l.routes, *h.Address.Clone())
			}
		}
	}
}

// response builds a response to the A leg's INVITE with our To tag and Contact.
func (l *leg) response(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(l.invite, code, reason, nil)
	if to := res.To(); to != nil {
		to.Params.Add("tag", l.localTag)
	}
	if code > 100 && code < 300 {
		res.AppendHeader(l.p.contact())
	}
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}

// sendProvisional sends a provisional response, reliably (RFC 3262) when the UAC supports it.
// Reliable ones go through one queue per leg: RFC 3262 section 3 forbids a second reliable
// provisional before the first is PRACKed, and the order of 180 and 183 must be kept.
func (l *leg) sendProvisional(code int, reason string, body []byte, final <-chan struct{}) {
	res := l.response(code, reason, body)
	if !l.reliable {
		l.p.respondRes(l.tx, res)
		return
	}
	l.relOnce.Do(func() {
		l.p.wg.Add(1)
		go l.reliableSender(final)
	})
	select {
	case l.relQ <- res:
	default: // the sender gave up (never PRACKed) or a burst overflowed: drop, as a lost 1xx
		l.p.log.Warn("reliable provisional dropped", "call", l.call.uuid, "code", code)
	}
}

// reliableSender sends the leg's queued reliable provisionals one at a time, each after the
// previous one was PRACKed, until the final response goes out.
func (l *leg) reliableSender(final <-chan struct{}) {
	defer l.p.wg.Done()
	for {
		select {
		case res := <-l.relQ:
			if !l.sendReliable(res, final) {
				return
			}
		case <-final:
			return
		}
	}
}

// sendReliable sends one reliable provisional and retransmits it until PRACKed (true), or the
// final response goes out or 64*T1 passes (false).
func (l *leg) sendReliable(res *sip.Response, final <-chan struct{}) bool {
	l.mu.Lock()
	l.rseq++
	rseq := l.rseq
	l.unacked = rseq
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.unacked == rseq {
			l.unacked = 0
		}
		l.mu.Unlock()
	}()
	res.AppendHeader(sip.NewHeader("Require", "100rel"))
	res.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(rseq), 10)))
	l.p.respondRes(l.tx, res)
	interval := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		t := time.NewTimer(interval)
		select {
		case got := <-l.pracks:
			t.Stop()
			if got == rseq {
				return true
			}
		case <-final:
			t.Stop()
			return false
		case <-deadline.C:
			t.Stop()
			l.p.log.Warn("reliable provisional never PRACKed", "call", l.call.uuid, "code", res.StatusCode)
			return false
		case <-t.C:
			l.p.respondRes(l.tx, res)
			interval = min(2*interval, sip.T2)
		}
	}
}

// sendFinal2xx answers the A leg and retransmits the 200 until the ACK arrives (RFC 3261
// 13.3.1.4). It reports whether the ACK came.
func (l *leg) sendFinal2xx(ctx context.Context, body []byte) bool {
	res := l.response(200, "OK", body)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, INFO, UPDATE"))
	grantSessionTimer(l.invite, res)
	l.p.respondRes(l.tx, res)
	interval := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	acks := l.tx.Acks()
	for {
		t := time.NewTimer(interval)
		select {
		case <-l.acked:
			t.Stop()
			return true
		case <-acks:
			t.Stop()
			l.signalAck()
			return true
		case <-l.bye:
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		case <-deadline.C:
			t.Stop()
			return false
		case <-t.C:
			l.p.respondRes(l.tx, res)
			interval = min(2*interval, sip.T2)
		}
	}
}

// nextSDP renders the PBX's side of this leg's session description with a stable o= line.
func (l *leg) nextSDP(body []byte, rewrite bool) ([]byte, error) {
	addrs := make([]netip.AddrPort, 0, len(l.eps))
	for _, e := range l.eps {
		if e == nil {
			addrs = append(addrs, netip.AddrPort{})
			continue
		}
		addrs = append(addrs, e.RTPAddr())
	}
	out, err := rtprelay.RewriteSDP(body, addrs, rewrite)
	if err != nil {
		return nil, err
	}
	l.localSDP = out
	return out, nil
}

// newTag returns a random dialog tag.
func newTag() string { return strings.ReplaceAll(uuid.NewString()[:18], "-", "") }

// contact is the PBX's Contact header (mod_sofia uses the user part "mod_sofia").
func (p *Embedded) contact() *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "mod_sofia", Host: p.addr.Addr().String(), Port: int(p.addr.Port())}, Params: sip.NewParams()}
}

// register/unregister legs by Call-ID for in-dialog requests.
func (p *Embedded) addLeg(l *leg) {
	p.mu.Lock()
	p.calls[l.callID] = l
	p.mu.Unlock()
}

func (p *Embedded) removeLeg(l *leg) {
	p.mu.Lock()
	if p.calls[l.callID] == l {
		delete(p.calls, l.callID)
	}
	p.mu.Unlock()
}

func (p *Embedded) findLeg(req *sip.Request) *leg {
	cid := req.CallID()
	if cid == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[cid.Value()]
}

func (p *Embedded) handleAck(req *sip.Request, tx sip.ServerTransaction) {
	if l := p.findLeg(req); l != nil {
		l.signalAck()
	}
}

func (p *Embedded) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	l := p.findLeg(req)
	if l == nil {
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	p.respond(tx, req, 200, "OK", nil)
	l.mu.Lock()
	l.ended = true
	l.mu.Unlock()
	l.signalBye()
}

// handlePrack answers a PRACK (RFC 3262 section 3): 400 when its RAck is malformed, 481 when it
// matches no unacknowledged reliable provisional of the dialog, else 200, and the provisional
// it acknowledges stops being retransmitted.
func (p *Embedded) handlePrack(req *sip.Request, tx sip.ServerTransaction) {
	l := p.findLeg(req)
	if l == nil {
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	h := req.GetHeader("RAck")
	if h == nil {
		p.respond(tx, req, 400, "Bad Request", nil)
		return
	}
	rack, err := parseRAck(h.Value())
	if err != nil {
		p.log.Debug("PRACK refused", "callid", l.callID, "err", err)
		p.respond(tx, req, 400, "Bad Request", nil)
		return
	}
	if !l.ackReliable(rack) {
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	p.respond(tx, req, 200, "OK", nil)
	select {
	case l.pracks <- rack.rseq:
	default:
	}
}

// rAck is a parsed RAck header: response-num CSeq-num Method (RFC 3262 section 7.2).
type rAck struct {
	rseq, cseq uint32
	method     sip.RequestMethod
}

var errBadRAck = errors.New("malformed RAck")

func parseRAck(v string) (rAck, error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return rAck{}, fmt.Errorf("%w %q: want 3 fields", errBadRAck, v)
	}
	rseq, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || rseq == 0 {
		return rAck{}, fmt.Errorf("%w %q: response number", errBadRAck, v)
	}
	cseq, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return rAck{}, fmt.Errorf("%w %q: CSeq number", errBadRAck, v)
	}
	return rAck{rseq: uint32(rseq), cseq: uint32(cseq), method: sip.RequestMethod(strings.ToUpper(f[2]))}, nil
}

// ackReliable reports whether rack acknowledges the reliable provisional the leg awaits a PRACK
// for, and marks it acknowledged.
func (l *leg) ackReliable(rack rAck) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unacked == 0 || rack.rseq != l.unacked || rack.method != sip.INVITE || l.invite == nil ||
		l.invite.CSeq() == nil || rack.cseq != l.invite.CSeq().SeqNo {
		return false
	}
	l.unacked = 0
	return true
}

// handleInDialog answers INFO and UPDATE inside a known dialog, and 481 outside one. An INFO
// with a body (DTMF, picture_fast_update) is relayed to the bridged leg, as FreeSWITCH passes
// SIP INFO DTMF on to a leg that negotiated no telephone-event, and answered with that leg's
// status; other requests are answered 200 here.
func (p *Embedded) handleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := p.findLeg(req)
	if l == nil {
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	other := l.bridged()
	if req.Method != sip.INFO || len(req.Body()) == 0 || other == nil {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if req.Method == sip.UPDATE {
			grantSessionTimer(req, res) // a session refresh, answered on this leg
		}
		p.respondRes(tx, res)
		return
	}
	relay := other.newRequest(sip.INFO)
	if ct := req.ContentType(); ct != nil {
		relay.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
	}
	relay.SetBody(req.Body())
	ctx, cancel := context.WithTimeout(p.ctx, 8*time.Second)
	defer cancel()
	res, err := other.do(ctx, relay)
	if err != nil {
		p.log.Debug("INFO relay failed", "call", l.call.uuid, "err", err)
		p.respond(tx, req, 500, "Server Internal Error", nil)
		return
	}
	p.respond(tx, req, res.StatusCode, res.Reason, nil)
}

// bridged is the other leg of an answered bridge, or nil.
func (l *leg) bridged() *leg {
	c := l.call
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b == nil || !c.answered {
		return nil
	}
	other := c.b
	if !l.isA {
		other = c.a
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if other.ended || (!other.isA && !other.confirmed) {
		return nil
	}
	return other
}
