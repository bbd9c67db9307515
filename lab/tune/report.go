package tune

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/siprtc/siprtc/lab/metrics"
	"github.com/siprtc/siprtc/reports"
)

// Schema names the JSON document's format.
const Schema = "siprtc-tune/1"

// Document is a sweep's JSON: what ran, how it was ranked, the ranking and every run.
type Document struct {
	Schema      string    `json:"schema"`
	Version     string    `json:"version,omitempty"`
	GoVersion   string    `json:"go"`
	Started     time.Time `json:"started"`
	WallSeconds float64   `json:"wall_s"`
	Parallel    int       `json:"parallel"`
	Job         Job       `json:"job"`
	Ranking     Ranking   `json:"ranking"`
	Ranked      []Ranked  `json:"ranked"`
	// Runs are in Job.Runs order; each keeps its series (SeriesStep).
	Runs []RunResult `json:"runs"`
}

// NewDocument puts a sweep's pieces together (runs sorted by ID).
func NewDocument(j Job, r Ranking, ranked []Ranked, runs []RunResult, started time.Time, wall time.Duration, parallel int, version string) Document {
	runs = slices.Clone(runs)
	slices.SortFunc(runs, func(a, b RunResult) int { return a.Spec.ID - b.Spec.ID })
	if r.Resolution <= 0 {
		if def, ok := objectiveOf(r.Objective); ok {
			r.Resolution = def.resolution
		}
	}
	return Document{Schema: Schema, Version: version, GoVersion: runtime.Version(), Started: started, WallSeconds: wall.Seconds(),
		Parallel: parallel, Job: j, Ranking: r, Ranked: ranked, Runs: runs}
}

// WriteJSONFile writes the document, indented.
func (d Document) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadDocument reads a document WriteJSONFile wrote.
func ReadDocument(path string) (Document, error) {
	var d Document
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	if d.Schema != Schema {
		return d, fmt.Errorf("%s: schema %q, want %q", path, d.Schema, Schema)
	}
	return d, nil
}

