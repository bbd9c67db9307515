// Package pbx gives the lab one interface over the PBXs it drives: the embedded PBX (a sipgo
// registrar and B2BUA that loads the FreeSWITCH configuration in freeswitch/conf), and, through
// testcontainers-go, FreeSWITCH and Asterisk containers. Suites talk to a PBX only through this
// interface, so every scenario runs against every backend that is available.
//
// Known limit of the embedded PBX: `bridge user/N@domain` rings only the newest live
// registration of user N. FreeSWITCH expands user/ through sofia_contact to every registered
// contact and rings them all at once (the first to answer wins, the others get CANCEL). The lab
// registers one device per user, so this does not show there; a scenario with several devices
// per user needs a FreeSWITCH container backend. Parallel forking is left out because the
// B2BUA keeps one B leg per call (call.b) with its own media endpoints and relay, and forking
// needs several pending legs sharing the A leg's endpoints until one answers.
package pbx

import (
	"net/netip"
)

// Backend names a kind of PBX.
type Backend string

// The PBX backends the lab knows.
const (
	BackendEmbedded   Backend = "embedded"
	BackendFreeSWITCH Backend = "freeswitch"
	BackendAsterisk   Backend = "asterisk"
)

// PBX is a running PBX the lab registers phones and places calls through.
type PBX interface {
	// Backend says which kind of PBX this is.
	Backend() Backend
	// SIPAddr is where the PBX receives SIP over UDP.
	SIPAddr() netip.AddrPort
	// Domain is the SIP domain of the directory users (FreeSWITCH's $${domain}).
	Domain() string
	// Password returns the digest password of a directory user, or false if the user is unknown.
	Password(user string) (string, bool)
	// Close stops the PBX and releases every socket and goroutine it holds.
	Close() error
}
