// Command siprtc is the one binary of the project: the embedded PBX today, and the gateway, the
// lab runner, the report tool and the congestion-control tuner as they land.
//
//	siprtc pbx [flags]                  run the embedded PBX on a FreeSWITCH conf directory
//	siprtc pbx lint [--conf DIR]        report the known traps of the deployment (exit 1 if any)
//	siprtc pbx gen-directory [flags]    generate directory users from the template
//	siprtc gateway [run] --config F     run the gateway (SIGINT/SIGTERM drain calls and stop)
//	siprtc gateway check [--config F]   validate an rtx.conf, print the effective configuration
//	siprtc gateway token --user U       make a client login token
//	siprtc lab summarize [--dir D]      turn the suites' report into measurements.json and summary.txt
//	siprtc tune --param N=V1,V2 ...     sweep gcc and repair settings on BWE scenarios, rank them
//	siprtc report baseline --release V  keep a run's summary as reports/baselines/V.json
//	siprtc report diff OLD NEW          values beyond their thresholds; exit 1 on a regression
//	siprtc version                      print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// exitError carries an exit status out of a subcommand.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"pbx", "run the embedded PBX (subcommands: lint, gen-directory)", runPBX},
		{"gateway", "the SIP <-> WebRTC gateway (subcommands: run, check, token)", runGateway},
		{"lab", "the lab's reports (subcommand: summarize)", runLab},
		{"tune", "sweep the sender's congestion control and repair settings, rank them", runTune},
		{"report", "release baselines and regression diffs (subcommands: baseline, diff)", runReport},
		{"version", "print the version and commit", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "siprtc: a SIP <-> WebRTC gateway and its network-impairment interop lab\n\n")
	fmt.Fprintf(w, "usage: siprtc <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'siprtc <command> --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ee):
			return ee.code
		default:
			fmt.Fprintf(stderr, "siprtc %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "siprtc: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet builds a flag set whose errors and help go to stderr/stdout without exiting.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: %s\n\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	return fs
}
