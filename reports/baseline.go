package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	pathpkg "path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// BaselineSchema names the version of a Baseline document.
const BaselineSchema = "siprtc-baseline/1"

// Baseline is a run's summary kept for a release: every measured value by key, the specs'
// states, and where it came from. reports/baselines/RELEASE.json holds one per release.
type Baseline struct {
	Schema  string `json:"schema"`
	Release string `json:"release"`
	Env     Env    `json:"env"`
	// Values are keyed by MetricKey: suite/case/backend/value.
	Values map[string]float64 `json:"values"`
	// Bounds are the bounds the values were asserted against, by the same keys.
	Bounds map[string]float64 `json:"bounds,omitempty"`
	// States are the specs' outcomes by spec name.
	States map[string]string `json:"states"`
}

// MetricKey names one value of one measurement across runs.
func MetricKey(m Measurement, value string) string {
	return m.Suite + "/" + m.Case + "/" + m.Backend + "/" + value
}

// Baseline summarizes the run for release.
func (r *Run) Baseline(release string) *Baseline {
	b := &Baseline{Schema: BaselineSchema, Release: release, Env: r.Env,
		Values: map[string]float64{}, Bounds: map[string]float64{}, States: map[string]string{}}
	for _, m := range r.Measurements {
		for k, v := range m.Values {
			b.Values[MetricKey(m, k)] = v
		}
		for k, v := range m.Bounds {
			b.Bounds[MetricKey(m, k)] = v
		}
	}
	for _, s := range r.Specs {
		b.States[s.Suite+": "+s.Name] = s.State
	}
	return b
}

