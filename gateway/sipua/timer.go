package sipua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). The refresher sends a re-INVITE (or an UPDATE when the peer allows
// it) every half interval; the other side ends the dialog with BYE when no refresh came by the
// interval less min(32 s, interval/3). Every re-INVITE and UPDATE carries Session-Expires, and
// its 2xx sets the interval and the refresher again.

// sessionState is a dialog's session timer.
type sessionState struct {
	interval  time.Duration
	weRefresh bool
	timer     *time.Timer
	gen       int // counts armSession calls: a refresh re-arms only if nothing else did meanwhile
}

// SessionTimer reports the dialog's session interval (0: no session timer) and whether this side
// is the refresher.
func (d *Dialog) SessionTimer() (interval time.Duration, weRefresh bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.session.interval, d.session.weRefresh
}

func (d *Dialog) stopSessionLocked() {
	if d.session.timer != nil {
		d.session.timer.Stop()
		d.session.timer = nil
	}
}

// armSession restarts the session timer for interval (0: none).
func (d *Dialog) armSession(interval time.Duration, weRefresh bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopSessionLocked()
	d.session.interval, d.session.weRefresh = interval, weRefresh
	d.session.gen++
	if interval <= 0 || d.ended() {
		return
	}
	if weRefresh {
		d.armLocked(interval/2, d.refreshSession)
		return
	}
	d.armLocked(interval-min(32*time.Second, interval/3), d.expire)
}

// armLocked runs f after wait on a goroutine the UA waits for, in place of the timer set.
func (d *Dialog) armLocked(wait time.Duration, f func()) {
	d.stopSessionLocked()
	d.session.timer = time.AfterFunc(wait, func() { d.u.Go(f) })
}

// rearm runs f after wait unless the session timer was set again since generation gen.
func (d *Dialog) rearm(gen int, wait time.Duration, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.session.gen == gen && !d.ended() {
		d.armLocked(wait, f)
	}
}

// expire ends a dialog whose session was not refreshed in time.
func (d *Dialog) expire() { d.endWithBye(EndedSessionExpired) }

// refreshSession refreshes the session as its refresher: UPDATE without a body when the peer
// allows it, else a re-INVITE with the current description (RFC 4028 7.4).
func (d *Dialog) refreshSession() {
	ctx, cancel := context.WithTimeout(d.u.ctx, 64*sip.T1)
	defer cancel()
	d.mu.Lock()
	gen, interval := d.session.gen, d.session.interval
	d.mu.Unlock()
	var err error
	if d.peerAllows(sip.UPDATE) {
		_, err = d.Update(ctx, nil)
	} else {
		_, err = d.Reinvite(ctx, d.LocalSDP())
	}
	code := StatusCode(err)
	switch {
	case err == nil: // the 2xx re-armed the timer
	case errors.Is(err, ErrEnded), errors.Is(err, ErrClosed):
	case errors.Is(err, ErrOfferPending):
		// An exchange is in progress; its own 2xx refreshes the session. Look again shortly.
		d.rearm(gen, time.Second, d.refreshSession)
	case code == 0 || code == sip.StatusRequestTimeout || code == sip.StatusCallTransactionDoesNotExists:
		d.u.log.Info("session refresh failed", "call", d.CallID(), "error", err)
		d.endWithBye(EndedSessionExpired)
	default:
		// The session lives on until it expires: half the interval from now.
		d.rearm(gen, interval/2, d.expire)
	}
}

// addSessionExpires puts the session timer in a re-INVITE or UPDATE we send.
func (d *Dialog) addSessionExpires(req *sip.Request) {
	cfg := d.u.cfg
	if cfg.SessionExpires <= 0 {
		return
	}
	d.mu.Lock()
	interval, weRefresh := d.session.interval, d.session.weRefresh
	d.mu.Unlock()
	v := seconds(cfg.SessionExpires)
	if interval > 0 {
		refresher := "uas"
		if weRefresh {
			refresher = "uac"
		}
		v = seconds(interval) + ";refresher=" + refresher
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", v))
	req.AppendHeader(sip.NewHeader("Min-SE", seconds(cfg.MinSE)))
}

// sessionTimerFromAnswer sets the session timer from the 2xx of a request we sent: no
// Session-Expires means no session timer (RFC 4028 7.2); refresher=uac means us.
func (d *Dialog) sessionTimerFromAnswer(res *sip.Response) {
	if d.u.cfg.SessionExpires <= 0 {
		return
	}
	interval, refresher, ok := readSessionExpires(res)
	if !ok {
		d.armSession(0, false)
		return
	}
	d.armSession(interval, refresher != "uas")
}

// timerAnswer is the session timer this side grants in the 2xx of a request it answers.
type timerAnswer struct {
	interval  time.Duration
	weRefresh bool
	refresher string // uac or uas
	require   bool   // the 2xx must carry Require: timer (the peer refreshes, so it supports it)
}

// apply puts the granted session timer in the 2xx.
func (t timerAnswer) apply(res *sip.Response) {
	if t.interval <= 0 {
		return
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", seconds(t.interval)+";refresher="+t.refresher))
	if t.require {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// negotiateTimer decides the session timer of a request we answer (RFC 4028 9): the interval
// asked (or ours, when the request asks none, raised to its Min-SE), the refresher asked (or
// the UAC when it supports timers, else us). An interval below our Min-SE is refused with 422,
// sent here (ok false).
func (u *UA) negotiateTimer(req *sip.Request, tx sip.ServerTransaction) (timerAnswer, bool) {
	if u.cfg.SessionExpires <= 0 {
		return timerAnswer{}, true
	}
	interval, refresher, asked := readSessionExpires(req)
	if asked && interval < u.cfg.MinSE {
		res := sip.NewResponseFromRequest(req, statusIntervalTooSmall, "Session Interval Too Small", nil)
		res.AppendHeader(sip.NewHeader("Min-SE", seconds(u.cfg.MinSE)))
		u.respond(tx, res)
		return timerAnswer{}, false
	}
	if !asked {
		interval = u.cfg.SessionExpires
		if n, ok := HeaderUint(req, "Min-SE"); ok && time.Duration(n)*time.Second > interval {
			interval = time.Duration(n) * time.Second
		}
	}
	supports := HasOption(req, "Supported", "timer") || HasOption(req, "Require", "timer")
	if refresher != "uac" && refresher != "uas" {
		refresher = "uas"
		if supports {
			refresher = "uac"
		}
	}
	return timerAnswer{interval: interval, weRefresh: refresher == "uas", refresher: refresher, require: refresher == "uac"}, true
}

// readSessionExpires reads Session-Expires (compact form x): "1800;refresher=uac".
func readSessionExpires(m interface{ GetHeader(string) sip.Header }) (time.Duration, string, bool) {
	h := m.GetHeader("Session-Expires")
	if h == nil {
		h = m.GetHeader("x")
	}
	if h == nil {
		return 0, "", false
	}
	v, params, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || n == 0 {
		return 0, "", false
	}
	refresher := ""
	for _, p := range strings.Split(params, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(n) * time.Second, refresher, true
}

func seconds(d time.Duration) string { return fmt.Sprint(int64(d / time.Second)) }

// statusIntervalTooSmall is 422 Session Interval Too Small (RFC 4028), which sipgo does not name.
const statusIntervalTooSmall = 422
