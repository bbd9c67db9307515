package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/siprtc/siprtc/reports"
)

const (
	defaultBaselines  = "reports/baselines"
	defaultThresholds = "reports/thresholds.yaml"
)

func runReport(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "baseline":
			return runReportBaseline(args[1:], stdout, stderr)
		case "diff":
			return runReportDiff(args[1:], stdout, stderr)
		}
	}
	fs := newFlagSet("siprtc report", "siprtc report baseline --release vX.Y.Z [--dir reports/latest] [--out reports/baselines] [--force]\n"+
		"       siprtc report diff [--thresholds reports/thresholds.yaml] [--html FILE] OLD NEW\n\n"+
		"Release baselines and regression reports. 'baseline' keeps the summary of a lab run (its\n"+
		"measurements.json, written by make lab) as reports/baselines/RELEASE.json. 'diff' lists every\n"+
		"value that moved beyond its threshold between two runs (OLD and NEW: a release name, a baseline\n"+
		"file, a measurements.json or a run's report directory) and exits 1 when one moved the wrong way\n"+
		"or a spec that passed now fails. Thresholds and which way is better: reports/thresholds.yaml.", stdout, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown subcommand %q (want baseline or diff)", fs.Arg(0))
	}
	fs.Usage()
	return exitError{2}
}

func runReportBaseline(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc report baseline", "siprtc report baseline --release vX.Y.Z [--dir reports/latest] [--out reports/baselines] [--force]", stdout, stderr)
	release := fs.String("release", "", "the release the run is the baseline of (required), e.g. v1.2.0")
	dir := fs.String("dir", filepath.Join("reports", "latest"), "the run's report directory (holds measurements.json)")
	out := fs.String("out", defaultBaselines, "where baselines are kept")
	force := fs.Bool("force", false, "replace an existing baseline of the same release")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *release == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitError{2}
	}
	run, err := reports.ReadRun(filepath.Join(*dir, "measurements.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w (run make lab first, or point --dir at a run's report directory)", err)
		}
		return err
	}
	if !run.Passed() {
		fmt.Fprintf(stderr, "warning: the run has failing suites; its baseline records them as failed\n")
	}
	p, err := reports.WriteBaseline(run.Baseline(*release), *out, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "baseline of %s: %s (%d values)\n", *release, p, len(run.Baseline(*release).Values))
	return nil
}

func runReportDiff(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc report diff", "siprtc report diff [--thresholds FILE] [--baselines DIR] [--html FILE] OLD NEW", stdout, stderr)
	thresholds := fs.String("thresholds", defaultThresholds, "per-metric thresholds (YAML)")
	baselines := fs.String("baselines", defaultBaselines, "where release baselines are kept (OLD and NEW may name a release)")
	html := fs.String("html", "", "also write the diff as a self-contained HTML page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitError{2}
	}
	t, err := reports.LoadThresholds(*thresholds)
	if err != nil {
		return err
	}
	old, err := reports.LoadBaseline(fs.Arg(0), *baselines)
	if err != nil {
		return err
	}
	cur, err := reports.LoadBaseline(fs.Arg(1), *baselines)
	if err != nil {
		return err
	}
	old.Release, cur.Release = label(old.Release, fs.Arg(0)), label(cur.Release, fs.Arg(1))
	d := reports.Compare(old, cur, t)
	if err := d.WriteText(stdout); err != nil {
		return err
	}
	if *html != "" {
		if err := d.HTML().WriteHTMLFile(*html); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", *html)
	}
	if d.Regressions() > 0 {
		return exitError{1}
	}
	return nil
}

// label names a side of a diff: its release, or what the user typed.
func label(release, arg string) string {
	if release == "" || release == "latest" || release == "." {
		return arg
	}
	return release
}
