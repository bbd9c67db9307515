package reports

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runOf(values map[string]float64, bounds map[string]float64, state string) *Run {
	return &Run{Schema: Schema,
		Specs:        []Spec{{Suite: "ARQ", Name: "repairs", State: state}},
		Measurements: []Measurement{{Suite: "arq", Case: "bernoulli 5%", Backend: "embedded", Values: values, Bounds: bounds}}}
}

func defaultThresholds(t *testing.T) *Thresholds {
	t.Helper()
	th, err := LoadThresholds("thresholds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func TestCompareWithItselfFindsNothing(t *testing.T) {
	r := runOf(map[string]float64{"audio_effective_loss": 0.002, "setup_ms": 120, "wall_s": 3}, map[string]float64{"audio_effective_loss": 0.01}, "passed")
	d := Compare(r.Baseline("a"), r.Baseline("b"), defaultThresholds(t))
	if len(d.Changes) != 0 || d.Regressions() != 0 || d.Compared != 2 {
		t.Errorf("self diff: %+v", d)
	}
}

func TestCompareNamesTheRegression(t *testing.T) {
	old := runOf(map[string]float64{"audio_effective_loss": 0.002, "setup_ms": 120, "utilization_min": 0.6, "wall_s": 3},
		map[string]float64{"audio_effective_loss": 0.01, "utilization_min": 0.7}, "passed")
	cur := runOf(map[string]float64{"audio_effective_loss": 0.05, "setup_ms": 125, "utilization_min": 0.95, "wall_s": 30},
		map[string]float64{"audio_effective_loss": 0.01, "utilization_min": 0.7}, "failed")
	d := Compare(old.Baseline("v1"), cur.Baseline("v2"), defaultThresholds(t))
	if d.Regressions() != 2 {
		t.Fatalf("%d regressions, want the loss and the spec: %+v", d.Regressions(), d.Changes)
	}
	c := d.Changes[0]
	if c.Key != "arq/bernoulli 5%/embedded/audio_effective_loss" || !c.Regressed || c.Note != "past its bound 0.01" {
		t.Errorf("first change %+v", c)
	}
	var improved bool
	for _, c := range d.Changes {
		if strings.HasSuffix(c.Key, "utilization_min") && !c.Regressed {
			improved = true
		}
		if strings.HasSuffix(c.Key, "setup_ms") || strings.HasSuffix(c.Key, "wall_s") {
			t.Errorf("%s reported: within its threshold or ignored", c.Key)
		}
	}
	if !improved {
		t.Errorf("utilization's rise not listed as an improvement: %+v", d.Changes)
	}
	var b bytes.Buffer
	if err := d.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 regressions", "REGRESSED arq/bernoulli 5%/embedded/audio_effective_loss: 0.002 -> 0.05", "spec: ARQ: repairs (passed, now failed)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	var h bytes.Buffer
	if err := d.HTML().WriteHTML(&h); err != nil || !strings.Contains(h.String(), "REGRESSED") {
		t.Errorf("html: %v", err)
	}
}

func TestBaselineFiles(t *testing.T) {
	dir := t.TempDir()
	r := runOf(map[string]float64{"x_ms": 1}, nil, "passed")
	p, err := WriteBaseline(r.Baseline("v1.0.0"), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteBaseline(r.Baseline("v1.0.0"), dir, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("overwrite: %v", err)
	}
	if _, err := WriteBaseline(r.Baseline("../x"), dir, false); err == nil {
		t.Error("a release with a path in it was accepted")
	}
	b, err := LoadBaseline("v1.0.0", dir)
	if err != nil || b.Values["arq/bernoulli 5%/embedded/x_ms"] != 1 {
		t.Fatalf("load by release: %v %+v", err, b)
	}
	if b2, err := LoadBaseline(p, "nowhere"); err != nil || b2.Release != "v1.0.0" {
		t.Errorf("load by path: %v", err)
	}
	// A run directory works too.
	runDir := filepath.Join(dir, "latest")
	_ = os.MkdirAll(runDir, 0o755)
	if err := r.WriteJSON(filepath.Join(runDir, "measurements.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBaseline(runDir, dir); err != nil {
		t.Error(err)
	}
	if _, err := LoadBaseline("v9", dir); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("unknown: %v", err)
	}
}

func TestThresholdsFileErrors(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"default: {relative: 0.1}\nrules:\n  - {match: '*_ms', better: sideways}\n": `better "sideways"`,
		"default: {relativ: 0.1}\n":                 "relativ",
		"rules:\n  - {relative: 0.1}\n":             "match is empty",
		"rules:\n  - {match: '[', relative: 0.1}\n": "bad glob",
	} {
		p := filepath.Join(dir, "t.yaml")
		_ = os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadThresholds(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
