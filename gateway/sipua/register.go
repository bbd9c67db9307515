package sipua

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RegState is the state of an account's registration.
type RegState int

// The registration states.
const (
	Unregistered       RegState = iota // never registered, or unregistered
	Registering                        // the first REGISTER is on its way
	Registered                         // bound at the registrar
	RegistrationFailed                 // the last attempt failed: retrying with backoff while kept
)

func (s RegState) String() string {
	switch s {
	case Registering:
		return "registering"
	case Registered:
		return "registered"
	case RegistrationFailed:
		return "failed"
	}
	return "unregistered"
}

// RegistrationStatus is a snapshot of an account's registration.
type RegistrationStatus struct {
	User  string
	State RegState
	// Code and Reason are the last final response's status (Code 0 and the error as Reason when
	// none came: timeout, transport error, lost keepalive).
	Code   int
	Reason string
	// Expires is when the binding ends (Registered).
	Expires time.Time
	// Since is when State was entered.
	Since time.Time
	// Failures counts the attempts failed in a row.
	Failures int
}

// Registration is one account's binding at Config.Server: Register and Unregister exchange
// REGISTERs once; Keep keeps it registered.
type Registration struct {
	u   *UA
	acc *Account

	mu        sync.Mutex
	callID    string
	fromTag   string
	cseq      uint32
	status    RegistrationStatus
	refreshAt time.Time // when a refresh of the binding is due (Registered)
	keep      *keeper   // the running keep loop
}

// keeper is one run of a registration's keep loop.
type keeper struct {
	stop chan struct{}
	kick chan time.Duration // the next attempt after this delay, instead of the planned one
}

func newRegistration(u *UA, acc *Account) *Registration {
	return &Registration{u: u, acc: acc, callID: newCallID(), fromTag: sip.GenerateTagN(16), cseq: randSeq(),
		status: RegistrationStatus{User: acc.User}}
}

// Registration is the registration of an account (nil for an unknown user).
func (u *UA) Registration(user string) *Registration { return u.regs[user] }

// Registrations is a snapshot of every account's registration, in Config.Accounts order.
func (u *UA) Registrations() []RegistrationStatus {
	out := make([]RegistrationStatus, 0, len(u.order))
	for _, user := range u.order {
		out = append(out, u.regs[user].Status())
	}
	return out
}

// KeepRegistered keeps every account registered for Config.RegisterExpires (Keep), their first
// REGISTERs Config.Stagger apart.
func (u *UA) KeepRegistered() {
	for i, user := range u.order {
		u.regs[user].keepAfter(u.cfg.RegisterExpires, time.Duration(i)*u.cfg.Stagger)
	}
}