// Page is the sweep's HTML report: what ran, the ranking table, and per scenario the target,
// delivered rate and queue delay over time with one line per configuration (the mean over its
// repetitions; the legend numbers them by rank) and the capacity.
func (d Document) Page() reports.Page {
	def, _ := objectiveOf(d.Ranking.Objective)
	status := ""
	for _, x := range d.Ranked {
		if x.Failed {
			status = "FAILED"
		}
	}
	var scen []string
	for _, s := range d.Job.Scenarios {
		scen = append(scen, s.Name)
	}
	var ps []string
	for _, p := range d.Job.Params {
		ps = append(ps, p.Name+"="+strings.Join(p.Values, ","))
	}
	if len(ps) == 0 {
		ps = []string{"none (the defaults)"}
	}
	seed := "each scenario's own; repetition r adds r"
	if d.Job.Seed != 0 {
		seed = fmt.Sprintf("%d; repetition r adds r", d.Job.Seed)
	}
	dur := "each scenario's"
	if d.Job.Duration > 0 {
		dur = d.Job.Duration.String()
	}
	p := reports.Page{Title: "siprtc tune: " + strings.Join(scen, ", "), Verdict: status, Env: [][2]string{
		{"version", d.Version}, {"go", d.GoVersion}, {"started", d.Started.UTC().Format(time.RFC3339)},
		{"wall", fmt.Sprintf("%.1f s (%d runs, %d in parallel)", d.WallSeconds, len(d.Runs), d.Parallel)},
		{"scenarios", strings.Join(scen, ", ")}, {"parameters", strings.Join(ps, "; ")},
		{"grid", fmt.Sprintf("%d configurations x %d scenarios x %d repetitions", len(d.Job.Configs), len(d.Job.Scenarios), max(d.Job.Repeat, 1))},
		{"seed", seed}, {"run length", dur},
		{"objective", fmt.Sprintf("%s: %s, rounded to %g%s, ties by grid order", def.name, def.help, d.Ranking.Resolution, def.unit)},
		{"constraints", d.Ranking.Constraints.String() + " (on every scenario; violators rank after the rest, failed configurations last)"},
	}}

	t := &reports.Table{Header: []string{"rank"}}
	for _, q := range d.Job.Params {
		t.Header = append(t.Header, q.Name)
	}
	t.Header = append(t.Header, string(def.name)+" (ranked)", "mean", "range over runs")
	for _, o := range objectives {
		if o.name != def.name {
			t.Header = append(t.Header, string(o.name))
		}
	}
	t.Header = append(t.Header, "runs", "verdict")
	for _, x := range d.Ranked {
		row := []reports.Cell{{Text: fmt.Sprint(x.Rank)}}
		for _, q := range d.Job.Params {
			row = append(row, reports.Cell{Text: x.Config.Value(q.Name)})
		}
		row = append(row, reports.Cell{Text: def.formatRounded(x.Rounded, d.Ranking.Resolution)}, reports.Cell{Text: def.format(x.Objective)}, reports.Cell{Text: formatRange(def, x.Mean)})
		for _, o := range objectives {
			if o.name != def.name {
				row = append(row, reports.Cell{Text: o.format(o.value(x.Mean))})
			}
		}
		row = append(row, reports.Cell{Text: fmt.Sprintf("%d", x.Mean.Runs)}, reports.Cell{Text: verdict(x), Bad: !x.Meets})
		t.Rows = append(t.Rows, row)
	}
	p.Sections = append(p.Sections, reports.Section{Title: "Ranking", Table: t,
		Intro: fmt.Sprintf("Configurations by %s (the mean over scenarios of the mean over repetitions); range is the objective's lowest and highest single run. "+
			"Utilization is delivered/capacity over the whole run; queue-delay-p95 the p95 of the bottleneck's 100 ms queue-delay samples; loss the bottleneck's drops; "+
			"convergence the mean time to converge to each capacity (±25%%, held 3 s; never: the epoch's length).", def.name)})

	for si, sc := range d.Job.Scenarios {
		sec := reports.Section{Title: "Scenario " + sc.Name,
			Intro: "One line per configuration, the mean of its repetitions, numbered by rank; the dashed line is the bottleneck's capacity."}
		target := reports.Chart{Title: sc.Name + ": gcc target rate per configuration", XLabel: "s", YLabel: "Mbit/s"}
		delivered := reports.Chart{Title: sc.Name + ": delivered rate per configuration", XLabel: "s", YLabel: "Mbit/s"}
		queue := reports.Chart{Title: sc.Name + ": bottleneck queue delay per configuration", XLabel: "s", YLabel: "ms", Height: 220}
		var capacity []float64
		for i, x := range d.Ranked {
			s, ok := d.meanSeries(x.Config.Index, si)
			if !ok {
				continue
			}
			name := fmt.Sprintf("%d. %s", x.Rank, x.Config)
			color := palette[i%len(palette)]
			xs := make([]float64, s.Len())
			for k := range xs {
				xs[k] = (time.Duration(k) * s.Step).Seconds()
			}
			target.Series = append(target.Series, reports.Series{Name: name, X: xs, Y: scale(s.Target, 1e-6), Color: color})
			delivered.Series = append(delivered.Series, reports.Series{Name: name, X: xs, Y: scale(s.Delivered, 1e-6), Color: color})
			qd := make([]float64, s.Len())
			for k, v := range s.QueueDelay {
				qd[k] = ms(v)
			}
			queue.Series = append(queue.Series, reports.Series{Name: name, X: xs, Y: qd, Color: color})
			if capacity == nil {
				capacity = scale(s.Capacity, 1e-6)
				cx := slices.Clone(xs)
				target.Series = append([]reports.Series{{Name: "capacity", X: cx, Y: capacity, Dashed: true, Color: "#000000"}}, target.Series...)
				delivered.Series = append([]reports.Series{{Name: "capacity", X: cx, Y: capacity, Dashed: true, Color: "#000000"}}, delivered.Series...)
			}
		}
		if len(queue.Series) > 0 {
			sec.Charts = []reports.Chart{target, delivered, queue}
		} else {
			sec.Intro = "No run of this scenario succeeded: nothing to chart."
		}
		st := &reports.Table{Header: []string{"rank", "configuration", "runs", "failed", "utilization", "queue-delay-p95", "packet queue p95", "loss", "convergence", "unconverged epochs", "mean target", "mean delivered", "gateway NACKs"}}
		for _, x := range d.Ranked {
			s := x.Scenarios[si]
			st.Rows = append(st.Rows, []reports.Cell{{Text: fmt.Sprint(x.Rank)}, {Text: x.Config.String()}, {Text: fmt.Sprint(s.Runs)}, {Text: fmt.Sprint(s.Failed), Bad: s.Failed > 0},
				{Text: fmt.Sprintf("%.3f", s.Utilization)}, {Text: fmt.Sprintf("%.0fms", s.QueueP95Ms)}, {Text: fmt.Sprintf("%.0fms", s.PacketQueueP95Ms)},
				{Text: fmt.Sprintf("%.2f%%", 100*s.Loss)}, {Text: fmt.Sprintf("%.1fs", s.ConvergenceS)}, {Text: fmt.Sprintf("%.1f", s.Unconverged)},
				{Text: fmt.Sprintf("%.0fk", s.MeanTargetBps/1e3)}, {Text: fmt.Sprintf("%.0fk", s.MeanDelivered/1e3)}, {Text: fmt.Sprintf("%.0f", s.NACKsSent)}})
		}
		sec.Table = st
		p.Sections = append(p.Sections, sec)
	}

	var fails [][]reports.Cell
	for _, x := range d.Ranked {
		for _, e := range x.Errors {
			fails = append(fails, []reports.Cell{{Text: x.Config.String()}, {Text: e, Bad: true}})
		}
	}
	if len(fails) > 0 {
		p.Sections = append(p.Sections, reports.Section{Title: "Failures", Table: &reports.Table{Header: []string{"configuration", "error"}, Rows: fails}})
	}
	return p
}

