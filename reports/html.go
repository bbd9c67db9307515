package reports

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Page is a self-contained HTML report: inline CSS and SVG, no script, nothing fetched.
type Page struct {
	Title    string
	Verdict  string // "PASSED", "FAILED", "REGRESSED"... shown under the title; "" for none
	Env      [][2]string
	Sections []Section
}

// Section is one heading of a page with its text, table and charts.
type Section struct {
	Title  string
	Intro  string
	Table  *Table
	Charts []Chart
}

// Table is a plain table; a cell whose Bad is set is highlighted.
type Table struct {
	Header []string
	Rows   [][]Cell
}

// Cell is one table cell.
type Cell struct {
	Text string
	Bad  bool
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"svg": func(c Chart) template.HTML { return c.SVG() }}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{font-weight:600}.verdict.PASSED,.verdict.NO-REGRESSION{color:#1a7f37}.verdict.FAILED,.verdict.REGRESSED{color:#cf222e}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.bad{background:#ffebe9;color:#cf222e;font-weight:600}
table.env td:first-child{color:#666}
svg.chart{display:block;margin:8px 0 16px;background:#fff}
svg .plot{fill:none;stroke:#999}svg .grid{stroke:#eee}svg text{font:11px system-ui,sans-serif;fill:#444}
svg .title{font-weight:600;font-size:13px;fill:#222}svg .ytick{text-anchor:end}svg .xtick,svg .xlabel{text-anchor:middle}
svg .ylabel{text-anchor:middle}
</style></head><body>
<h1>{{.Title}}</h1>{{if .Verdict}}<p class="verdict {{.Verdict}}">{{.Verdict}}</p>{{end}}
{{if .Env}}<table class="env">{{range .Env}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
{{range .Sections}}<section><h2>{{.Title}}</h2>{{if .Intro}}<p>{{.Intro}}</p>{{end}}
{{range .Charts}}{{svg .}}{{end}}
{{with .Table}}<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>{{range .Rows}}<tr>{{range .}}<td{{if .Bad}} class="bad"{{end}}>{{.Text}}</td>{{end}}</tr>{{end}}</table>{{end}}
</section>{{end}}
</body></html>
`))

// WriteHTML renders the page.
func (p Page) WriteHTML(w io.Writer) error { return pageTemplate.Execute(w, p) }

// WriteHTMLFile renders the page into path.
func (p Page) WriteHTMLFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := p.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// HTML is the run's report: environment, a summary per suite, the charts people look at (BWE
// over time, loss after repair against its bound per mechanism, set-up time distribution per
// backend), every measurement with its bounds, and the failures.
func (r *Run) HTML() Page {
	verdict := "PASSED"
	if !r.Passed() {
		verdict = "FAILED"
	}
	p := Page{Title: "siprtc lab run", Verdict: verdict, Env: r.envRows()}
	sum := &Table{Header: []string{"suite", "specs", "failed", "skipped", "wall"}}
	for _, s := range r.Suites {
		sum.Rows = append(sum.Rows, []Cell{{Text: s.Name}, {Text: fmt.Sprint(s.Specs)},
			{Text: fmt.Sprint(s.Failed), Bad: s.Failed > 0}, {Text: fmt.Sprint(s.Skipped)}, {Text: seconds(s.WallSeconds)}})
	}
	p.Sections = append(p.Sections, Section{Title: "Summary", Table: sum})
	if c, ok := r.setupChart(); ok {
		p.Sections = append(p.Sections, Section{Title: "Call set-up time", Charts: []Chart{c},
			Intro: "Distribution of invite -> ICE+DTLS connected over every measured call, per backend and direction."})
	}
	if cs := r.lossCharts(); len(cs) > 0 {
		p.Sections = append(p.Sections, Section{Title: "Loss after repair", Charts: cs,
			Intro: "Post-repair loss (lost, or later than the playout deadline) against the channel's loss rate, per mechanism; the faint markers of the same colour are the bounds each case was asserted against."})
	}
	if cs := r.bweCharts(); len(cs) > 0 {
		p.Sections = append(p.Sections, Section{Title: "Bandwidth estimation", Charts: cs,
			Intro: "Per RFC 8867 case: the sender's target, what it sent, what the bottleneck delivered and its capacity (Mbit/s), and the bottleneck's queue delay."})
	}
	bySuite := map[string][]Measurement{}
	for _, m := range r.Measurements {
		bySuite[m.Suite] = append(bySuite[m.Suite], m)
	}
	for _, suite := range slices.Sorted(maps.Keys(bySuite)) {
		t := &Table{Header: []string{"case", "backend", "state", "values (bound)"}}
		for _, m := range bySuite[suite] {
			var vals []string
			bad := false
			for _, k := range slices.Sorted(maps.Keys(m.Values)) {
				s := fmt.Sprintf("%s=%s", k, formatValue(m.Values[k]))
				if b, ok := m.Bounds[k]; ok {
					rel := "≤"
					if strings.HasSuffix(k, "_min") {
						rel = "≥"
					}
					s += fmt.Sprintf(" (%s%s)", rel, formatValue(b))
					if Exceeds(k, m.Values[k], b) {
						s, bad = "✗ "+s, true
					}
				}
				vals = append(vals, s)
			}
			t.Rows = append(t.Rows, []Cell{{Text: m.Case}, {Text: m.Backend}, {Text: m.State, Bad: m.State == "failed"},
				{Text: strings.Join(vals, ", "), Bad: bad}})
		}
		p.Sections = append(p.Sections, Section{Title: "Measurements: " + suite, Table: t})
	}
	var fails [][]Cell
	for _, s := range r.Specs {
		if s.State != "passed" && s.State != "skipped" && s.State != "pending" {
			fails = append(fails, []Cell{{Text: s.Suite}, {Text: s.Name}, {Text: s.Failure, Bad: true}, {Text: s.Location}})
		}
	}
	if len(fails) > 0 {
		p.Sections = append(p.Sections, Section{Title: "Failures", Table: &Table{Header: []string{"suite", "spec", "failure", "where"}, Rows: fails}})
	}
	return p
}

func (r *Run) envRows() [][2]string {
	images, seeds := map[string]bool{}, map[string]bool{}
	var cases []string
	for _, m := range r.Measurements {
		if v := m.Params["image"]; v != "" {
			images[v] = true
		}
		if v := m.Params["seed"]; v != "" {
			seeds[v] = true
		}
		cases = append(cases, m.Suite+": "+m.Case)
	}
	var suites []string
	for _, s := range r.Suites {
		suites = append(suites, s.Name)
	}
	orNone := func(m map[string]bool) string {
		if len(m) == 0 {
			return "-"
		}
		return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
	}
	return [][2]string{
		{"version", r.Env.Version}, {"go", r.Env.GoVersion + " " + r.Env.Platform},
		{"started", r.Env.Started.UTC().Format(time.RFC3339)}, {"wall", seconds(r.Env.WallSeconds)},
		{"backends", strings.Join(r.Env.Backends, ", ")}, {"images", orNone(images)}, {"seeds", orNone(seeds)},
		{"suites", strings.Join(suites, ", ")}, {"scenario set", fmt.Sprintf("%d measured cases", len(cases))},
	}
}

// setupChart is the CDF of invite -> connected per backend and direction.
func (r *Run) setupChart() (Chart, bool) {
	byKey := map[string][]float64{}
	for _, m := range r.Measurements {
		if m.Suite != "setup" {
			continue
		}
		dir, _ := jsonPath(m.Detail, "direction").(string)
		calls, _ := jsonPath(m.Detail, "calls").([]any)
		for _, c := range calls {
			if ns, ok := jsonPath(c, "invite_to_connected_ns").(float64); ok {
				key := m.Backend + " " + dir
				byKey[key] = append(byKey[key], ns/1e6)
			}
		}
	}
	if len(byKey) == 0 {
		return Chart{}, false
	}
	c := Chart{Title: "invite -> connected, cumulative share of calls", XLabel: "set-up time, ms", YLabel: "share of calls"}
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		v := byKey[k]
		sort.Float64s(v)
		ys := make([]float64, len(v))
		for i := range v {
			ys[i] = float64(i+1) / float64(len(v))
		}
		c.Series = append(c.Series, Series{Name: k, X: v, Y: ys})
	}
	return c, true
}

// lossCharts plots, for the ARQ and FEC suites, post-repair loss against the channel's loss.
func (r *Run) lossCharts() []Chart {
	type pts struct{ x, y []float64 }
	var out []Chart
	for _, spec := range []struct {
		suite, title string
		values       map[string]string // value name -> series name
	}{
		{"arq", "NACK/RTX: effective loss after repair", map[string]string{"audio_effective_loss": "audio", "video_effective_loss": "video"}},
		{"fec", "FlexFEC and RED: residual loss after FEC", map[string]string{"residual_loss_video": "video (FlexFEC)", "residual_loss_audio": "audio (RED)"}},
	} {
		measured, bounds := map[string]*pts{}, map[string]*pts{}
		for _, m := range r.Measurements {
			x, ok := m.Values["model_loss"]
			if m.Suite != spec.suite || !ok {
				continue
			}
			for v, name := range spec.values {
				y, ok := m.Values[v]
				if !ok {
					continue
				}
				key := name + " " + m.Backend
				if measured[key] == nil {
					measured[key], bounds[key] = &pts{}, &pts{}
				}
				measured[key].x, measured[key].y = append(measured[key].x, x), append(measured[key].y, y)
				if b, ok := m.Bounds[v]; ok {
					bounds[key].x, bounds[key].y = append(bounds[key].x, x), append(bounds[key].y, b)
				}
			}
		}
		if len(measured) == 0 {
			continue
		}
		c := Chart{Title: spec.title, XLabel: "channel loss (model)", YLabel: "loss after repair"}
		for i, k := range slices.Sorted(maps.Keys(measured)) {
			color := palette[i%len(palette)]
			c.Series = append(c.Series, Series{Name: k + " measured", X: measured[k].x, Y: measured[k].y, Points: true, Color: color})
			if len(bounds[k].x) > 0 {
				c.Series = append(c.Series, Series{Name: k + " bound", X: bounds[k].x, Y: bounds[k].y, Points: true, Color: color + "66"})
			}
		}
		out = append(out, c)
	}
	return out
}

// bweCharts draws, per BWE measurement with a time series, rates and queue delay over time.
func (r *Run) bweCharts() []Chart {
	var out []Chart
	for _, m := range r.Measurements {
		agg := jsonPath(m.Detail, "series", "aggregate")
		if agg == nil {
			continue
		}
		step, _ := jsonPath(agg, "step_ns").(float64)
		if step <= 0 {
			continue
		}
		rates := Chart{Title: m.Suite + " " + m.Case + " (" + m.Backend + "): rates", XLabel: "s", YLabel: "Mbit/s"}
		for _, s := range []struct{ key, name string }{{"capacity_bps", "capacity"}, {"sending_bps", "sending"}, {"delivered_bps", "delivered"}, {"target_bps", "target"}} {
			x, y := seriesOf(agg, s.key, step, 1e-6)
			if len(y) > 0 && slices.ContainsFunc(y, func(v float64) bool { return v != 0 }) {
				rates.Series = append(rates.Series, Series{Name: s.name, X: x, Y: y, Dashed: s.key == "capacity_bps"})
			}
		}
		queue := Chart{Title: m.Suite + " " + m.Case + " (" + m.Backend + "): queue delay", XLabel: "s", YLabel: "ms", Height: 180}
		if x, y := seriesOf(agg, "queue_delay_ns", step, 1e-6); len(y) > 0 {
			queue.Series = append(queue.Series, Series{Name: "bottleneck queue delay", X: x, Y: y})
		}
		if len(rates.Series) > 0 {
			out = append(out, rates, queue)
		}
	}
	return out
}

// seriesOf reads a numeric array of a decoded JSON object as a time series.
func seriesOf(obj any, key string, stepNs, scale float64) (x, y []float64) {
	arr, _ := jsonPath(obj, key).([]any)
	for i, v := range arr {
		f, ok := v.(float64)
		if !ok {
			continue
		}
		x = append(x, float64(i)*stepNs/1e9)
		y = append(y, f*scale)
	}
	return x, y
}

// path walks decoded JSON (maps) by keys; nil when a key is missing.
func jsonPath(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
