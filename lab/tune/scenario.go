package tune

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/scenario"
)

// RFC8867Prefix names an RFC 8867 case: rfc8867-<section>, as rfc8867-5.1.
const RFC8867Prefix = "rfc8867-"

// DefaultFileDuration is the length of a scenario file's run when the file gives none.
const DefaultFileDuration = time.Minute

// Scenario is one scenario of a sweep: Spec is an RFC 8867 case (rfc8867-5.1) or the absolute
// path of a scenario file, Name what reports call it.
type Scenario struct {
	Name string `json:"name"`
	Spec string `json:"spec"`
}

// ParseScenario reads a --scenario value: rfc8867-<section> (a section scenario.RFC8867
// runs), or the path of a scenario file (YAML, lab/netem's format, with a host named sender:
// the WebRTC client's side). It loads the case, so that an unknown section or a bad file is an
// error now, naming the flag and the value.
func ParseScenario(s string) (Scenario, error) {
	if sec, ok := strings.CutPrefix(s, RFC8867Prefix); ok && !strings.ContainsAny(s, `/\`) {
		if !slices.Contains(scenario.RFC8867Sections, sec) {
			return Scenario{}, fmt.Errorf("--scenario %q: unknown RFC 8867 section %q: want %s<section> with section one of %s, or a scenario file (.yaml)",
				s, sec, RFC8867Prefix, strings.Join(scenario.RFC8867Sections, ", "))
		}
		sc := Scenario{Name: s, Spec: s}
		if _, err := sc.Case(); err != nil {
			return Scenario{}, fmt.Errorf("--scenario %q: %w", s, err)
		}
		return sc, nil
	}
	if _, err := os.Stat(s); err != nil {
		return Scenario{}, fmt.Errorf("--scenario %q: not an RFC 8867 case and no such file: want %s<section> (%s) or a scenario file (.yaml)",
			s, RFC8867Prefix, strings.Join(scenario.RFC8867Sections, ", "))
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Scenario{}, fmt.Errorf("--scenario %q: %w", s, err)
	}
	sc := Scenario{Spec: abs}
	c, err := sc.Case()
	if err != nil {
		return Scenario{}, fmt.Errorf("--scenario %q: %w", s, err)
	}
	sc.Name = c.Name
	return sc, nil
}

// Case loads the scenario's BWE case (uplink: the client's gcc is the controller under test).
func (s Scenario) Case() (scenario.BWECase, error) {
	if sec, ok := strings.CutPrefix(s.Spec, RFC8867Prefix); ok && !strings.ContainsAny(s.Spec, `/\`) {
		return scenario.RFC8867(sec, scenario.BWEUplink)
	}
	sc, err := netem.LoadScenario(s.Spec)
	if err != nil {
		return scenario.BWECase{}, err
	}
	if sc.Duration <= 0 {
		sc.Duration = DefaultFileDuration
	}
	c := scenario.BWECase{Name: sc.Name, Scenario: sc, Direction: scenario.BWEUplink}
	if _, err := c.Config(); err != nil {
		return scenario.BWECase{}, err
	}
	return c, nil
}
