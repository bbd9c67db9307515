package pbx

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Registration is one contact binding of a directory user.
type Registration struct {
	User, Domain string
	Contact      sip.Uri
	Source       netip.AddrPort // where the REGISTER came from (FreeSWITCH's network_ip:network_port)
	Transport    string         // UDP or TCP: requests to a TCP binding reuse its connection
	CallID       string
	CSeq         uint32
	Expires      time.Time
	UserAgent    string
}

// location is the registrar's binding table: user@domain -> contacts, expired lazily.
type location struct {
	mu       sync.Mutex
	bindings map[string][]Registration
	now      func() time.Time
}

func newLocation(now func() time.Time) *location {
	return &location{bindings: map[string][]Registration{}, now: now}
}

func aor(user, domain string) string { return strings.ToLower(user + "@" + domain) }

// update applies one REGISTER's contacts; expires 0 removes. It returns the live bindings.
func (l *location) update(r Registration, expires time.Duration, wildcard bool) []Registration {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := aor(r.User, r.Domain)
	cur := l.liveLocked(key)
	if wildcard {
		delete(l.bindings, key)
		return nil
	}
	out := cur[:0]
	for _, b := range cur {
		if b.Contact.String() != r.Contact.String() {
			out = append(out, b)
		}
	}
	if expires > 0 {
		r.Expires = l.now().Add(expires)
		out = append(out, r)
	}
	if len(out) == 0 {
		delete(l.bindings, key)
		return nil
	}
	l.bindings[key] = out
	return append([]Registration(nil), out...)
}

func (l *location) liveLocked(key string) []Registration {
	now := l.now()
	cur := l.bindings[key]
	live := cur[:0]
	for _, b := range cur {
		if b.Expires.After(now) {
			live = append(live, b)
		}
	}
	if len(live) == 0 {
		delete(l.bindings, key)
	} else {
		l.bindings[key] = live
	}
	return live
}

// lookup returns the live bindings of user@domain, newest first.
func (l *location) lookup(user, domain string) []Registration {
	l.mu.Lock()
	defer l.mu.Unlock()
	live := append([]Registration(nil), l.liveLocked(aor(user, domain))...)
	sort.Slice(live, func(i, j int) bool { return live[i].Expires.After(live[j].Expires) })
	return live
}

func (l *location) all() []Registration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Registration
	for k := range l.bindings {
		out = append(out, l.liveLocked(k)...)
	}
	sort.Slice(out, func(i, j int) bool { return aor(out[i].User, out[i].Domain) < aor(out[j].User, out[j].Domain) })
	return out
}

const (
	defaultExpires = 3600 * time.Second
	maxExpires     = 7200 * time.Second
)

// handleRegister implements mod_sofia's registrar for the profile: register ACL (403), digest
// challenge (401), unknown user (404), bad password or user mismatch (403), bindings with expiry,
// refresh and removal (Expires: 0, Contact: *).
func (p *Embedded) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	src := sourceAddr(req)
	// apply-register-acl as sofia applies it: a denied address gets 403; an allowed one is
	// registered without digest authentication (REG_AUTO_REGISTER). The overlay leaves it unset.
	autoRegister := false
	if lists := p.profile.Values("apply-register-acl"); len(lists) > 0 {
		ok, _, err := p.conf.CheckACLs(lists, src.Addr())
		if err != nil || !ok {
			p.log.Warn("IP rejected by register acl", "ip", src.Addr(), "acl", lists, "err", err)
			p.respond(tx, req, 403, "Forbidden", nil)
			return
		}
		autoRegister = true
	}
	to := req.To()
	if to == nil {
		p.respond(tx, req, 400, "Bad Request", nil)
		return
	}
	user := to.Address.User
	domain := p.registerDomain(to.Address.Host)

	if !autoRegister && !p.registerAuthorized(req, tx, user, domain, src) {
		return
	}

	expires := defaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			expires = time.Duration(n) * time.Second
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	var live []Registration
	contacts := req.GetHeaders("Contact")
	if badWildcard(contacts, expires) {
		// RFC 3261 10.3 step 6: "*" only with Expires: 0 and alone; the bindings stay as they are.
		p.respond(tx, req, 400, "Bad Request", nil)
		return
	}
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		exp := expires
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				exp = time.Duration(n) * time.Second
			}
		}
		exp = min(exp, maxExpires)
		r := Registration{User: user, Domain: domain, Contact: *c.Address.Clone(), Source: src,
			CallID: req.CallID().Value(), CSeq: req.CSeq().SeqNo, Transport: strings.ToUpper(req.Transport())}
		if ua := req.GetHeader("User-Agent"); ua != nil {
			r.UserAgent = ua.Value()
		}
		live = p.loc.update(r, exp, c.Address.Wildcard)
	}
	if len(contacts) == 0 {
		live = p.loc.lookup(user, domain)
	}
	now := p.now()
	for _, b := range live {
		ch := &sip.ContactHeader{Address: *b.Contact.Clone(), Params: sip.NewParams()}
		ch.Params.Add("expires", strconv.Itoa(int(b.Expires.Sub(now).Round(time.Second)/time.Second)))
		res.AppendHeader(ch)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	p.stats.registrations.Add(1)
	p.log.Info("registered", "user", user, "domain", domain, "ip", src, "contacts", len(live))
	p.respondRes(tx, res)
}

