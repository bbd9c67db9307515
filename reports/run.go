// Package reports turns lab runs into what people read: the run's measurements as a versioned
// JSON document (reports/latest/measurements.json) and a text summary (summary.txt), from the
// Ginkgo JSON report the suites write. docs/report-schema.md documents the JSON.
package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/siprtc/siprtc/internal/version"
)

// Schema names the version of the Run document. A change that removes or renames a field
// bumps the number; added fields do not.
const Schema = "siprtc-lab-run/1"

// MeasurementEntry is the name of the Ginkgo report entries that carry a Measurement.
const MeasurementEntry = "measurement"

// Measurement is what one spec measured: flat named values (the name carries the unit, as
// setup_ms or residual_loss) with the bound each was asserted against, plus the full detail (a
// lab/metrics result) for charts.
type Measurement struct {
	Suite   string             `json:"suite"`            // setup, arq, fec, bwe, ...
	Case    string             `json:"case"`             // the spec's case, as "outbound rtt=100ms loss=2%"
	Backend string             `json:"backend"`          // the PBX backend: embedded, asterisk, freeswitch
	Params  map[string]string  `json:"params,omitempty"` // the case's parameters
	Values  map[string]float64 `json:"values"`
	// Bounds are the limits Values were asserted against, by value name: upper bounds, unless
	// the name ends in "_min" (then a lower bound).
	Bounds map[string]float64 `json:"bounds,omitempty"`
	Detail any                `json:"detail,omitempty"`
	// Spec and State are filled in from the report: the spec's full text and how it ended.
	Spec  string `json:"spec,omitempty"`
	State string `json:"state,omitempty"`
}

// String is the one-line form Ginkgo prints with the spec: every value, and its bound.
func (m Measurement) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s:", m.Suite, m.Case)
	for _, k := range slices.Sorted(maps.Keys(m.Values)) {
		fmt.Fprintf(&b, " %s=%.4g", k, m.Values[k])
		if bound, ok := m.Bounds[k]; ok {
			fmt.Fprintf(&b, " (bound %.4g)", bound)
		}
	}
	return b.String()
}

// Run is one lab run: where and what ran, how each suite and spec ended, and every measurement.
type Run struct {
	Schema       string        `json:"schema"`
	Env          Env           `json:"env"`
	Suites       []Suite       `json:"suites"`
	Specs        []Spec        `json:"specs"`
	Measurements []Measurement `json:"measurements"`
}

// Env is the run's environment.
type Env struct {
	Version     string    `json:"version"`
	GoVersion   string    `json:"go"`
	Platform    string    `json:"platform"`
	Started     time.Time `json:"started"`
	WallSeconds float64   `json:"wall_seconds"`
	Backends    []string  `json:"backends"`
}

// Suite is one Ginkgo suite's outcome.
type Suite struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	Labels      []string `json:"labels,omitempty"`
	Passed      bool     `json:"passed"`
	Specs       int      `json:"specs"`
	Failed      int      `json:"failed"`
	Skipped     int      `json:"skipped"`
	WallSeconds float64  `json:"wall_seconds"`
}

// Spec is one spec's outcome.
type Spec struct {
	Suite       string   `json:"suite"`
	Name        string   `json:"name"`
	Labels      []string `json:"labels,omitempty"`
	State       string   `json:"state"`
	WallSeconds float64  `json:"wall_seconds"`
	Failure     string   `json:"failure,omitempty"`
	Location    string   `json:"location,omitempty"`
}

// FromGinkgo reads the JSON report Ginkgo wrote (--json-report) and builds the Run.
func FromGinkgo(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reports: %w (run the suites first: make lab)", err)
	}
	var suites []types.Report
	if err := json.Unmarshal(data, &suites); err != nil {
		return nil, fmt.Errorf("reports: %s is not a Ginkgo JSON report: %w", path, err)
	}
	return build(suites)
}

func build(suites []types.Report) (*Run, error) {
	if len(suites) == 0 {
		return nil, errors.New("reports: the Ginkgo report holds no suite")
	}
	r := &Run{Schema: Schema, Env: Env{Version: version.String(), GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}}
	var end time.Time
	backends := map[string]bool{}
	for _, s := range suites {
		if r.Env.Started.IsZero() || s.StartTime.Before(r.Env.Started) {
			r.Env.Started = s.StartTime
		}
		if s.EndTime.After(end) {
			end = s.EndTime
		}
		suite := Suite{Name: s.SuiteDescription, Path: s.SuitePath, Labels: s.SuiteLabels,
			Passed: s.SuiteSucceeded, WallSeconds: s.RunTime.Seconds()}
		for _, sp := range s.SpecReports {
			if sp.LeafNodeType != types.NodeTypeIt {
				continue // suite set-up and tear-down nodes
			}
			suite.Specs++
			spec := Spec{Suite: s.SuiteDescription, Name: sp.FullText(), Labels: sp.Labels(),
				State: sp.State.String(), WallSeconds: sp.RunTime.Seconds()}
			switch {
			case sp.State.Is(types.SpecStateFailureStates):
				suite.Failed++
				spec.Failure = sp.Failure.Message
				if sp.Failure.Location.FileName != "" {
					spec.Location = sp.Failure.Location.String()
				}
			case sp.State.Is(types.SpecStateSkipped | types.SpecStatePending):
				suite.Skipped++
				spec.Failure = sp.Failure.Message // the skip's reason
			}
			r.Specs = append(r.Specs, spec)
			for _, e := range sp.ReportEntries {
				if e.Name != MeasurementEntry {
					continue
				}
				var m Measurement
				if err := json.Unmarshal([]byte(e.Value.AsJSON), &m); err != nil {
					return nil, fmt.Errorf("reports: spec %q: measurement entry: %w", spec.Name, err)
				}
				m.Spec, m.State = spec.Name, spec.State
				backends[m.Backend] = true
				r.Measurements = append(r.Measurements, m)
			}
		}
		r.Suites = append(r.Suites, suite)
	}
	r.Env.WallSeconds = end.Sub(r.Env.Started).Seconds()
	r.Env.Backends = slices.Sorted(maps.Keys(backends))
	return r, nil
}

// Passed says whether every suite passed.
func (r *Run) Passed() bool {
	for _, s := range r.Suites {
		if !s.Passed {
			return false
		}
	}
	return true
}

// WriteJSON writes the run as indented JSON.
func (r *Run) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadRun reads a Run written by WriteJSON, checking its schema.
func ReadRun(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reports: %s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("reports: %s has schema %q, this siprtc reads %q", path, r.Schema, Schema)
	}
	return &r, nil
}
