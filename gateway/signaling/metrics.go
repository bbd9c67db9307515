package signaling

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Metrics counts what the signalling server does. It is safe for concurrent use; the gateway
// exports a Snapshot (for example to Prometheus) whenever it is scraped.
type Metrics struct {
	sessionsActive atomic.Int64
	sessionsTotal  atomic.Uint64
	loginFailures  atomic.Uint64
	kicked         atomic.Uint64
	connsActive    atomic.Int64
	callsActive    atomic.Int64
	pendingActive  atomic.Int64

	mu     sync.Mutex
	local  map[string]uint64
	remote map[string]uint64
	errors map[ErrorCode]uint64
}

// MetricsSnapshot is a copy of the counters at one instant.
type MetricsSnapshot struct {
	Connections    int64  // open WebSocket connections
	Sessions       int64  // logged-in sessions now
	SessionsTotal  uint64 // successful logins
	LoginFailures  uint64 // logins refused (bad or expired token)
	Kicked         uint64 // sessions replaced by a newer login of the same user
	Calls          int64  // calls held by sessions now (pending invitations and established calls)
	PendingInvites int64  // remote invitations waiting for their callee to log in
	// LocalOutcomes and RemoteOutcomes count invitations by final state, keyed by the state,
	// or "FAILURE/<code>" for failures.
	LocalOutcomes  map[string]uint64
	RemoteOutcomes map[string]uint64
	// Errors counts error replies by code.
	Errors map[ErrorCode]uint64
}

// Snapshot copies the counters.
func (m *Metrics) Snapshot() MetricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MetricsSnapshot{
		Connections:    m.connsActive.Load(),
		Sessions:       m.sessionsActive.Load(),
		SessionsTotal:  m.sessionsTotal.Load(),
		LoginFailures:  m.loginFailures.Load(),
		Kicked:         m.kicked.Load(),
		Calls:          m.callsActive.Load(),
		PendingInvites: m.pendingActive.Load(),
		LocalOutcomes:  maps.Clone(m.local),
		RemoteOutcomes: maps.Clone(m.remote),
		Errors:         maps.Clone(m.errors),
	}
}

func outcomeKey(state string, code FailureCode) string {
	if code != "" {
		return state + "/" + string(code)
	}
	return state
}

func (m *Metrics) localOutcome(state LocalState, code FailureCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.local == nil {
		m.local = map[string]uint64{}
	}
	m.local[outcomeKey(string(state), code)]++
}

func (m *Metrics) remoteOutcome(state RemoteState, code FailureCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.remote == nil {
		m.remote = map[string]uint64{}
	}
	m.remote[outcomeKey(string(state), code)]++
}

func (m *Metrics) errorSent(code ErrorCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.errors == nil {
		m.errors = map[ErrorCode]uint64{}
	}
	m.errors[code]++
}
