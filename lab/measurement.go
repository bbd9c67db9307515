package lab

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2"
)

// MeasurementEntry is the name of the Ginkgo report entries that carry measurements: `make
// lab` collects every entry of that name from the suites' JSON report into
// reports/latest/measurements.json.
const MeasurementEntry = "measurement"

// Measurement is what one spec measured, in the form reports read: flat named values (the name
// carries the unit, as setup_ms or residual_loss) with the bound each was asserted against, plus
// the full detail (a lab/metrics result) for charts.
type Measurement struct {
	Suite   string             `json:"suite"`            // setup, arq, fec, bwe, ...
	Case    string             `json:"case"`             // the spec's case, as "outbound rtt=100ms loss=2%"
	Backend string             `json:"backend"`          // the PBX backend: embedded, asterisk, freeswitch
	Params  map[string]string  `json:"params,omitempty"` // the case's parameters
	Values  map[string]float64 `json:"values"`
	// Bounds are the limits Values were asserted against, by value name (upper bounds unless
	// the name ends in "_min").
	Bounds map[string]float64 `json:"bounds,omitempty"`
	Detail any                `json:"detail,omitempty"`
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

// Record adds m to the running spec's report: printed with the spec, and in the JSON report
// that make lab turns into reports/latest.
func Record(m Measurement) {
	if m.Backend == "" {
		m.Backend = "embedded"
	}
	ginkgo.AddReportEntry(MeasurementEntry, m)
}
