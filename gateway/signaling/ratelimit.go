package signaling

import "time"

// tokenBucket limits the messages one connection may send: rate per second with bursts of
// burst. A message over the limit costs a token anyway, so the bucket goes into debt; a client
// that keeps sending into a debt deeper than one burst is abusive and gets disconnected.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take spends one token at now. It reports whether the message is allowed, and whether the
// sender has gone so far over the limit that the connection should be closed.
func (b *tokenBucket) take(now time.Time) (allowed, abusive bool) {
	if b.rate <= 0 {
		return true, false
	}
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	b.last = now
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.tokens--
	return b.tokens >= 0, b.tokens < -b.burst
}
