package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siprtc/siprtc/lab/tune"
)

// TestMain lets this test binary be siprtc tune's worker: the command re-executes its own
// binary (here the test binary) in worker mode.
func TestMain(m *testing.M) {
	if tune.IsWorker() {
		tune.Worker()
	}
	os.Exit(m.Run())
}

func TestTuneRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--param", "gcc.start=300k"}, []string{`--param "gcc.start=300k"`, `unknown parameter "gcc.start"`, "want one of gcc.initial, gcc.min, gcc.max, pacer, nack.interval, nack.retries, fec, red.distance"}},
		{[]string{"--param", "gcc.initial=300k,lots"}, []string{`--param "gcc.initial=300k,lots"`, `value "lots" of gcc.initial`, "want a bitrate in bit/s"}},
		{[]string{"--param", "nack.interval=fast"}, []string{`value "fast" of nack.interval`, "want a positive duration"}},
		{[]string{"--param", "fec=7"}, []string{`value "7" of fec`, "want off, or N+K"}},
		{[]string{"--param", "gcc.initial=300k", "--param", "gcc.initial=1M"}, []string{"--param gcc.initial given twice"}},
		{[]string{"--param", "gcc.initial=100k", "--param", "gcc.min=200k"}, []string{"gcc.initial=100k gcc.min=200k", "gcc.initial 100000 is outside gcc.min 200000"}},
		{[]string{"--scenario", "rfc8867-9.9"}, []string{`--scenario "rfc8867-9.9"`, `unknown RFC 8867 section "9.9"`, "5.1, 5.2, 5.3, 5.4, 5.8"}},
		{[]string{"--scenario", "missing.yaml"}, []string{`--scenario "missing.yaml"`, "no such file", "or a scenario file"}},
		{[]string{"--scenario", "rfc8867-5.1", "--scenario", "rfc8867-5.1"}, []string{"already in the sweep"}},
		{[]string{"--objective", "speed"}, []string{`--objective "speed"`, "want one of utilization, queue-delay-p95, loss, convergence"}},
		{[]string{"--max-loss", "lots"}, []string{`--max-loss "lots"`, "want a fraction (0.01) or a percentage (1%)"}},
		{[]string{"--repeat", "0"}, []string{"--repeat 0: want at least 1"}},
		{[]string{"--parallel", "0"}, []string{"--parallel 0: want at least 1"}},
		{[]string{"extra"}, []string{`unexpected argument "extra"`}},
	} {
		code, out, errs := runCLI(t, append([]string{"tune", "--out", t.TempDir()}, c.args...)...)
		if code != 1 {
			t.Errorf("tune %q: exit %d, want 1\n%s%s", c.args, code, out, errs)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("tune %q: stderr %q does not say %q", c.args, errs, w)
			}
		}
	}
	if code, out, _ := runCLI(t, "tune", "--help"); code != 0 || !strings.Contains(out, "nack.interval") || !strings.Contains(out, "queue-delay-p95") {
		t.Errorf("tune --help: exit %d\n%s", code, out)
	}
}

// TestTuneSweeps runs a 2 x 1 sweep on the first 15 s of RFC 8867 5.1 through the worker.
func TestTuneSweeps(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "tune", "--param", "gcc.initial=100k,1M", "--param", "pacer=leaky-bucket",
		"--duration", "15s", "--repeat", "1", "--max-queue-p95", "250ms", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[2], "RANK  GCC.INITIAL  PACER") ||
		!strings.HasPrefix(lines[3], "1     1M") || !strings.HasPrefix(lines[4], "2     100k") {
		t.Errorf("ranked table:\n%s", stdout)
	}
	if !strings.Contains(stderr, "tune: 2/2 runs") || strings.Contains(stderr+stdout, "PASS") {
		t.Errorf("stderr (progress, no testing noise):\n%s", stderr)
	}
	d, err := tune.ReadDocument(filepath.Join(out, "results.json"))
	if err != nil || len(d.Runs) != 2 || len(d.Ranked) != 2 {
		t.Fatalf("results.json: %v, %d runs", err, len(d.Runs))
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || strings.Count(string(html), `<svg class="chart"`) != 3 || strings.Contains(string(html), `data-points="0"`) {
		t.Errorf("report.html: %v, %d charts", err, strings.Count(string(html), `<svg class="chart"`))
	}
}