// UnregisterAll removes the binding of every account that is registered (graceful shutdown) and
// stops keeping them; it returns the first error.
func (u *UA) UnregisterAll(ctx context.Context) error {
	var first error
	for _, user := range u.order {
		r := u.regs[user]
		if r.Status().State != Registered {
			r.stopKeeping()
			continue
		}
		if err := r.Unregister(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Status is a snapshot of the registration.
func (r *Registration) Status() RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Register binds the account's contact at Config.Server for expires (rounded to seconds),
// answering a 401/407 digest challenge once and a 423 with the registrar's Min-Expires. It
// returns the final response; for a non-2xx the error wraps a *StatusError (403, 404...). It
// stops a running Keep: call Keep again to have the binding refreshed.
func (r *Registration) Register(ctx context.Context, expires time.Duration) (*sip.Response, error) {
	if err := r.u.ready(); err != nil {
		return nil, err
	}
	if !r.u.cfg.Server.IsValid() {
		return nil, ErrNoServer
	}
	r.stopKeeping()
	return r.exchange(ctx, max(0, int(expires.Round(time.Second)/time.Second)))
}

// Unregister stops keeping the registration and removes the binding (Expires: 0).
func (r *Registration) Unregister(ctx context.Context) error {
	if err := r.u.ready(); err != nil {
		return err
	}
	if !r.u.cfg.Server.IsValid() {
		return ErrNoServer
	}
	r.stopKeeping()
	_, err := r.exchange(ctx, 0)
	return err
}

// Keep keeps the account registered for expires until Unregister or Close: it registers (at
// once, or when the refresh of a binding Register made is due), refreshes after half the
// granted time (at least 5 s before the binding ends), and after a failure retries with
// exponential backoff between Config.RetryMin and RetryMax, with jitter. With Config.KeepAlive,
// OPTIONS to the server notice a loss between refreshes.
func (r *Registration) Keep(expires time.Duration) {
	r.mu.Lock()
	delay := time.Duration(0)
	if r.status.State == Registered {
		delay = max(0, time.Until(r.refreshAt))
	}
	r.mu.Unlock()
	r.keepAfter(expires, delay)
}

func (r *Registration) keepAfter(expires, delay time.Duration) {
	r.stopKeeping()
	k := &keeper{stop: make(chan struct{}), kick: make(chan time.Duration, 1)}
	r.mu.Lock()
	r.keep = k
	r.mu.Unlock()
	seconds := max(1, int(expires.Round(time.Second)/time.Second))
	if !r.u.Go(func() { r.run(k, seconds, delay) }) {
		return
	}
	r.u.startKeepAlive()
}

func (r *Registration) stopKeeping() {
	r.mu.Lock()
	k := r.keep
	r.keep = nil
	r.mu.Unlock()
	if k != nil {
		close(k.stop)
	}
}

// kept reports whether a keep loop runs.
func (r *Registration) kept() *keeper {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keep
}

// kick makes the keep loop attempt after delay instead of when it planned to.
func (k *keeper) kickAfter(delay time.Duration) {
	select {
	case k.kick <- delay:
	default:
	}
}

// run is the keep loop: register, then refresh or retry, until stopped.
func (r *Registration) run(k *keeper, seconds int, delay time.Duration) {
	failures := 0
	for {
		timer := time.NewTimer(delay)
	wait:
		for {
			select {
			case <-timer.C:
				break wait
			case d := <-k.kick:
				timer.Reset(d)
			case <-k.stop:
				timer.Stop()
				return
			case <-r.u.ctx.Done():
				timer.Stop()
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.u.ctx, r.u.cfg.RequestTimeout)
		_, err := r.exchange(ctx, seconds)
		cancel()
		select {
		case <-k.stop:
			return
		default:
		}
		if err == nil {
			failures = 0
			r.mu.Lock()
			delay = max(0, time.Until(r.refreshAt))
			r.mu.Unlock()
			continue
		}
		failures++
		delay = r.u.backoff(failures)
		r.u.log.Info("registration failed", "user", r.acc.User, "error", err, "failures", failures, "retry", delay)
	}
}

// backoff is the wait before the next attempt after failures failed ones: RetryMin doubling up
// to RetryMax, give or take 20%.
func (u *UA) backoff(failures int) time.Duration {
	d := u.cfg.RetryMax
	if failures <= 30 {
		d = min(u.cfg.RetryMin<<(failures-1), u.cfg.RetryMax)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}

// exchange sends one REGISTER for seconds (0 removes the binding), with a second one for a
// 423's Min-Expires, and records the outcome in the status.
func (r *Registration) exchange(ctx context.Context, seconds int) (*sip.Response, error) {
	r.setState(func(s *RegistrationStatus) {
		if s.State == Unregistered && seconds > 0 {
			s.State = Registering // a failed one stays failed until an attempt succeeds
		}
	})
	res, err := r.register(ctx, seconds)
	if res != nil && res.StatusCode == sip.StatusIntervalToBrief && seconds > 0 {
		// 423 Interval Too Brief: ask again for the registrar's Min-Expires (RFC 3261 10.2.8).
		if minimum, ok := HeaderUint(res, "Min-Expires"); ok && int(minimum) > seconds {
			seconds = int(minimum)
			res, err = r.register(ctx, seconds)
		}
	}
	now := time.Now()
	r.setState(func(s *RegistrationStatus) {
		s.Code, s.Reason = 0, ""
		if res != nil {
			s.Code, s.Reason = res.StatusCode, res.Reason
		} else if err != nil {
			s.Reason = err.Error()
		}
		switch {
		case err != nil && seconds > 0:
			s.State, s.Expires = RegistrationFailed, time.Time{}
			s.Failures++
		case err != nil:
		case seconds == 0:
			s.State, s.Expires, s.Failures = Unregistered, time.Time{}, 0
		default:
			granted := time.Duration(r.grantedExpiry(res, seconds)) * time.Second
			s.State, s.Expires, s.Failures = Registered, now.Add(granted), 0
			r.refreshAt = now.Add(refreshDelay(granted))
		}
	})
	return res, err
}

// refreshDelay is when a binding granted for g is refreshed: after half of it, and at least 5 s
// before it ends when it is short.
func refreshDelay(g time.Duration) time.Duration {
	d := g / 2
	if g > 5*time.Second && g-5*time.Second < d {
		d = g - 5*time.Second
	}
	return d
}

// setState changes the status under the lock and reports a change of state to OnRegistration.
func (r *Registration) setState(change func(*RegistrationStatus)) {
	r.mu.Lock()
	before := r.status.State
	change(&r.status)
	if r.status.State != before {
		r.status.Since = time.Now()
	}
	status := r.status
	r.mu.Unlock()
	if status.State != before {
		r.u.log.Debug("registration", "user", status.User, "state", status.State, "code", status.Code, "reason", status.Reason)
		if f := r.u.cfg.OnRegistration; f != nil {
			f(status)
		}
	}
}

// lost marks the registration failed without an attempt (the server stopped answering).
func (r *Registration) lost(reason string) {
	r.setState(func(s *RegistrationStatus) {
		if s.State == Registered || s.State == Registering {
			s.State, s.Code, s.Reason = RegistrationFailed, 0, reason
			s.Failures++
		}
	})
}

func (r *Registration) register(ctx context.Context, seconds int) (*sip.Response, error) {
	u := r.u
	r.mu.Lock()
	r.cseq++
	callID, fromTag, cseq := r.callID, r.fromTag, r.cseq
	r.mu.Unlock()

	aor := u.AOR(r.acc.User)
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: aor.Host})
	req.AppendHeader(u.fromHeader(r.acc, fromTag))
	req.AppendHeader(&sip.ToHeader{DisplayName: r.acc.DisplayName, Address: *aor})
	id := sip.CallIDHeader(callID)
	req.AppendHeader(&id)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(u.contactHeader(r.acc))
	exp := sip.ExpiresHeader(seconds)
	req.AppendHeader(&exp)
	u.commonHeaders(req)
	u.serverHop().apply(req)

	res, err := u.send(ctx, r.acc, req, func() uint32 {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.cseq++
		return r.cseq
	})
	if err != nil {
		return nil, fmt.Errorf("sipua: REGISTER %s: %w", aor.String(), err)
	}
	if !res.IsSuccess() {
		return res, fmt.Errorf("sipua: REGISTER %s: %w", aor.String(), statusError(sip.REGISTER, res))
	}
	return res, nil
}

// grantedExpiry reads the registrar's expiry of our contact (its expires parameter, else the
// Expires header field), falling back to what was asked.
func (r *Registration) grantedExpiry(res *sip.Response, asked int) int {
	mine := r.u.Contact(r.acc.User)
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != mine.Host || c.Address.Port != mine.Port {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	if n, ok := HeaderUint(res, "Expires"); ok && n > 0 {
		return int(n)
	}
	return asked
}

// startKeepAlive starts the keepalive loop once, when registrations are kept.
func (u *UA) startKeepAlive() {
	if u.cfg.KeepAlive < 0 || !u.cfg.Server.IsValid() || len(u.order) == 0 {
		return
	}
	u.mu.Lock()
	if u.keepalive || u.closed {
		u.mu.Unlock()
		return
	}
	u.keepalive = true
	u.mu.Unlock()
	u.Go(u.keepAliveLoop)
}

// keepAliveLoop sends OPTIONS to the server every Config.KeepAlive while registrations are kept:
// it keeps NAT bindings open, and a server that stops answering marks them failed (and has them
// re-registered, staggered); when it answers again, the failed ones try again at once.
func (u *UA) keepAliveLoop() {
	lost := false
	for u.wait(u.ctx, u.cfg.KeepAlive, nil) {
		var kept []*Registration
		for _, user := range u.order {
			if u.regs[user].kept() != nil {
				kept = append(kept, u.regs[user])
			}
		}
		if len(kept) == 0 {
			continue
		}
		// Over TCP or TLS, a new connection to the server means the bindings made over the old
		// one no longer reach us (the server sends requests down the connection a REGISTER
		// came on): register again at once.
		reconnected := u.cfg.Transport != UDP && !u.stack.Connected(u.cfg.Transport, u.cfg.Server)
		ctx, cancel := context.WithTimeout(u.ctx, u.cfg.RequestTimeout)
		_, err := u.options(ctx, kept[0].acc, sip.Uri{Scheme: "sip", Host: u.domain()}, u.serverHop())
		cancel()
		if u.ctx.Err() != nil {
			return
		}
		alive := err == nil || StatusCode(err) != 0
		switch {
		case alive && !lost && reconnected:
			u.log.Info("new connection to the server: registering again", "server", u.cfg.Server)
			for i, r := range kept {
				if k := r.kept(); k != nil {
					k.kickAfter(time.Duration(i) * u.cfg.Stagger)
				}
			}
		case !alive && !lost:
			lost = true
			u.log.Warn("server not answering keepalives", "server", u.cfg.Server, "error", err)
			for i, r := range kept {
				r.lost("no answer to keepalive")
				if k := r.kept(); k != nil {
					k.kickAfter(time.Duration(i) * u.cfg.Stagger)
				}
			}
		case alive && lost:
			lost = false
			u.log.Info("server answering keepalives again", "server", u.cfg.Server)
			i := 0
			for _, r := range kept {
				if k := r.kept(); k != nil && r.Status().State == RegistrationFailed {
					k.kickAfter(time.Duration(i) * u.cfg.Stagger)
					i++
				}
			}
		}
	}
}
