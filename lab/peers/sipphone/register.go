package sipphone

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Register binds the phone's contact to its AOR at Config.Registrar for expires (rounded to
// seconds), answering a 401/407 digest challenge once and a 423 with the registrar's Min-Expires.
// It returns the final response; for a non-2xx the error wraps a *StatusError (403, 404...).
// Unless RegisterRefresh(false) is set, a successful registration is kept: refreshed after half
// the granted time, and registered again after a failure, until Unregister or Close.
func (p *Phone) Register(ctx context.Context, expires time.Duration) (*sip.Response, error) {
	reg := p.ua.Registration(p.cfg.User)
	res, err := reg.Register(ctx, expires)
	if err == nil && p.opts.refresh && expires >= time.Second {
		reg.Keep(expires)
	}
	return res, err
}

// Unregister removes the phone's binding (Expires: 0) and stops refreshing it.
func (p *Phone) Unregister(ctx context.Context) error {
	return p.ua.Registration(p.cfg.User).Unregister(ctx)
}
