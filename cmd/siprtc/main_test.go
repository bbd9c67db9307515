package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const overlay = "../../freeswitch/conf"

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestLintOverlayIsClean(t *testing.T) {
	code, out, errs := runCLI(t, "pbx", "lint", overlay)
	if code != 0 {
		t.Fatalf("siprtc pbx lint %s: exit %d\n%s%s", overlay, code, out, errs)
	}
	if !strings.Contains(out, "no findings") {
		t.Errorf("output %q does not say there are no findings", out)
	}
}

// TestLintFindsTheSleep puts vanilla's 10 s sleep back under the default-password warning in a
// copy of the overlay: lint must exit 1 and point at the file and line.
func TestLintFindsTheSleep(t *testing.T) {
	dir := copyOverlay(t)
	dp := filepath.Join(dir, "dialplan", "default.xml")
	b, err := os.ReadFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	anchor := `change the default_password."/>`
	i := bytes.Index(b, []byte(anchor))
	if i < 0 {
		t.Fatalf("anchor %q not in %s", anchor, dp)
	}
	i += len(anchor)
	b = append(b[:i:i], append([]byte("\n        <action application=\"sleep\" data=\"10000\"/>"), b[i:]...)...)
	if err := os.WriteFile(dp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	line := bytes.Count(b[:i], []byte("\n")) + 2

	code, out, _ := runCLI(t, "pbx", "lint", "--conf", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, out)
	}
	want := "dialplan/default.xml:" + itoa(line) + ": password-warning-sleep:"
	if !strings.Contains(out, want) {
		t.Errorf("output does not contain %q:\n%s", want, out)
	}
}

func TestLintBadDirectory(t *testing.T) {
	code, _, errs := runCLI(t, "pbx", "lint", filepath.Join(t.TempDir(), "missing"))
	if code != 1 || !strings.Contains(errs, "freeswitch.xml") {
		t.Errorf("exit %d, stderr %q: want 1 and a message naming freeswitch.xml", code, errs)
	}
}

func TestHelpOnEverySubcommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"pbx", "--help"}, {"pbx", "lint", "--help"}, {"pbx", "gen-directory", "--help"}, {"version", "--help"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "usage") {
			t.Errorf("siprtc %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "siprtc ") {
		t.Errorf("exit %d, output %q", code, out)
	}
}

func TestGenDirectoryRejectsBadRange(t *testing.T) {
	code, _, errs := runCLI(t, "pbx", "gen-directory", "--conf", t.TempDir(), "--from", "2000", "--to", "1000")
	if code != 1 || errs == "" {
		t.Errorf("exit %d, stderr %q: want 1 and a reason", code, errs)
	}
}

// copyOverlay copies freeswitch/conf into a temporary directory (the 1600 user files are
// symlinked: they are not edited and creating them is slow on some disks).
func copyOverlay(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(overlay, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(overlay, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasPrefix(rel, filepath.Join("directory", "default")+string(filepath.Separator)) {
			abs, err := filepath.Abs(path)
			if err != nil {
				return err
			}
			return os.Symlink(abs, target)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestGatewayCheck(t *testing.T) {
	code, out, errs := runCLI(t, "gateway", "check", "../../fixtures/rtx/srproxy.conf")
	if code != 0 || !strings.Contains(out, "sip_svr=127.0.0.1:5060") || strings.Contains(out, "sip_pwd=1234") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "rtx.conf")
	if err := os.WriteFile(bad, []byte("[global]\nsip_svr=1.2.3.4:abc\n[proxy]\non=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "gateway", "check", "--config", bad)
	if code != 1 || !strings.Contains(errs, "rtx.conf:2: [global] sip_svr") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and the line of sip_svr", code, errs)
	}
	// `siprtc gateway --config F` is `siprtc gateway run --config F`: it loads F (and stops at
	// its error before opening any socket).
	code, _, errs = runCLI(t, "gateway", "--config", bad)
	if code != 1 || !strings.Contains(errs, "rtx.conf:2: [global] sip_svr") {
		t.Errorf("gateway --config: exit %d, stderr:\n%s\nwant the run path's load error", code, errs)
	}
}

func TestGatewayToken(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "rtx.conf")
	if err := os.WriteFile(conf, []byte("[global]\nsip_svr=127.0.0.1:5060\n[proxy]\non=1\nsip_account=1000\nsip_pwd=secret\n[signaling]\napp_secret=0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "gateway", "token", "--config", conf, "--user", "alice")
	if code != 0 || len(strings.TrimSpace(out)) < 20 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCLI(t, "gateway", "token", "--config", "../../fixtures/rtx/srproxy.conf", "--user", "alice")
	if code != 1 || !strings.Contains(errs, "app_secret") {
		t.Errorf("a configuration without app_secret: exit %d, stderr %q", code, errs)
	}
}

func TestLabSummarize(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"lab", "summarize", "--dir", dir}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "make lab") {
		t.Errorf("no report: exit %d, %s", code, stderr.String())
	}
	report := `[{"SuiteDescription":"Setup","SuiteSucceeded":true,"StartTime":"2026-11-25T12:00:00Z","EndTime":"2026-11-25T12:00:10Z",
	 "SpecReports":[{"LeafNodeType":"It","LeafNodeText":"sets up","State":"passed","ReportEntries":[
	  {"Name":"measurement","Value":{"AsJSON":"{\"suite\":\"setup\",\"case\":\"outbound rtt=50ms\",\"backend\":\"embedded\",\"values\":{\"setup_ms\":180}}"}}]}]}]`
	if err := os.WriteFile(filepath.Join(dir, "suites.json"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"lab", "summarize", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "siprtc lab run: PASSED") || !strings.Contains(stdout.String(), "setup_ms") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	for _, f := range []string{"measurements.json", "summary.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestReportBaselineAndDiff(t *testing.T) {
	dir := t.TempDir()
	write := func(name, loss string) string {
		d := filepath.Join(dir, name)
		_ = os.MkdirAll(d, 0o755)
		doc := `{"schema":"siprtc-lab-run/1","env":{},"suites":[{"name":"ARQ","passed":true}],"specs":[],
		 "measurements":[{"suite":"arq","case":"c","backend":"embedded","values":{"audio_effective_loss":` + loss + `},"bounds":{"audio_effective_loss":0.01}}]}`
		if err := os.WriteFile(filepath.Join(d, "measurements.json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	good, bad := write("good", "0.001"), write("bad", "0.05")
	baselines := filepath.Join(dir, "baselines")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"report", "baseline", "--release", "v1.0.0", "--dir", good, "--out", baselines}, &stdout, &stderr); code != 0 {
		t.Fatalf("baseline: exit %d: %s", code, stderr.String())
	}
	thresholds := "../../reports/thresholds.yaml"
	stdout.Reset()
	if code := run([]string{"report", "diff", "--thresholds", thresholds, "--baselines", baselines, "v1.0.0", good}, &stdout, &stderr); code != 0 {
		t.Errorf("diff with itself: exit %d: %s", code, stdout.String())
	}
	stdout.Reset()
	html := filepath.Join(dir, "diff.html")
	if code := run([]string{"report", "diff", "--thresholds", thresholds, "--baselines", baselines, "--html", html, "v1.0.0", bad}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stdout.String(), "REGRESSED arq/c/embedded/audio_effective_loss") {
		t.Errorf("regression: exit %d:\n%s", code, stdout.String())
	}
	if _, err := os.Stat(html); err != nil {
		t.Error(err)
	}
	if code := run([]string{"report", "diff", "v9", bad}, &stdout, &stderr); code != 1 {
		t.Errorf("unknown release: exit %d", code)
	}
}
