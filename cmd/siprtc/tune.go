package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siprtc/siprtc/internal/version"
	"github.com/siprtc/siprtc/lab/scenario"
	"github.com/siprtc/siprtc/lab/tune"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

const defaultTuneScenario = "rfc8867-5.1"

func tuneSynopsis() string {
	var b strings.Builder
	b.WriteString("siprtc tune [--scenario rfc8867-5.1|FILE.yaml ...] [--param NAME=V1,V2,... ...]\n" +
		"                   [--objective utilization] [--max-queue-p95 200ms] [--max-loss 1%]\n" +
		"                   [--repeat 3] [--seed N] [--parallel N] [--out reports/tune]\n\n" +
		"Sweeps the WebRTC sender's congestion control (pion's gcc) and repair over the cartesian\n" +
		"grid of the --param values, runs every configuration on every scenario through the gateway\n" +
		"in virtual time (the lab's BWE runs: the client's gcc against the scenario's bottleneck on its\n" +
		"uplink), --repeat times each (repetition r seeds the network with seed+r), up to --parallel at\n" +
		"once, and prints the configurations ranked by the objective; writes OUT/report.html (the\n" +
		"ranking, and per scenario the target rate, delivered rate and queue delay over time with one\n" +
		"line per configuration) and OUT/results.json (schema " + tune.Schema + ": the job, the ranking,\n" +
		"every run with its time series). Exit 1 if a run failed.\n\n" +
		"Scenarios: rfc8867-<section> (" + strings.Join(tuneSections(), ", ") + "),\n" +
		"or a scenario file (lab/netem YAML with a host named sender: the WebRTC client's side).\n" +
		"Default " + defaultTuneScenario + ".\n\n" +
		"Parameters (--param NAME=V1,V2,...; one flag per parameter):\n")
	for _, p := range tune.Params() {
		fmt.Fprintf(&b, "  %-14s %s\n", p.Name, wrap(p.Help+"; values: "+p.Expect, 17, 95))
	}
	b.WriteString("\nObjectives (--objective), the mean over scenarios of the mean over repetitions:\n")
	for _, o := range tune.Objectives() {
		fmt.Fprintf(&b, "  %-16s %s\n", o.Name, wrap(fmt.Sprintf("%s; resolution %g%s", o.Help, o.Resolution, o.Unit), 19, 95))
	}
	b.WriteString("\nRanking: configurations that meet the constraints (--max-queue-p95, --max-loss: on the\n" +
		"mean over repetitions, on every scenario) come first, then those that violate them, then\n" +
		"those with a failed run; within each group by the objective rounded to --resolution (the\n" +
		"objective's default above), equal values in grid order (the first --param varies slowest).\n" +
		"Runs in virtual time are not bit-for-bit reproducible (goroutine scheduling moves packets):\n" +
		"the rounding and the repetitions make the ranking stable; the RANGE column shows how far\n" +
		"single runs spread.\n\nFlags:")
	return b.String()
}

