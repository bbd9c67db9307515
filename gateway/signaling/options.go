package signaling

import (
	"log/slog"
	"time"
)

// Timeouts are the invitation timers. Zero fields take the defaults of the RTM API.
type Timeouts struct {
	// PeerOffline: how long a remote invitation waits for its callee to log in (default 30 s).
	PeerOffline time.Duration
	// PeerNoResponse: how long an invitation waits to be acknowledged: SIP 180/183 for a local
	// invitation, the client's "received" for a remote one (default 30 s).
	PeerNoResponse time.Duration
	// Expire: how long an invitation waits to be answered, counted from sending (default 60 s).
	Expire time.Duration
	// AcceptConfirm: how long an acceptance waits for the SIP side to confirm it (the ACK)
	// before the remote invitation fails with ACCEPT_FAILURE (default 32 s, SIP's Timer H).
	AcceptConfirm time.Duration
}

// DefaultTimeouts are the timers of the RTM call-invitation API.
var DefaultTimeouts = Timeouts{
	PeerOffline:    30 * time.Second,
	PeerNoResponse: 30 * time.Second,
	Expire:         60 * time.Second,
	AcceptConfirm:  32 * time.Second,
}

type options struct {
	timeouts         Timeouts
	loginTimeout     time.Duration
	maxLoginFailures int
	pingInterval     time.Duration
	pongTimeout      time.Duration
	writeTimeout     time.Duration
	maxMessageBytes  int64
	rate             float64
	burst            int
	maxCalls         int
	sendQueue        int
	originPatterns   []string
	logger           *slog.Logger
}

func defaultOptions() options {
	return options{
		timeouts:         DefaultTimeouts,
		loginTimeout:     10 * time.Second,
		maxLoginFailures: 3,
		pingInterval:     20 * time.Second,
		pongTimeout:      10 * time.Second,
		writeTimeout:     10 * time.Second,
		maxMessageBytes:  64 * 1024,
		rate:             20,
		burst:            50,
		maxCalls:         16,
		sendQueue:        256,
		logger:           slog.New(slog.DiscardHandler),
	}
}

// Option configures a Server.
type Option func(*options)

// WithTimeouts sets the invitation timers; zero fields keep their defaults.
func WithTimeouts(t Timeouts) Option {
	return func(o *options) {
		if t.PeerOffline > 0 {
			o.timeouts.PeerOffline = t.PeerOffline
		}
		if t.PeerNoResponse > 0 {
			o.timeouts.PeerNoResponse = t.PeerNoResponse
		}
		if t.Expire > 0 {
			o.timeouts.Expire = t.Expire
		}
		if t.AcceptConfirm > 0 {
			o.timeouts.AcceptConfirm = t.AcceptConfirm
		}
	}
}

// WithLoginTimeout closes connections that are not logged in this long after opening or after
// a logout (default 10 s), and after max failed logins (default 3).
func WithLoginTimeout(d time.Duration, maxFailures int) Option {
	return func(o *options) { o.loginTimeout, o.maxLoginFailures = d, maxFailures }
}

// WithKeepalive sets how often the server pings each connection and how long it waits for the
// pong before closing it (defaults 20 s and 10 s).
func WithKeepalive(interval, pongTimeout time.Duration) Option {
	return func(o *options) { o.pingInterval, o.pongTimeout = interval, pongTimeout }
}

// WithWriteTimeout bounds one write to a client (default 10 s).
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithMaxMessageBytes bounds one client message (default 64 KiB); a larger one closes the
// connection with status 1009.
func WithMaxMessageBytes(n int64) Option { return func(o *options) { o.maxMessageBytes = n } }

// WithRateLimit allows each connection rate messages per second in bursts of burst
// (defaults 20/s and 50: a burst of trickled ICE candidates fits). rate 0 disables the limit.
func WithRateLimit(rate float64, burst int) Option {
	return func(o *options) { o.rate, o.burst = rate, burst }
}

// WithMaxCalls bounds the calls of one session, and the remote invitations waiting for one
// user to log in (default 16).
func WithMaxCalls(n int) Option { return func(o *options) { o.maxCalls = n } }

// WithSendQueue sets how many outgoing messages may wait for a slow client before it is
// disconnected (default 256).
func WithSendQueue(n int) Option { return func(o *options) { o.sendQueue = n } }

// WithOriginPatterns allows browser pages from these origins (host patterns, as in
// path.Match) besides the gateway's own host.
func WithOriginPatterns(patterns ...string) Option {
	return func(o *options) { o.originPatterns = patterns }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
