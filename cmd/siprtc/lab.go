package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/siprtc/siprtc/reports"
)

func runLab(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "summarize" {
		return runLabSummarize(args[1:], stdout, stderr)
	}
	fs := newFlagSet("siprtc lab", "siprtc lab summarize [--dir reports/latest] [--quiet]\n\n"+
		"The lab runs as Ginkgo suites on the emulated network ('make lab' runs the standard set and\n"+
		"then 'summarize'). 'summarize' reads the suites' JSON report (DIR/suites.json) and writes\n"+
		"DIR/measurements.json (every measurement, schema "+reports.Schema+", docs/report-schema.md),\n"+
		"DIR/summary.txt and DIR/report.html (self-contained, charts as inline SVG), and prints the summary. It exits 1 when a suite failed.", stdout, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown subcommand %q (want summarize)", fs.Arg(0))
	}
	fs.Usage()
	return exitError{2}
}

func runLabSummarize(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc lab summarize", "siprtc lab summarize [--dir reports/latest] [--quiet]", stdout, stderr)
	dir := fs.String("dir", filepath.Join("reports", "latest"), "the run's report directory (holds suites.json)")
	quiet := fs.Bool("quiet", false, "write the files without printing the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	run, err := reports.FromGinkgo(filepath.Join(*dir, "suites.json"))
	if err != nil {
		return err
	}
	if err := run.WriteJSON(filepath.Join(*dir, "measurements.json")); err != nil {
		return err
	}
	if err := run.WriteTextFile(filepath.Join(*dir, "summary.txt")); err != nil {
		return err
	}
	if err := run.HTML().WriteHTMLFile(filepath.Join(*dir, "report.html")); err != nil {
		return err
	}
	if !*quiet {
		if err := run.WriteText(stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "wrote %s, summary.txt and report.html\n", filepath.Join(*dir, "measurements.json"))
	if !run.Passed() {
		return exitError{1}
	}
	return nil
}
