package lab

import (
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/pbx"

	"github.com/siprtc/siprtc/reports"
)

// MeasurementEntry is the name of the Ginkgo report entries that carry measurements: `make
// lab` collects every entry of that name from the suites' JSON report into
// reports/latest/measurements.json (package reports).
const MeasurementEntry = reports.MeasurementEntry

// Measurement is what one spec measured: flat named values (the name carries the unit, as
// setup_ms or residual_loss) with the bound each was asserted against, plus the full detail (a
// lab/metrics result) for charts.
type Measurement = reports.Measurement

// Record adds m to the running spec's report: printed with the spec (its String), and in the
// JSON report that make lab turns into reports/latest. A measurement without a Backend is the
// embedded PBX's; one without an "image" param gets its backend's (BackendParams).
func Record(m Measurement) {
	if m.Backend == "" {
		m.Backend = string(pbx.BackendEmbedded)
	}
	if m.Params["image"] == "" {
		m.Params = BackendParams(pbx.Backend(m.Backend), m.Params)
	}
	ginkgo.AddReportEntry(MeasurementEntry, m)
}

// ExpectWithinBounds asserts, with Gomega, every value of m that has a bound: at most its
// bound, or at least it for a name ending in "_min" (reports.Exceeds, the rule the reports
// mark values by). The failure names the value and prints the whole measurement.
func ExpectWithinBounds(m Measurement) {
	for k, bound := range m.Bounds {
		v := m.Values[k]
		gomega.ExpectWithOffset(1, reports.Exceeds(k, v, bound)).To(gomega.BeFalse(),
			"%s = %.6g is past its bound %.6g\n%s", k, v, bound, m)
	}
}
