// Package pbx gives the lab one interface over the PBXs it drives: the embedded PBX (a sipgo
// registrar and B2BUA that loads the FreeSWITCH configuration in freeswitch/conf), and, through
// testcontainers-go, FreeSWITCH and Asterisk containers. Suites talk to a PBX only through this
// interface, so every scenario runs against every backend that is available.
//
// The embedded PBX's `bridge user/N@domain` rings every live registration of user N at once, as
// FreeSWITCH's user/ endpoint does (sofia_contact expands it to all the user's contacts): each
// B leg gets its own RTP endpoints towards its phone; the first 180, and the first 183 with a
// session description (which then stays the caller's early media), reach the caller; the first
// 2xx wins and the other legs are cancelled (a late 2xx is ACKed and hung up); a 6xx ends the
// call at once and cancels the rest; when every leg fails, the caller gets USER_BUSY (486) if
// any leg was busy, else the cause of the last leg to fail. One registration is one B leg.
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