// WriteBaseline stores b as DIR/RELEASE.json; it refuses to overwrite an existing release
// unless force is set.
func WriteBaseline(b *Baseline, dir string, force bool) (string, error) {
	if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`).MatchString(b.Release) {
		return "", fmt.Errorf("reports: release %q: want a name such as v1.2.3 (letters, digits, . _ + -)", b.Release)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, b.Release+".json")
	if _, err := os.Stat(p); err == nil && !force {
		return "", fmt.Errorf("reports: %s exists: a release's baseline is kept as it was (use --force to replace it)", p)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, append(data, '\n'), 0o644)
}

// LoadBaseline reads what names a run's figures: a baseline file, a run document
// (measurements.json), a run's report directory, or a release stored in baselineDir.
func LoadBaseline(name, baselineDir string) (*Baseline, error) {
	candidates := []string{name, filepath.Join(name, "measurements.json"), filepath.Join(baselineDir, name+".json")}
	for _, p := range candidates {
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Schema string `json:"schema"`
		}
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("reports: %s: %w", p, err)
		}
		switch probe.Schema {
		case BaselineSchema:
			var b Baseline
			if err := json.Unmarshal(data, &b); err != nil {
				return nil, fmt.Errorf("reports: %s: %w", p, err)
			}
			return &b, nil
		case Schema:
			r, err := ReadRun(p)
			if err != nil {
				return nil, err
			}
			return r.Baseline(filepath.Base(filepath.Dir(p))), nil
		default:
			return nil, fmt.Errorf("reports: %s has schema %q: want %s or %s", p, probe.Schema, BaselineSchema, Schema)
		}
	}
	return nil, fmt.Errorf("reports: %q is neither a baseline file, a run's measurements.json or report directory, nor a release in %s", name, baselineDir)
}

// Thresholds say how far each value may move before a diff reports it, and which way is
// worse. reports/thresholds.yaml is the file users edit.
type Thresholds struct {
	Default Threshold   `yaml:"default"`
	Rules   []Threshold `yaml:"rules"`
}

// Threshold is one rule: Match is a glob on the value's name (setup_ms, audio_effective_loss)
// or, when it holds a "/", on the whole key suite/case/backend/value. A move counts when it
// exceeds both Relative (a fraction of the old value) and Absolute. Better is "lower",
// "higher" or "either" (any move beyond the threshold is a regression); Ignore skips the value.
type Threshold struct {
	Match    string  `yaml:"match"`
	Relative float64 `yaml:"relative"`
	Absolute float64 `yaml:"absolute"`
	Better   string  `yaml:"better"`
	Ignore   bool    `yaml:"ignore"`
}

// LoadThresholds reads a thresholds file; unknown keys and bad values are errors naming them.
func LoadThresholds(p string) (*Thresholds, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var t Thresholds
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("reports: %s: %w", p, err)
	}
	for i, r := range append([]Threshold{t.Default}, t.Rules...) {
		where := "default"
		if i > 0 {
			where = fmt.Sprintf("rules[%d] (match %q)", i-1, r.Match)
			if r.Match == "" {
				return nil, fmt.Errorf("reports: %s: %s: match is empty", p, where)
			}
			if _, err := pathpkg.Match(r.Match, ""); err != nil {
				return nil, fmt.Errorf("reports: %s: %s: bad glob: %w", p, where, err)
			}
		}
		switch r.Better {
		case "", "lower", "higher", "either":
		default:
			return nil, fmt.Errorf("reports: %s: %s: better %q: want lower, higher or either", p, where, r.Better)
		}
		if r.Relative < 0 || r.Absolute < 0 {
			return nil, fmt.Errorf("reports: %s: %s: relative and absolute must be >= 0", p, where)
		}
	}
	return &t, nil
}

// rule is the threshold for a key: the last rule that matches, else the default; a value with
// an asserted bound and no explicit direction is worse the closer it gets to (or past) its bound.
func (t *Thresholds) rule(key string, hasBound bool) Threshold {
	name := key[strings.LastIndex(key, "/")+1:]
	r := t.Default
	for _, rr := range t.Rules {
		target := name
		if strings.Contains(rr.Match, "/") {
			target = key
		}
		if ok, _ := pathpkg.Match(rr.Match, target); ok {
			r = rr
		}
	}
	if r.Better == "" {
		switch {
		case hasBound && strings.HasSuffix(name, "_min"):
			r.Better = "higher"
		case hasBound:
			r.Better = "lower"
		default:
			r.Better = "either"
		}
	}
	return r
}

// Change is one value that moved beyond its threshold, or a spec whose state changed.
type Change struct {
	Key       string  `json:"key"`
	Old       float64 `json:"old"`
	New       float64 `json:"new"`
	Delta     float64 `json:"delta"`    // New - Old
	Relative  float64 `json:"relative"` // Delta / |Old| (Inf when Old is 0)
	Better    string  `json:"better"`
	Regressed bool    `json:"regressed"`
	Note      string  `json:"note,omitempty"`
}

// Diff is the comparison of two runs.
type Diff struct {
	Old, New string
	Changes  []Change // beyond threshold, regressions first
	Missing  []string // keys in Old but not in New
	Added    []string // keys in New but not in Old
	Compared int      // values compared
}

// Regressions counts the regressions.
func (d *Diff) Regressions() int {
	n := 0
	for _, c := range d.Changes {
		if c.Regressed {
			n++
		}
	}
	return n
}

// Compare lists every value that moved beyond its threshold from old to new, and every spec
// that passed in old and fails in new (a regression).
func Compare(old, new *Baseline, t *Thresholds) *Diff {
	if t == nil {
		t = &Thresholds{}
	}
	d := &Diff{Old: old.Release, New: new.Release}
	for _, k := range slices.Sorted(maps.Keys(old.Values)) {
		ov := old.Values[k]
		nv, ok := new.Values[k]
		if !ok {
			d.Missing = append(d.Missing, k)
			continue
		}
		_, hasBound := new.Bounds[k]
		r := t.rule(k, hasBound)
		if r.Ignore {
			continue
		}
		d.Compared++
		delta := nv - ov
		rel := math.Inf(1)
		if ov != 0 {
			rel = delta / math.Abs(ov)
		} else if delta == 0 {
			rel = 0
		}
		if math.Abs(delta) <= r.Absolute || math.Abs(rel) <= r.Relative {
			continue
		}
		worse := r.Better == "either" || (r.Better == "lower" && delta > 0) || (r.Better == "higher" && delta < 0)
		c := Change{Key: k, Old: ov, New: nv, Delta: delta, Relative: rel, Better: r.Better, Regressed: worse}
		if b, ok := new.Bounds[k]; ok && Exceeds(k[strings.LastIndex(k, "/")+1:], nv, b) {
			c.Note = fmt.Sprintf("past its bound %s", formatValue(b))
		}
		d.Changes = append(d.Changes, c)
	}
	for _, k := range slices.Sorted(maps.Keys(new.Values)) {
		if _, ok := old.Values[k]; !ok {
			d.Added = append(d.Added, k)
		}
	}
	for _, spec := range slices.Sorted(maps.Keys(old.States)) {
		if ns, ok := new.States[spec]; ok && old.States[spec] == "passed" && ns != "passed" && ns != "skipped" {
			d.Changes = append(d.Changes, Change{Key: "spec: " + spec, Regressed: true, Note: "passed, now " + ns})
		}
	}
	slices.SortStableFunc(d.Changes, func(a, b Change) int {
		switch {
		case a.Regressed == b.Regressed:
			return 0
		case a.Regressed:
			return -1
		default:
			return 1
		}
	})
	return d
}

// ErrRegression is what a diff with regressions returns from the command.
var ErrRegression = errors.New("reports: regression")

// WriteText prints the diff for people.
func (d *Diff) WriteText(out io.Writer) error {
	w := &errWriter{w: out}
	w.printf("siprtc report diff %s -> %s: %d values compared, %d beyond their thresholds, %d regressions\n",
		d.Old, d.New, d.Compared, len(d.Changes), d.Regressions())
	for _, c := range d.Changes {
		mark := "improved"
		if c.Regressed {
			mark = "REGRESSED"
		}
		if strings.HasPrefix(c.Key, "spec: ") {
			w.printf("  %-9s %s (%s)\n", mark, c.Key, c.Note)
			continue
		}
		note := ""
		if c.Note != "" {
			note = ", " + c.Note
		}
		w.printf("  %-9s %s: %s -> %s (%s, %s is better%s)\n", mark, c.Key, formatValue(c.Old), formatValue(c.New), relative(c), c.Better, note)
	}
	if len(d.Missing) > 0 {
		w.printf("  %d values of %s are not in %s (first: %s)\n", len(d.Missing), d.Old, d.New, d.Missing[0])
	}
	if len(d.Added) > 0 {
		w.printf("  %d values are new in %s (first: %s)\n", len(d.Added), d.New, d.Added[0])
	}
	return w.err
}

// HTML renders the diff as a page.
func (d *Diff) HTML() Page {
	verdict := "NO-REGRESSION"
	if d.Regressions() > 0 {
		verdict = "REGRESSED"
	}
	t := &Table{Header: []string{"", "metric", d.Old, d.New, "change", "better", "note"}}
	for _, c := range d.Changes {
		mark := "improved"
		if c.Regressed {
			mark = "regressed"
		}
		t.Rows = append(t.Rows, []Cell{{Text: mark, Bad: c.Regressed}, {Text: c.Key}, {Text: formatValue(c.Old)}, {Text: formatValue(c.New)},
			{Text: relative(c)}, {Text: c.Better}, {Text: c.Note}})
	}
	p := Page{Title: fmt.Sprintf("siprtc regression report: %s -> %s", d.Old, d.New), Verdict: verdict,
		Env: [][2]string{{"compared", fmt.Sprint(d.Compared)}, {"beyond threshold", fmt.Sprint(len(d.Changes))},
			{"regressions", fmt.Sprint(d.Regressions())}, {"missing in " + d.New, fmt.Sprint(len(d.Missing))},
			{"new in " + d.New, fmt.Sprint(len(d.Added))}, {"generated", time.Now().UTC().Format(time.RFC3339)}}}
	p.Sections = append(p.Sections, Section{Title: "Values beyond their thresholds", Table: t})
	if len(d.Missing) > 0 {
		mt := &Table{Header: []string{"missing in " + d.New}}
		for _, k := range d.Missing {
			mt.Rows = append(mt.Rows, []Cell{{Text: k}})
		}
		p.Sections = append(p.Sections, Section{Title: "Missing values", Table: mt})
	}
	return p
}

// relative formats a change's relative size ("+12.5%", or "from 0").
func relative(c Change) string {
	if math.IsInf(c.Relative, 0) {
		return "from 0"
	}
	return fmt.Sprintf("%+.1f%%", 100*c.Relative)
}
