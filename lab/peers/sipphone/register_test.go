package sipphone

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/transport/v5"
)

// testRegistrar is a minimal registrar on sipgo: unknown users get 404, a REGISTER without
// credentials a 401 digest challenge (qop=auth), wrong credentials 403, an expiry under 10 s 423
// (Min-Expires: 60), the rest 200.
type testRegistrar struct {
	addr  netip.AddrPort
	users map[string]string
	chal  digest.Challenge

	mu       sync.Mutex
	bindings map[string]string // user -> contact, for the last 200
	expires  map[string]string
	requests int
}

func startRegistrar(t *testing.T, nw transport.Net, ip netip.Addr, users map[string]string) *testRegistrar {
	t.Helper()
	r := &testRegistrar{
		users:    users,
		chal:     digest.Challenge{Realm: "lab", Nonce: "c0ffee", Algorithm: "MD5", QOP: []string{"auth"}},
		bindings: map[string]string{},
		expires:  map[string]string{},
	}
	// The phones are closed by the time the cleanup closes it (cleanups run last in, first out).
	s := serveSIP(t, nw, netip.AddrPortFrom(ip, 0), func(srv *sipgo.Server) { srv.OnRegister(r.handle) })
	r.addr = s.Addr
	return r
}

func (r *testRegistrar) handle(req *sip.Request, tx sip.ServerTransaction) {
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
	user := req.To().Address.User
	password, known := r.users[user]
	if !known {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusNotFound, "Not Found", nil))
		return
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", r.chal.String()))
		_ = tx.Respond(res)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username != user {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
		return
	}
	want, err := digest.Digest(&r.chal, digest.Options{
		Method: "REGISTER", URI: cred.URI, Username: user, Password: password, Cnonce: cred.Cnonce, Count: cred.Nc,
	})
	if err != nil || want.Response != cred.Response || cred.URI != req.Recipient.String() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
		return
	}
	exp := req.GetHeader("Expires")
	if exp != nil && exp.Value() != "0" && len(exp.Value()) < 2 {
		res := sip.NewResponseFromRequest(req, sip.StatusIntervalToBrief, "Interval Too Brief", nil)
		res.AppendHeader(sip.NewHeader("Min-Expires", "60"))
		_ = tx.Respond(res)
		return
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	if c := req.Contact(); c != nil && exp != nil {
		r.mu.Lock()
		r.bindings[user], r.expires[user] = c.Address.String(), exp.Value()
		r.mu.Unlock()
		contact := c.Clone()
		contact.Params.Add("expires", exp.Value())
		res.AppendHeader(contact)
	}
	_ = tx.Respond(res)
}

func (r *testRegistrar) binding(user string) (contact, expires string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bindings[user], r.expires[user]
}

func TestRegisterAnswersDigestChallenge(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n := newTestNetwork(t, network)
			regNet, regIP := n.host(t)
			users := map[string]string{"1000": "secret", "1001": "other"}
			reg := startRegistrar(t, regNet, regIP, users)
			phone := func(user, password string) *Phone {
				return newPhone(t, n, user, func(c *Config) {
					c.Password, c.Domain, c.Registrar = password, "lab.example", reg.addr
				})
			}
			good, wrong, unknown := phone("1000", "secret"), phone("1001", "guess"), phone("2999", "x")
			n.start(t)
			defer n.stop()
			startPhones(t, ctx, good, wrong, unknown)

			res, err := good.Register(ctx, time.Hour)
			if err != nil {
				t.Fatalf("register: %v", err)
			}
			if res.StatusCode != sip.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			contact, expires := reg.binding("1000")
			if want := good.Contact(); contact != want.String() || expires != "3600" {
				t.Errorf("binding %s expires %s, want %s expires 3600", contact, expires, want.String())
			}

			for user, tc := range map[string]struct {
				p    *Phone
				code int
			}{"1001": {wrong, sip.StatusForbidden}, "2999": {unknown, sip.StatusNotFound}} {
				res, err := tc.p.Register(ctx, time.Hour)
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tc.code || res == nil || res.StatusCode != tc.code {
					t.Errorf("%s: register = %v, %v; want StatusError %d", user, res, err, tc.code)
				}
			}

			// Too brief: the phone asks again for the registrar's minimum.
			if _, err := good.Register(ctx, 5*time.Second); err != nil {
				t.Fatalf("register for 5 s: %v", err)
			}
			if _, expires := reg.binding("1000"); expires != "60" {
				t.Errorf("after 423: Expires %s, want 60", expires)
			}

			if err := good.Unregister(ctx); err != nil {
				t.Fatalf("unregister: %v", err)
			}
			if _, expires := reg.binding("1000"); expires != "0" {
				t.Errorf("unregister sent Expires %s", expires)
			}
		})
	}
}

func TestCallAnswersProxyChallenge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := newTestNetwork(t, "loopback")
	nw, ip := n.host(t)
	chal := digest.Challenge{Realm: "lab", Nonce: "5eed", Algorithm: "MD5"}
	var mu sync.Mutex
	var cseqs []uint32
	var authorized []bool
	onInvite := func(req *sip.Request, tx sip.ServerTransaction) {
		h := req.GetHeader("Proxy-Authorization")
		mu.Lock()
		cseqs = append(cseqs, req.CSeq().SeqNo)
		mu.Unlock()
		if h == nil {
			res := sip.NewResponseFromRequest(req, sip.StatusProxyAuthRequired, "Proxy Authentication Required", nil)
			res.AppendHeader(sip.NewHeader("Proxy-Authenticate", chal.String()))
			_ = tx.Respond(res)
			return
		}
		cred, err := digest.ParseCredentials(h.Value())
		ok := err == nil
		if ok {
			want, err := digest.Digest(&chal, digest.Options{Method: "INVITE", URI: cred.URI, Username: "1000", Password: "secret"})
			ok = err == nil && want.Response == cred.Response && cred.URI == req.Recipient.String()
		}
		mu.Lock()
		authorized = append(authorized, ok)
		mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBusyHere, "Busy Here", nil))
	}
	uas := serveSIP(t, nw, netip.AddrPortFrom(ip, 0), func(srv *sipgo.Server) { srv.OnInvite(onInvite) })

	a := newPhone(t, n, "1000", func(c *Config) { c.Password = "secret" })
	startPhones(t, ctx, a)
	_, err := a.Call(ctx, "sip:2000@"+uas.Addr.String())
	var se *StatusError
	if !errors.As(err, &se) || se.Code != sip.StatusBusyHere {
		t.Fatalf("call: %v, want the StatusError 486 of the authorized INVITE", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cseqs) != 2 || cseqs[1] != cseqs[0]+1 || len(authorized) != 1 || !authorized[0] {
		t.Errorf("INVITE CSeqs %v, authorized %v; want two INVITEs, the second one authorized", cseqs, authorized)
	}
}