// badWildcard reports a "*" Contact the registrar must refuse before touching any binding: with
// an Expires other than 0 (or none, which means the default), or next to other contacts.
func badWildcard(contacts []sip.Header, expires time.Duration) bool {
	for _, h := range contacts {
		if c, ok := h.(*sip.ContactHeader); ok && c.Address.Wildcard {
			return expires != 0 || len(contacts) != 1
		}
	}
	return false
}

// registerAuthorized runs the digest exchange of a REGISTER; it has answered the request when it
// returns false.
func (p *Embedded) registerAuthorized(req *sip.Request, tx sip.ServerTransaction, user, domain string, src netip.AddrPort) bool {
	cred, err := credentials(req, false)
	if err != nil {
		if !errors.Is(err, errNoCredentials) {
			p.respond(tx, req, 400, "Bad Request", nil)
			return false
		}
		p.stats.challenges.Add(1)
		p.respondRes(tx, p.auth.challenge(req, domain, false, false))
		return false
	}
	switch err := p.authenticate(cred, user, domain, "REGISTER"); {
	case errors.Is(err, errStaleNonce), errors.Is(err, errBadNonce):
		p.stats.challenges.Add(1)
		p.respondRes(tx, p.auth.challenge(req, domain, errors.Is(err, errStaleNonce), false))
		return false
	case errors.Is(err, errUnknownUser):
		p.log.Warn("register for unknown user", "user", user, "domain", domain, "ip", src.Addr())
		p.respond(tx, req, 404, "Not Found", nil)
		return false
	case err != nil:
		p.log.Warn("register authentication failed", "user", user, "domain", domain, "ip", src.Addr(), "err", err)
		p.respond(tx, req, 403, "Forbidden", nil)
		return false
	}
	return true
}

// registerDomain applies force-register-domain as mod_sofia does.
func (p *Embedded) registerDomain(host string) string {
	if d := p.profile.Param("force-register-domain", ""); d != "" {
		return d
	}
	if _, ok := p.conf.Directory.Domains[host]; ok {
		return host
	}
	return p.domain
}

// authenticate checks digest credentials against the directory. user is the AOR (REGISTER) or
// From user that must match the authentication user when the profile forces it.
func (p *Embedded) authenticate(cred *digest.Credentials, user, domain, method string) error {
	if err := p.auth.checkNonce(cred.Nonce); err != nil {
		return err
	}
	u, ok := p.conf.Directory.Lookup(cred.Username, domain)
	if !ok {
		return fmt.Errorf("%w: %s@%s", errUnknownUser, cred.Username, domain)
	}
	if user != "" && method == "REGISTER" && p.profile.Bool("inbound-reg-force-matching-username", true) && !strings.EqualFold(user, cred.Username) {
		return fmt.Errorf("%w: %s authenticates as %s", errUserMismatch, user, cred.Username)
	}
	return p.auth.verify(cred, method, u.Params["password"], u.Params["a1-hash"])
}