// palette colours the configurations by rank (reports' own palette, without its grey: the
// capacity is black).
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
	"#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd", "#e6550d"}

func scale(v []float64, f float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * f
	}
	return out
}

// meanSeries is the element-wise mean of configuration c's successful runs on scenario s,
// over the length they share.
func (d Document) meanSeries(c, s int) (metrics.Series, bool) {
	var runs []metrics.Series
	for _, r := range d.Runs {
		if r.Spec.Config == c && r.Spec.Scenario == s && r.Err == "" && r.Series.Len() > 0 {
			runs = append(runs, r.Series)
		}
	}
	if len(runs) == 0 {
		return metrics.Series{}, false
	}
	n := runs[0].Len()
	for _, r := range runs {
		n = min(n, r.Len(), len(r.Delivered), len(r.Capacity), len(r.QueueDelay))
	}
	out := metrics.Series{Step: runs[0].Step, Target: make([]float64, n), Sending: make([]float64, n), Delivered: make([]float64, n),
		Capacity: make([]float64, n), QueueDelay: make([]time.Duration, n)}
	w := 1 / float64(len(runs))
	for _, r := range runs {
		for k := range n {
			out.Target[k] += w * r.Target[k]
			out.Sending[k] += w * r.Sending[k]
			out.Delivered[k] += w * r.Delivered[k]
			out.Capacity[k] += w * r.Capacity[k]
			out.QueueDelay[k] += time.Duration(w * float64(r.QueueDelay[k]))
		}
	}
	return out, true
}
