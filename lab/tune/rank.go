package tune

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Objective names what a sweep ranks configurations by.
type Objective string

// The objectives.
const (
	// Utilization: the bottleneck's RFC 8868 utilization over the run (delivered/capacity,
	// time mean; Metrics.Utilization). Higher is better. Resolution 0.01.
	Utilization Objective = "utilization"
	// QueueDelayP95: the 95th percentile of the bottleneck's queue delay over the run's 100 ms
	// samples (Metrics.QueueP95), in ms. Lower is better. Resolution 10 ms.
	QueueDelayP95 Objective = "queue-delay-p95"
	// Loss: the share of the datagrams offered to the bottleneck that its queue dropped
	// (Metrics.Loss). Lower is better. Resolution 0.001 (0.1%).
	Loss Objective = "loss"
	// Convergence: the mean time, over the run's capacity epochs (the start and every capacity
	// change), the offered rate took to converge to the capacity (within ±25% for 3 s; an epoch
	// that never converged counts its whole length; Metrics.Convergence), in s. Lower is
	// better. Resolution 1 s.
	Convergence Objective = "convergence"
)

type objectiveDef struct {
	name       Objective
	higher     bool
	resolution float64
	unit       string
	value      func(Summary) float64
	format     func(float64) string
	help       string
}

var objectives = []objectiveDef{
	{Utilization, true, 0.01, "", func(s Summary) float64 { return s.Utilization }, func(v float64) string { return fmt.Sprintf("%.3f", v) },
		"bottleneck utilization, delivered/capacity over the run (higher is better)"},
	{QueueDelayP95, false, 10, "ms", func(s Summary) float64 { return s.QueueP95Ms }, func(v float64) string { return fmt.Sprintf("%.0fms", v) },
		"p95 of the bottleneck's queue delay, 100 ms samples (lower is better)"},
	{Loss, false, 0.001, "", func(s Summary) float64 { return s.Loss }, func(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) },
		"share of the offered datagrams the bottleneck dropped (lower is better)"},
	{Convergence, false, 1, "s", func(s Summary) float64 { return s.ConvergenceS }, func(v float64) string { return fmt.Sprintf("%.1fs", v) },
		"mean time to converge to each capacity, ±25% for 3 s; never = the epoch's length (lower is better)"},
}

// ObjectiveInfo documents an objective.
type ObjectiveInfo struct {
	Name Objective
	// HigherIsBetter orders the ranking; Resolution is the default rounding of the objective
	// before ranking, in Unit ("" for a fraction, "ms", "s").
	HigherIsBetter bool
	Resolution     float64
	Unit           string
	Help           string
}

// Objectives lists the objectives.
func Objectives() []ObjectiveInfo {
	var out []ObjectiveInfo
	for _, o := range objectives {
		out = append(out, ObjectiveInfo{o.name, o.higher, o.resolution, o.unit, o.help})
	}
	return out
}

func objectiveOf(o Objective) (objectiveDef, bool) {
	for _, d := range objectives {
		if d.name == o {
			return d, true
		}
	}
	return objectiveDef{}, false
}

// ParseObjective reads an --objective value.
func ParseObjective(s string) (Objective, error) {
	if _, ok := objectiveOf(Objective(s)); ok {
		return Objective(s), nil
	}
	var names []string
	for _, o := range objectives {
		names = append(names, string(o.name))
	}
	return "", fmt.Errorf("--objective %q: unknown objective: want one of %s", s, strings.Join(names, ", "))
}

// Constraints bound a configuration's metrics; zero fields bound nothing. A configuration
// meets them when it meets them on every scenario (on the mean over its repetitions there).
type Constraints struct {
	MaxQueueP95 time.Duration `json:"max_queue_delay_p95_ns,omitempty"`
	MaxLoss     float64       `json:"max_loss,omitempty"`
}

