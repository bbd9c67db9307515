package reports

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// ginkgoReport is a two-suite Ginkgo report as the CLI writes it: a passing spec with a
// measurement, a failing one, a skipped one, and a set-up node that is not a spec.
func ginkgoReport(t *testing.T) string {
	t.Helper()
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := Measurement{Suite: "arq", Case: "bernoulli 5% rtt=50ms", Backend: "embedded",
		Values: map[string]float64{"residual_loss": 0.002, "rtx_overhead": 0.06},
		Bounds: map[string]float64{"residual_loss": 0.001}, Detail: map[string]int{"packets": 1500}}
	asJSON, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	entry := types.ReportEntry{Name: MeasurementEntry, Value: types.WrapEntryValue(m)}
	entry.Value.AsJSON = string(asJSON)
	suites := []types.Report{
		{SuiteDescription: "ARQ", SuitePath: "/x/suites/arq", SuiteSucceeded: false, StartTime: start,
			EndTime: start.Add(30 * time.Second), RunTime: 30 * time.Second,
			SpecReports: types.SpecReports{
				{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed},
				{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"ARQ"}, LeafNodeText: "repairs 5%",
					State: types.SpecStateFailed, RunTime: time.Second, ReportEntries: types.ReportEntries{entry},
					Failure: types.Failure{Message: "residual loss 0.002 above 0.001"}},
				{LeafNodeType: types.NodeTypeIt, LeafNodeText: "skips", State: types.SpecStateSkipped,
					Failure: types.Failure{Message: "no docker"}},
			}},
		{SuiteDescription: "Setup", SuiteSucceeded: true, StartTime: start.Add(time.Second),
			EndTime: start.Add(50 * time.Second), RunTime: 49 * time.Second,
			SpecReports: types.SpecReports{{LeafNodeType: types.NodeTypeIt, LeafNodeText: "sets up", State: types.SpecStatePassed}}},
	}
	data, err := json.Marshal(suites)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "suites.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFromGinkgo(t *testing.T) {
	r, err := FromGinkgo(ginkgoReport(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || len(r.Suites) != 2 || len(r.Specs) != 3 || len(r.Measurements) != 1 {
		t.Fatalf("passed %v, %d suites, %d specs, %d measurements", r.Passed(), len(r.Suites), len(r.Specs), len(r.Measurements))
	}
	if s := r.Suites[0]; s.Specs != 2 || s.Failed != 1 || s.Skipped != 1 {
		t.Errorf("suite %+v", s)
	}
	m := r.Measurements[0]
	if m.Spec != "ARQ repairs 5%" || m.State != "failed" || m.Values["residual_loss"] != 0.002 {
		t.Errorf("measurement %+v", m)
	}
	if r.Env.WallSeconds != 50 || len(r.Env.Backends) != 1 || r.Env.Backends[0] != "embedded" {
		t.Errorf("env %+v", r.Env)
	}

	// The JSON round-trips, with its schema checked.
	path := filepath.Join(t.TempDir(), "measurements.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadRun(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Measurements[0].Bounds["residual_loss"] != 0.001 || back.Specs[0].Failure != "residual loss 0.002 above 0.001" || back.Specs[1].Failure != "no docker" {
		t.Errorf("round trip: %+v", back)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(data, []byte(Schema), []byte("siprtc-lab-run/0"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRun(path); err == nil || !strings.Contains(err.Error(), "siprtc-lab-run/0") {
		t.Errorf("old schema read: %v", err)
	}
}

func TestWriteText(t *testing.T) {
	r, err := FromGinkgo(ginkgoReport(t))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !lineWith(out, "residual_loss", "0.002", "0.001", "<< past its bound") || !lineWith(out, "rtx_overhead", "0.06") {
		t.Errorf("values not tabulated with their bounds:\n%s", out)
	}
	for _, want := range []string{
		"siprtc lab run: FAILED",
		"2 suites, 3 specs: 1 passed, 1 failed, 1 skipped; 1 measurements",
		"== arq ==",
		"== failures ==",
		"ARQ: ARQ repairs 5% [failed]\n  residual loss 0.002 above 0.001",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestFromGinkgoErrors(t *testing.T) {
	if _, err := FromGinkgo(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "make lab") {
		t.Errorf("missing report: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"not": "a report"}`), 0o644)
	if _, err := FromGinkgo(bad); err == nil || !strings.Contains(err.Error(), "not a Ginkgo JSON report") {
		t.Errorf("bad report: %v", err)
	}
}

func TestExceeds(t *testing.T) {
	if !Exceeds("loss", 0.2, 0.1) || Exceeds("loss", 0.1, 0.1) || !Exceeds("utilization_min", 0.5, 0.7) || Exceeds("utilization_min", 0.8, 0.7) {
		t.Error("Exceeds")
	}
}

// lineWith says whether one line of s holds every part, in order.
func lineWith(s string, parts ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}