// wrap fills text into lines of at most width columns, the lines after the first indented by
// indent spaces (the first starts at column indent).
func wrap(text string, indent, width int) string {
	var b strings.Builder
	col := indent
	for i, w := range strings.Fields(text) {
		if i > 0 && col+1+len(w) > width {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			col = indent
		} else if i > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

func tuneSections() []string {
	var out []string
	for _, p := range scenario.RFC8867Sections {
		out = append(out, tune.RFC8867Prefix+p)
	}
	return out
}

func runTune(args []string, stdout, stderr io.Writer) error {
	if tune.IsWorker() {
		tune.Worker() // exits
	}
	fs := newFlagSet("siprtc tune", tuneSynopsis(), stdout, stderr)
	var scenarios, params listFlag
	fs.Var(&scenarios, "scenario", "a scenario: rfc8867-<section> or a scenario file (repeatable; default "+defaultTuneScenario+")")
	fs.Var(&params, "param", "a swept parameter and its values, NAME=V1,V2,... (repeatable, one per parameter)")
	objective := fs.String("objective", string(tune.Utilization), "what to rank by: utilization, queue-delay-p95, loss or convergence")
	maxQueue := fs.Duration("max-queue-p95", 0, "constraint: the queue delay p95 bound (0: none)")
	maxLoss := fs.String("max-loss", "", "constraint: the loss bound, a fraction (0.01) or a percentage (1%) (empty: none)")
	resolution := fs.Float64("resolution", 0, "round the objective to this before ranking (0: the objective's default)")
	repeat := fs.Int("repeat", tuneDefaultRepeat, "runs of each configuration on each scenario (ranked on their mean)")
	seed := fs.Int64("seed", 0, "the network seed of repetition 0 (0: each scenario's own)")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "runs at once")
	duration := fs.Duration("duration", 0, "run length (0: each scenario's; shorter for a quick look)")
	out := fs.String("out", filepath.Join("reports", "tune"), "directory for report.html and results.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}

	// Everything is checked before anything runs.
	job := tune.Job{Seed: *seed, Duration: *duration, Repeat: *repeat}
	if *repeat < 1 {
		return fmt.Errorf("--repeat %d: want at least 1", *repeat)
	}
	if *parallel < 1 {
		return fmt.Errorf("--parallel %d: want at least 1", *parallel)
	}
	if *duration < 0 {
		return fmt.Errorf("--duration %v: want a positive duration, or 0 for each scenario's", *duration)
	}
	if *maxQueue < 0 {
		return fmt.Errorf("--max-queue-p95 %v: want a positive duration, or 0 for no bound", *maxQueue)
	}
	if *resolution < 0 {
		return fmt.Errorf("--resolution %g: want a positive number, or 0 for the objective's default", *resolution)
	}
	obj, err := tune.ParseObjective(*objective)
	if err != nil {
		return err
	}
	ranking := tune.Ranking{Objective: obj, Resolution: *resolution, Constraints: tune.Constraints{MaxQueueP95: *maxQueue}}
	if *maxLoss != "" {
		if ranking.Constraints.MaxLoss, err = parseFraction(*maxLoss); err != nil {
			return fmt.Errorf("--max-loss %q: %v; want a fraction (0.01) or a percentage (1%%) above 0", *maxLoss, err)
		}
	}
	if len(scenarios) == 0 {
		scenarios = listFlag{defaultTuneScenario}
	}
	seen := map[string]bool{}
	for _, s := range scenarios {
		sc, err := tune.ParseScenario(s)
		if err != nil {
			return err
		}
		if seen[sc.Name] {
			return fmt.Errorf("--scenario %q: a scenario named %s is already in the sweep", s, sc.Name)
		}
		seen[sc.Name] = true
		job.Scenarios = append(job.Scenarios, sc)
	}
	for _, p := range params {
		pp, err := tune.ParseParam(p)
		if err != nil {
			return err
		}
		job.Params = append(job.Params, pp)
	}
	if job.Configs, err = tune.Grid(job.Params); err != nil {
		return err
	}
	for _, c := range job.Configs {
		for _, s := range job.Scenarios {
			base, err := s.Case()
			if err != nil {
				return fmt.Errorf("--scenario %q: %w", s.Spec, err)
			}
			if _, _, err := tune.Apply(base, c); err != nil {
				return fmt.Errorf("--param: %w", err)
			}
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	runs := len(job.Runs())
	var names []string
	for _, s := range job.Scenarios {
		names = append(names, s.Name)
	}
	fmt.Fprintf(stderr, "tune: %d configurations x %d scenarios (%s) x %d repetitions = %d runs, %d at once\n",
		len(job.Configs), len(job.Scenarios), strings.Join(names, ", "), max(job.Repeat, 1), runs, *parallel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	bar := tune.NewProgress(stderr, runs, isTerminal(stderr))
	results, spawnErr := tune.Spawn(ctx, job, tune.SpawnOptions{Args: []string{"tune"}, Parallel: *parallel, Progress: func(done, _ int) { bar.Update(done) }})
	bar.Finish()
	wall := time.Since(started)
	var we *tune.WorkerError
	if spawnErr != nil && !errors.As(spawnErr, &we) {
		return spawnErr
	}

	ranked, err := tune.Rank(job, results, ranking)
	if err != nil {
		return err
	}
	doc := tune.NewDocument(job, ranking, ranked, results, started, wall, *parallel, version.String())
	def := tune.ObjectiveInfo{}
	for _, o := range tune.Objectives() {
		if o.Name == obj {
			def = o
		}
	}
	better := "lower is better"
	if def.HigherIsBetter {
		better = "higher is better"
	}
	fmt.Fprintf(stdout, "%s: %d configurations x %d repetitions; objective %s (%s, resolution %g%s); constraints: %s\n\n",
		strings.Join(names, ", "), len(job.Configs), max(job.Repeat, 1), obj, better, doc.Ranking.Resolution, def.Unit, ranking.Constraints)
	if err := tune.WriteTable(stdout, job, ranking, ranked); err != nil {
		return err
	}
	jsonPath, htmlPath := filepath.Join(*out, "results.json"), filepath.Join(*out, "report.html")
	if err := doc.WriteJSONFile(jsonPath); err != nil {
		return err
	}
	if err := doc.Page().WriteHTMLFile(htmlPath); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "tune: %d runs in %.1fs; wrote %s and %s\n", len(results), wall.Seconds(), htmlPath, jsonPath)
	if we != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted after %d of %d runs (the report has those)", len(results), runs)
	}
	if we != nil {
		logPath := filepath.Join(*out, "worker.log")
		_ = os.WriteFile(logPath, we.Output, 0o644)
		return fmt.Errorf("%v; its output (all of it in %s):\n%s", we, logPath, we.Tail(40))
	}
	for _, x := range ranked {
		if x.Failed {
			for _, e := range x.Errors {
				fmt.Fprintf(stderr, "tune: %s: %s\n", x.Config, e)
			}
			return exitError{1}
		}
	}
	return nil
}

// tuneDefaultRepeat is --repeat's default.
const tuneDefaultRepeat = 3

// parseFraction reads 0.01 or 1%.
func parseFraction(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	if pct {
		f /= 100
	}
	if f <= 0 || f > 1 {
		return 0, errors.New("out of range")
	}
	return f, nil
}

// isTerminal says whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