// String is the constraints as flags would give them ("none" without any).
func (c Constraints) String() string {
	var parts []string
	if c.MaxQueueP95 > 0 {
		parts = append(parts, "queue delay p95 <= "+c.MaxQueueP95.String())
	}
	if c.MaxLoss > 0 {
		parts = append(parts, fmt.Sprintf("loss <= %g%%", 100*c.MaxLoss))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Ranking is how a sweep's results are ordered.
type Ranking struct {
	Objective   Objective   `json:"objective"`
	Constraints Constraints `json:"constraints"`
	// Resolution rounds the objective before comparing (0: the objective's default); equal
	// rounded values rank by the configurations' grid order.
	Resolution float64 `json:"resolution"`
}

// Summary is the mean of a configuration's metrics over runs: over its repetitions on one
// scenario, or over its scenarios' summaries.
type Summary struct {
	Runs             int     `json:"runs"`
	Failed           int     `json:"failed"`
	Utilization      float64 `json:"utilization"`
	QueueP95Ms       float64 `json:"queue_delay_p95_ms"`
	PacketQueueP95Ms float64 `json:"packet_queue_delay_p95_ms"`
	Loss             float64 `json:"loss"`
	ConvergenceS     float64 `json:"convergence_s"`
	Unconverged      float64 `json:"unconverged"`
	MeanTargetBps    float64 `json:"mean_target_bps"`
	MeanDelivered    float64 `json:"mean_delivered_bps"`
	NACKsSent        float64 `json:"gateway_nacks_sent"`
	// Min and Max are the objective's extremes over the runs (their spread says how much a
	// repetition moves it).
	Min float64 `json:"objective_min"`
	Max float64 `json:"objective_max"`
}

func (s *Summary) add(m Metrics, w float64) {
	s.Utilization += w * m.Utilization
	s.QueueP95Ms += w * ms(m.QueueP95)
	s.PacketQueueP95Ms += w * ms(m.PacketQueueP95)
	s.Loss += w * m.Loss
	s.ConvergenceS += w * m.Convergence.Seconds()
	s.Unconverged += w * float64(m.Unconverged)
	s.MeanTargetBps += w * m.MeanTarget
	s.MeanDelivered += w * m.MeanDelivered
	s.NACKsSent += w * float64(m.NACKsSent)
}

func (s *Summary) addSummary(o Summary, w float64) {
	s.Utilization += w * o.Utilization
	s.QueueP95Ms += w * o.QueueP95Ms
	s.PacketQueueP95Ms += w * o.PacketQueueP95Ms
	s.Loss += w * o.Loss
	s.ConvergenceS += w * o.ConvergenceS
	s.Unconverged += w * o.Unconverged
	s.MeanTargetBps += w * o.MeanTargetBps
	s.MeanDelivered += w * o.MeanDelivered
	s.NACKsSent += w * o.NACKsSent
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Ranked is one configuration in the ranking.
type Ranked struct {
	// Rank counts from 1.
	Rank   int    `json:"rank"`
	Config Config `json:"config"`
	// Objective is the mean over the scenarios of the objective's mean over the repetitions,
	// Rounded that to the ranking's resolution (what the ranking compares).
	Objective float64 `json:"objective"`
	Rounded   float64 `json:"rounded"`
	// Meets says the configuration met the constraints on every scenario; Violations say
	// where it did not. Failed says a run of it failed (it then ranks last).
	Meets      bool     `json:"meets"`
	Violations []string `json:"violations,omitempty"`
	Failed     bool     `json:"failed"`
	Errors     []string `json:"errors,omitempty"`
	// Mean is over the scenarios; Scenarios are per scenario, in the job's order.
	Mean      Summary   `json:"mean"`
	Scenarios []Summary `json:"scenarios"`
}

// Rank orders the job's configurations: first those whose runs all succeeded and that meet
// the constraints, then those that violate them, then those with a failed run; within each
// group by the objective rounded to the resolution (better first), ties by grid order.
func Rank(j Job, results []RunResult, r Ranking) ([]Ranked, error) {
	def, ok := objectiveOf(r.Objective)
	if !ok {
		_, err := ParseObjective(string(r.Objective))
		return nil, err
	}
	res := r.Resolution
	if res <= 0 {
		res = def.resolution
	}
	type key struct{ config, scenario int }
	byKey := map[key][]RunResult{}
	for _, x := range results {
		k := key{x.Spec.Config, x.Spec.Scenario}
		byKey[k] = append(byKey[k], x)
	}
	out := make([]Ranked, len(j.Configs))
	for ci, cfg := range j.Configs {
		rk := Ranked{Config: cfg, Meets: true}
		rk.Mean.Min, rk.Mean.Max = math.Inf(1), math.Inf(-1)
		for si, sc := range j.Scenarios {
			var s Summary
			var ok []RunResult
			for _, x := range byKey[key{ci, si}] {
				s.Runs++
				if x.Err != "" {
					s.Failed++
					rk.Errors = append(rk.Errors, fmt.Sprintf("%s rep %d: %s", sc.Name, x.Spec.Rep, x.Err))
					continue
				}
				ok = append(ok, x)
			}
			if want := max(j.Repeat, 1); s.Runs < want {
				s.Failed += want - s.Runs
				rk.Errors = append(rk.Errors, fmt.Sprintf("%s: %d of %d runs have no result", sc.Name, want-s.Runs, want))
				s.Runs = want
			}
			s.Min, s.Max = math.Inf(1), math.Inf(-1)
			for _, x := range ok {
				s.add(x.Metrics, 1/float64(len(ok)))
				v := def.value(summaryOf(x.Metrics))
				s.Min, s.Max = math.Min(s.Min, v), math.Max(s.Max, v)
			}
			if len(ok) == 0 {
				s.Min, s.Max = 0, 0 // JSON has no NaN: Runs == Failed says there is no value
			}
			if s.Failed > 0 {
				rk.Failed = true
			}
			if len(ok) > 0 {
				if c := r.Constraints.MaxQueueP95; c > 0 && s.QueueP95Ms > ms(c) {
					rk.Violations = append(rk.Violations, fmt.Sprintf("%s: queue delay p95 %.0fms > %v", sc.Name, s.QueueP95Ms, c))
				}
				if c := r.Constraints.MaxLoss; c > 0 && s.Loss > c {
					rk.Violations = append(rk.Violations, fmt.Sprintf("%s: loss %.2f%% > %g%%", sc.Name, 100*s.Loss, 100*c))
				}
			}
			rk.Scenarios = append(rk.Scenarios, s)
			rk.Mean.Runs += s.Runs
			rk.Mean.Failed += s.Failed
			rk.Mean.addSummary(s, 1/float64(len(j.Scenarios)))
			if len(ok) > 0 {
				rk.Mean.Min, rk.Mean.Max = math.Min(rk.Mean.Min, s.Min), math.Max(rk.Mean.Max, s.Max)
			}
		}
		rk.Meets = len(rk.Violations) == 0 && !rk.Failed
		rk.Objective = def.value(rk.Mean)
		rk.Rounded = math.Round(rk.Objective/res) * res
		if math.IsInf(rk.Mean.Min, 0) {
			rk.Mean.Min, rk.Mean.Max = 0, 0
		}
		out[ci] = rk
	}
	group := func(x Ranked) int {
		switch {
		case x.Failed:
			return 2
		case !x.Meets:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		if c := cmp.Compare(group(a), group(b)); c != 0 {
			return c
		}
		c := cmp.Compare(a.Rounded, b.Rounded)
		if def.higher {
			c = -c
		}
		if c != 0 {
			return c
		}
		return cmp.Compare(a.Config.Index, b.Config.Index)
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	return out, nil
}

func summaryOf(m Metrics) Summary {
	var s Summary
	s.add(m, 1)
	return s
}

// Order is the ranking as configuration indexes, best first (what two sweeps are compared on).
func Order(rs []Ranked) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Config.Index
	}
	return out
}

// WriteTable prints the ranking as a table: rank, the swept parameters, the objective (and its
// spread over the runs when there are several), the other metrics, and the constraints'
// verdict.
func WriteTable(w io.Writer, j Job, r Ranking, rs []Ranked) error {
	def, ok := objectiveOf(r.Objective)
	if !ok {
		_, err := ParseObjective(string(r.Objective))
		return err
	}
	res := r.Resolution
	if res <= 0 {
		res = def.resolution
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var head []string
	head = append(head, "RANK")
	for _, p := range j.Params {
		head = append(head, strings.ToUpper(p.Name))
	}
	head = append(head, strings.ToUpper(string(def.name))+" (RANKED)", "MEAN")
	if max(j.Repeat, 1)*len(j.Scenarios) > 1 {
		head = append(head, "RANGE")
	}
	for _, o := range objectives {
		if o.name != def.name {
			head = append(head, strings.ToUpper(string(o.name)))
		}
	}
	head = append(head, "VERDICT")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, x := range rs {
		row := []string{fmt.Sprint(x.Rank)}
		for _, p := range j.Params {
			row = append(row, x.Config.Value(p.Name))
		}
		row = append(row, def.formatRounded(x.Rounded, res), def.format(x.Objective))
		if max(j.Repeat, 1)*len(j.Scenarios) > 1 {
			row = append(row, formatRange(def, x.Mean))
		}
		for _, o := range objectives {
			if o.name != def.name {
				row = append(row, o.format(o.value(x.Mean)))
			}
		}
		row = append(row, verdict(x))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// formatRounded prints a rounded objective with the decimals its resolution has (in the
// objective's display unit: loss is shown in percent).
func (d objectiveDef) formatRounded(v, res float64) string {
	scale, suffix := 1.0, d.unit
	if d.name == Loss {
		scale, suffix = 100, "%"
	}
	dec := 0
	for r := res * scale; dec < 6 && math.Abs(r-math.Round(r)) > 1e-9; r *= 10 {
		dec++
	}
	return strconv.FormatFloat(v*scale, 'f', dec, 64) + suffix
}

func formatRange(def objectiveDef, s Summary) string {
	if s.Runs == s.Failed {
		return "-"
	}
	return def.format(s.Min) + ".." + def.format(s.Max)
}

func verdict(x Ranked) string {
	switch {
	case x.Failed:
		return fmt.Sprintf("FAILED (%d of %d runs)", x.Mean.Failed, x.Mean.Runs)
	case !x.Meets:
		return "violates " + strings.Join(x.Violations, "; ")
	}
	return "ok"
}
