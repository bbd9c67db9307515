package rtprelay

import (
	"log/slog"
	"time"
)

const defaultLatchWindow = 10

// Option configures a [Relay].
type Option func(*config)

type config struct {
	latching    bool
	latchWindow int
	log         *slog.Logger
	recorder    func(dir Direction, pkt []byte, at time.Time)
	echo        bool
}

func newConfig(opts []Option) config {
	cfg := config{
		latching:    true,
		latchWindow: defaultLatchWindow,
		log:         slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&cfg)
	}

	return cfg
}

// WithLatching turns symmetric RTP on or off (default on): with it, each leg
// is sent media where its packets come from rather than where its SDP says.
// The rule is in the package documentation.
func WithLatching(on bool) Option {
	return func(c *config) { c.latching = on }
}

// WithLatchWindow sets how many consecutive packets from a leg's remote end
// its learning period (default 10); after it, packets from other sources are
// dropped as strays. Values below 1 are taken as 1.
func WithLatchWindow(packets int) Option {
	return func(c *config) { c.latchWindow = max(packets, 1) }
}

// WithLogger sets the logger for latching and socket events (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithRecorder calls fn for every packet the relay sends on, RTP and RTCP,
// with its arrival time, before it is sent. pkt is only valid during the
// call: copy it to keep it. fn runs on the relay's socket goroutines and
// must be quick and safe for concurrent use.
func WithRecorder(fn func(dir Direction, pkt []byte, at time.Time)) Option {
	return func(c *config) { c.recorder = fn }
}

// WithEcho makes [NewRelay] an echo of its first endpoint (its second is
// ignored): see [NewEcho].
func WithEcho() Option {
	return func(c *config) { c.echo = true }
}
