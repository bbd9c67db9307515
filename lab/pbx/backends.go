package pbx

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Controlled is a running PBX with the status and control the lab asks of every backend: the
// container backends answer through their control sockets (AMI, the event socket), the
// embedded PBX from its own state (Embedded.Control). Status calls take a context and may fail
// (a control socket that dropped).
type Controlled interface {
	PBX
	// Registrations lists the registered contacts.
	Registrations(ctx context.Context) ([]Registration, error)
	// ActiveCalls counts the calls in progress.
	ActiveCalls(ctx context.Context) (int, error)
	// HangupAll hangs up every call.
	HangupAll(ctx context.Context) error
	// Logs is the container's output (the PBX's log); "" for the embedded PBX, whose log goes
	// to its Logger.
	Logs() string
}

var _ Controlled = embeddedControl{}

// Control returns the embedded PBX behind Controlled's signatures, so that the lab treats every
// backend alike: its status calls never fail, and Logs is empty.
func (p *Embedded) Control() Controlled { return embeddedControl{p} }

type embeddedControl struct{ *Embedded }

func (e embeddedControl) Registrations(context.Context) ([]Registration, error) {
	return e.Embedded.Registrations(), nil
}

func (e embeddedControl) ActiveCalls(context.Context) (int, error) {
	return e.Embedded.ActiveCalls(), nil
}

func (e embeddedControl) HangupAll(context.Context) error {
	e.Embedded.HangupAll()
	return nil
}

func (e embeddedControl) Logs() string { return "" }

// HangupAll hangs up every call in progress with NORMAL_CLEARING: a BYE to each answered leg, a
// final response (or CANCEL) to the others.
func (p *Embedded) HangupAll() {
	p.mu.Lock()
	var calls []*call
	for _, l := range p.calls {
		if l.isA && l.call != nil {
			calls = append(calls, l.call)
		}
	}
	p.mu.Unlock()
	for _, c := range calls {
		c.hangup(causeNormalClearing)
	}
}

// EnvPBX selects the PBX backends the lab suites run against: "embedded", "asterisk",
// "freeswitch", a comma-separated list of them, or "all". Unset means all (what `make test`
// runs: every backend, the unavailable ones skipped with their reason); `make lab` sets it to
// embedded unless told otherwise (make lab LAB_PBX=asterisk).
const EnvPBX = "LAB_PBX"

// Backends are every backend the lab knows, the embedded one first.
var Backends = []Backend{BackendEmbedded, BackendAsterisk, BackendFreeSWITCH}

// Selected returns the backends $LAB_PBX selects (ParseSelection).
func Selected() ([]Backend, error) { return ParseSelection(os.Getenv(EnvPBX)) }

// ParseSelection reads a LAB_PBX value: backend names separated by commas, or "all"; "" means
// all. The result follows Backends' order, without duplicates.
func ParseSelection(s string) ([]Backend, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "all") {
		return slices.Clone(Backends), nil
	}
	want := map[Backend]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if n == "all" {
			return slices.Clone(Backends), nil
		}
		b := Backend(n)
		if !slices.Contains(Backends, b) {
			return nil, fmt.Errorf("%s=%q: unknown PBX backend %q (want embedded, asterisk, freeswitch, a comma-separated list of them, or all)", EnvPBX, s, n)
		}
		want[b] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("%s=%q names no backend", EnvPBX, s)
	}
	var out []Backend
	for _, b := range Backends {
		if want[b] {
			out = append(out, b)
		}
	}
	return out, nil
}

// Image is the image a backend runs ($LAB_ASTERISK_IMAGE, $LAB_FREESWITCH_IMAGE or their
// defaults); "" for the embedded PBX, which runs in the test process.
func Image(b Backend) string {
	switch b {
	case BackendAsterisk:
		return AsteriskImage()
	case BackendFreeSWITCH:
		return FreeSWITCHImage()
	}
	return ""
}

// IsContainer tells whether b runs in a container (in real time, on 127.0.0.1).
func IsContainer(b Backend) bool { return b == BackendAsterisk || b == BackendFreeSWITCH }
