package sipphone

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Register binds the phone's contact to its AOR at Config.Registrar for expires (rounded to
// seconds), answering a 401/407 digest challenge once and a 423 with the registrar's Min-Expires.
// It returns the final response; for a non-2xx the error wraps a *StatusError (403, 404...). Unless RegisterRefresh(false) is set, a
// successful registration is refreshed at half the granted time until Unregister or Close.
func (p *Phone) Register(ctx context.Context, expires time.Duration) (*sip.Response, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	if !p.cfg.Registrar.IsValid() {
		return nil, ErrNoRegistrar
	}
	seconds := max(0, int(expires.Round(time.Second)/time.Second))
	res, err := p.register(ctx, seconds)
	if res != nil && res.StatusCode == sip.StatusIntervalToBrief {
		// 423 Interval Too Brief: ask again for the registrar's Min-Expires (RFC 3261 10.2.8).
		if minimum, ok := headerUint(res, "Min-Expires"); ok && int(minimum) > seconds {
			seconds = int(minimum)
			res, err = p.register(ctx, seconds)
		}
	}
	if err != nil {
		return res, err
	}
	if seconds > 0 && p.opts.refresh {
		p.armRefresh(p.grantedExpiry(res, seconds), seconds, nil)
	}
	return res, nil
}

// Unregister removes the phone's binding (Expires: 0) and stops refreshing it.
func (p *Phone) Unregister(ctx context.Context) error {
	if err := p.ready(); err != nil {
		return err
	}
	if !p.cfg.Registrar.IsValid() {
		return ErrNoRegistrar
	}
	p.armRefresh(0, 0, nil)
	_, err := p.register(ctx, 0)
	return err
}

func (p *Phone) register(ctx context.Context, seconds int) (*sip.Response, error) {
	p.mu.Lock()
	p.reg.cseq++
	callID, fromTag, cseq := p.reg.callID, p.reg.fromTag, p.reg.cseq
	p.mu.Unlock()

	aor := p.AOR()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: aor.Host})
	req.AppendHeader(p.fromHeader(fromTag))
	req.AppendHeader(&sip.ToHeader{DisplayName: p.cfg.DisplayName, Address: *aor})
	id := sip.CallIDHeader(callID)
	req.AppendHeader(&id)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(p.contactHeader())
	exp := sip.ExpiresHeader(seconds)
	req.AppendHeader(&exp)
	p.commonHeaders(req)
	req.SetDestination(p.cfg.Registrar.String())

	res, err := p.send(ctx, req, func() uint32 {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reg.cseq++
		return p.reg.cseq
	})
	if err != nil {
		return nil, fmt.Errorf("sipphone: REGISTER %s: %w", aor.String(), err)
	}
	if !res.IsSuccess() {
		return res, fmt.Errorf("sipphone: REGISTER %s: %w", aor.String(), statusError(sip.REGISTER, res))
	}
	return res, nil
}

// grantedExpiry reads the registrar's expiry of our contact (its expires parameter, else the
// Expires header field), falling back to what was asked.
func (p *Phone) grantedExpiry(res *sip.Response, asked int) int {
	mine := p.Contact()
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
	if n, ok := headerUint(res, "Expires"); ok && n > 0 {
		return int(n)
	}
	return asked
}

// armRefresh replaces the refresh of the registration: after half of granted seconds, register
// again for asked seconds; granted 0 only stops it. With a non-nil current, it re-arms only if
// that refresh is still the armed one (an Unregister in the meantime wins).
func (p *Phone) armRefresh(granted, asked int, current chan struct{}) {
	p.mu.Lock()
	if current != nil && p.reg.stop != current {
		p.mu.Unlock()
		return
	}
	if p.reg.stop != nil {
		close(p.reg.stop)
		p.reg.stop = nil
	}
	if granted <= 0 || p.closed {
		p.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	p.reg.stop = stop
	p.mu.Unlock()

	p.goDo(func() {
		timer := time.NewTimer(time.Duration(granted) * time.Second / 2)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-stop:
			return
		case <-p.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, 64*sip.T1)
		defer cancel()
		res, err := p.register(ctx, asked)
		if err != nil {
			p.log.Warn("registration refresh failed", "error", err)
			return
		}
		p.armRefresh(p.grantedExpiry(res, asked), asked, stop)
	})
}
