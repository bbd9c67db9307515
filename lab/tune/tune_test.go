package tune

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/scenario"
	"github.com/siprtc/siprtc/reports"
)

// TestMain lets the test binary be a worker (TestSpawn runs it as one).
func TestMain(m *testing.M) {
	if IsWorker() {
		Worker()
	}
	os.Exit(m.Run())
}

func TestParseBitrate(t *testing.T) {
	for in, want := range map[string]int{"300k": 300_000, "1M": 1_000_000, "1.5M": 1_500_000, "800000": 800_000, "2Mbps": 2_000_000, "64K": 64_000, "1G": 1_000_000_000} {
		if got, err := ParseBitrate(in); err != nil || got != want {
			t.Errorf("ParseBitrate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "fast", "-1M", "0", "3T", "1e12", "NaN"} {
		if got, err := ParseBitrate(in); err == nil {
			t.Errorf("ParseBitrate(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseParam(t *testing.T) {
	good := map[string]Param{
		"gcc.initial=300k,600k,1M":    {"gcc.initial", []string{"300k", "600k", "1M"}},
		"gcc.min=100k":                {"gcc.min", []string{"100k"}},
		"gcc.max=2M, 3M":              {"gcc.max", []string{"2M", "3M"}},
		"pacer=leaky-bucket,none":     {"pacer", []string{"leaky-bucket", "none"}},
		"nack.interval=50ms,100ms,1s": {"nack.interval", []string{"50ms", "100ms", "1s"}},
		"nack.retries=1,10,unlimited": {"nack.retries", []string{"1", "10", "unlimited"}},
		"fec=off,5+2,10+10":           {"fec", []string{"off", "5+2", "10+10"}},
		"red.distance=off,1,8":        {"red.distance", []string{"off", "1", "8"}},
	}
	for in, want := range good {
		got, err := ParseParam(in)
		if err != nil || got.Name != want.Name || !slices.Equal(got.Values, want.Values) {
			t.Errorf("ParseParam(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	// Errors name the flag, the value and what is expected.
	bad := map[string][]string{
		"gcc.start=300k":        {`--param "gcc.start=300k"`, `unknown parameter "gcc.start"`, "gcc.initial, gcc.min"},
		"gcc.initial":           {`--param "gcc.initial"`, "NAME=V1,V2"},
		"=1":                    {"NAME=V1,V2"},
		"gcc.initial=300k,fast": {`value "fast" of gcc.initial`, "a bitrate in bit/s"},
		"gcc.initial=300k,":     {"empty value", "gcc.initial=V1,V2"},
		"pacer=token":           {`value "token" of pacer`, "leaky-bucket or none"},
		"nack.interval=0s":      {`value "0s"`, "positive duration"},
		"nack.interval=100":     {`value "100"`, "positive duration"},
		"nack.retries=0":        {`value "0"`, "from 1 to 65535, or unlimited"},
		"fec=2+5":               {`value "2+5"`, "1 <= K <= N <= 48"},
		"fec=on":                {`value "on"`, "off, or N+K"},
		"red.distance=9":        {`value "9"`, "1 to 8"},
		"gcc.initial=1M,1M":     {`value "1M" of gcc.initial given twice`},
	}
	for in, wants := range bad {
		_, err := ParseParam(in)
		if err == nil {
			t.Errorf("ParseParam(%q) accepted it", in)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseParam(%q) = %q, which does not say %q", in, err, w)
			}
		}
	}
}

func TestGrid(t *testing.T) {
	a, _ := ParseParam("gcc.initial=300k,1M")
	b, _ := ParseParam("nack.interval=50ms,100ms,200ms")
	g, err := Grid([]Param{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, c := range g {
		if c.Index != i {
			t.Errorf("config %d has index %d", i, c.Index)
		}
		got = append(got, c.String())
	}
	want := []string{
		"gcc.initial=300k nack.interval=50ms", "gcc.initial=300k nack.interval=100ms", "gcc.initial=300k nack.interval=200ms",
		"gcc.initial=1M nack.interval=50ms", "gcc.initial=1M nack.interval=100ms", "gcc.initial=1M nack.interval=200ms",
	}
	if !slices.Equal(got, want) {
		t.Errorf("grid = %q\nwant %q", got, want)
	}
	if g[4].Value("nack.interval") != "100ms" || g[4].Value("fec") != "" {
		t.Errorf("Value: %q %q", g[4].Value("nack.interval"), g[4].Value("fec"))
	}
	if g, err := Grid(nil); err != nil || len(g) != 1 || g[0].String() != "defaults" {
		t.Errorf("Grid(nil) = %v, %v; want the one default configuration", g, err)
	}
	if _, err := Grid([]Param{a, a}); err == nil || !strings.Contains(err.Error(), "gcc.initial given twice") {
		t.Errorf("Grid with a parameter twice: %v", err)
	}
}

func TestParseScenario(t *testing.T) {
	s, err := ParseScenario("rfc8867-5.1")
	if err != nil || s.Name != "rfc8867-5.1" {
		t.Fatalf("ParseScenario(rfc8867-5.1) = %+v, %v", s, err)
	}
	for in, want := range map[string]string{
		"rfc8867-5.5":  `unknown RFC 8867 section "5.5"`,
		"rfc8867-6":    `5.1, 5.2, 5.3, 5.4, 5.8`,
		"nowhere.yaml": `--scenario "nowhere.yaml": not an RFC 8867 case and no such file`,
	} {
		if _, err := ParseScenario(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseScenario(%q) = %v, want an error saying %q", in, err, want)
		}
	}
	// A scenario file: its name, its absolute path.
	root, err := scenario.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	s, err = ParseScenario(filepath.Join(root, "fixtures", "scenarios", "rfc8867-5.2.yaml"))
	if err != nil || s.Name != "rfc8867-5.2" || !filepath.IsAbs(s.Spec) {
		t.Errorf("ParseScenario(file) = %+v, %v", s, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nhosts:\n  - name: mars\n    up: {delay: {base: 1ms}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseScenario(bad); err == nil || !strings.Contains(err.Error(), `--scenario "`+bad+`"`) {
		t.Errorf("ParseScenario(a file with an unknown host) = %v", err)
	}
}

func TestApply(t *testing.T) {
	sc, _ := ParseScenario("rfc8867-5.1")
	base, err := sc.Case()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Settings: []Setting{{"gcc.initial", "1M"}, {"gcc.min", "100k"}, {"gcc.max", "2M"}, {"pacer", "none"},
		{"nack.interval", "50ms"}, {"nack.retries", "unlimited"}, {"fec", "5+2"}, {"red.distance", "2"}}}
	c, wc, err := Apply(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.BWE != (rtc.BWEConfig{InitialBitrate: 1_000_000, MinBitrate: 100_000, MaxBitrate: 2_000_000, Pacer: rtc.PacerNone}) {
		t.Errorf("BWE = %+v", c.BWE)
	}
	if c.NACKRetries != -1 || c.GatewayNACKRetries != -1 {
		t.Errorf("NACK retries %d, gateway %d; want -1 (unlimited)", c.NACKRetries, c.GatewayNACKRetries)
	}
	if len(c.ClientOptions) != 3 || len(base.ClientOptions) != 0 || !c.Opus || base.Opus {
		t.Errorf("%d client options (base %d), Opus %v (base %v); want 3 (0), true (false)", len(c.ClientOptions), len(base.ClientOptions), c.Opus, base.Opus)
	}
	for _, k := range []string{"red=1", "red_distance=2", "flexfec=1", "fec_media_packets=5", "fec_packets=2"} {
		if !strings.Contains(wc.GatewayConf, k+"\n") {
			t.Errorf("gateway conf %q lacks %s", wc.GatewayConf, k)
		}
	}
	if len(wc.Gateway) == 0 {
		t.Error("no gateway option for the NACK interval")
	}
	// Combinations rtc would refuse.
	for _, s := range [][]Setting{{{"gcc.initial", "50k"}, {"gcc.min", "100k"}}, {{"gcc.min", "2M"}, {"gcc.max", "1M"}}, {{"gcc.initial", "3M"}, {"gcc.max", "2M"}}} {
		if _, _, err := Apply(base, Config{Settings: s}); err == nil || !strings.Contains(err.Error(), "configuration ") {
			t.Errorf("Apply(%v) = %v, want an error naming the configuration", s, err)
		}
	}
	// gcc.max below rtc's default start: rtc clamps its default, no error.
	if _, _, err := Apply(base, Config{Settings: []Setting{{"gcc.max", "200k"}}}); err != nil {
		t.Errorf("gcc.max=200k alone: %v", err)
	}
}

func metricsFor(util float64, qp95 time.Duration) Metrics {
	return Metrics{Utilization: util, QueueP95: qp95, Loss: 0.01, Convergence: 5 * time.Second}
}

func TestRank(t *testing.T) {
	p, _ := ParseParam("gcc.initial=300k,600k,1M,2M")
	cfgs, _ := Grid([]Param{p})
	sc := []Scenario{{Name: "a"}, {Name: "b"}}
	j := Job{Scenarios: sc, Params: []Param{p}, Configs: cfgs, Repeat: 2}
	var results []RunResult
	add := func(c, s, r int, m Metrics, err string) {
		results = append(results, RunResult{Spec: RunSpec{Config: c, Scenario: s, Rep: r}, Metrics: m, Err: err})
	}
	// 300k: util 0.80 (both scenarios), queue fine.
	for s := range 2 {
		add(0, s, 0, metricsFor(0.79, 100*time.Millisecond), "")
		add(0, s, 1, metricsFor(0.81, 100*time.Millisecond), "")
	}
	// 600k: util 0.804 (same rounded value as 300k: grid order breaks the tie).
	for s := range 2 {
		add(1, s, 0, metricsFor(0.804, 90*time.Millisecond), "")
		add(1, s, 1, metricsFor(0.804, 90*time.Millisecond), "")
	}
	// 1M: best utilization, but its queue p95 exceeds 200ms on scenario b.
	for r := range 2 {
		add(2, 0, r, metricsFor(0.9, 150*time.Millisecond), "")
		add(2, 1, r, metricsFor(0.9, 260*time.Millisecond), "")
	}
	// 2M: one run failed.
	add(3, 0, 0, metricsFor(0.95, 50*time.Millisecond), "")
	add(3, 0, 1, Metrics{}, "boom")
	add(3, 1, 0, metricsFor(0.95, 50*time.Millisecond), "")
	add(3, 1, 1, metricsFor(0.95, 50*time.Millisecond), "")

	r := Ranking{Objective: Utilization, Constraints: Constraints{MaxQueueP95: 200 * time.Millisecond}}
	rs, err := Rank(j, results, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := Order(rs); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("order %v, want [0 1 2 3]", got)
	}
	if x := rs[0]; x.Rank != 1 || !x.Meets || x.Mean.Runs != 4 || x.Mean.Min != 0.79 || x.Mean.Max != 0.81 || x.Rounded != 0.8 {
		t.Errorf("first: %+v", x)
	}
	if x := rs[2]; x.Meets || len(x.Violations) != 1 || !strings.Contains(x.Violations[0], "b: queue delay p95 260ms > 200ms") {
		t.Errorf("third: %+v", x)
	}
	if x := rs[3]; !x.Failed || x.Mean.Failed != 1 || len(x.Errors) != 1 || !strings.Contains(x.Errors[0], "a rep 1: boom") {
		t.Errorf("fourth: %+v", x)
	}
	// Without the constraint, 1M leads; by queue delay, 600k does; a resolution of 0.5 makes
	// 300k, 600k and 1M equal (grid order).
	rs, _ = Rank(j, results, Ranking{Objective: Utilization})
	if got := Order(rs); !slices.Equal(got, []int{2, 0, 1, 3}) {
		t.Errorf("unconstrained order %v, want [2 0 1 3]", got)
	}
	rs, _ = Rank(j, results, Ranking{Objective: QueueDelayP95})
	if got := Order(rs); !slices.Equal(got, []int{1, 0, 2, 3}) {
		t.Errorf("queue order %v, want [1 0 2 3]", got)
	}
	rs, _ = Rank(j, results, Ranking{Objective: Utilization, Resolution: 0.5})
	if got := Order(rs); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("coarse order %v, want [0 1 2 3]", got)
	}
	// A missing result counts as a failure.
	rs, _ = Rank(j, results[:len(results)-1], r)
	if x := rs[3]; !x.Failed || !strings.Contains(strings.Join(x.Errors, "|"), "b: 1 of 2 runs have no result") {
		t.Errorf("missing run: %+v", x)
	}
	if _, err := Rank(j, results, Ranking{Objective: "fun"}); err == nil || !strings.Contains(err.Error(), "utilization, queue-delay-p95, loss, convergence") {
		t.Errorf("unknown objective: %v", err)
	}

	var b bytes.Buffer
	rs, _ = Rank(j, results, r)
	if err := WriteTable(&b, j, r, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"RANK", "GCC.INITIAL", "UTILIZATION (RANKED)", "0.80  ", "RANGE", "QUEUE-DELAY-P95", "0.790..0.810", "violates b: queue delay p95 260ms > 200ms", "FAILED (1 of 4 runs)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if _, err := ParseObjective("speed"); err == nil || !strings.Contains(err.Error(), `--objective "speed"`) {
		t.Errorf("ParseObjective: %v", err)
	}
}

func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	var b bytes.Buffer
	p := NewProgress(&b, 4, false)
	p.Now, p.start = clock, now
	now = now.Add(2 * time.Second)
	p.Update(1) // first line: the period has passed since the zero time
	now = now.Add(time.Second)
	p.Update(2) // within 5 s of the last: nothing
	now = now.Add(5 * time.Second)
	p.Update(3)
	p.Update(4) // the last: always
	p.Finish()
	want := "tune: 1/4 runs, elapsed 2s, ETA 6s\ntune: 3/4 runs, elapsed 8s, ETA 2.7s\ntune: 4/4 runs, elapsed 8s, ETA 0s\n"
	if b.String() != want {
		t.Errorf("plain progress:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	p = NewProgress(&b, 2, true)
	p.Update(1)
	p.Finish()
	if out := b.String(); !strings.Contains(out, "\r[############............] 1/2 runs") || !strings.HasSuffix(out, "\x1b[K\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("terminal progress: %q", out)
	}
}

// smallJob is two configurations far apart on the first 20 s of RFC 8867 5.1 (1 Mbit/s): gcc
// starting at the capacity, or at a tenth of it (30 s of ramp at 8%/s).
func smallJob(t *testing.T) Job {
	t.Helper()
	p, err := ParseParam("gcc.initial=100k,1M")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, _ := Grid([]Param{p})
	sc, err := ParseScenario("rfc8867-5.1")
	if err != nil {
		t.Fatal(err)
	}
	return Job{Scenarios: []Scenario{sc}, Params: []Param{p}, Configs: cfgs, Repeat: 1, Duration: 20 * time.Second}
}

// TestSweepIsReproducible runs a small sweep twice in this process and checks the ranking
// agrees, then builds and renders its report.
func TestSweepIsReproducible(t *testing.T) {
	j := smallJob(t)
	r := Ranking{Objective: Utilization}
	var orders [][]int
	var last []RunResult
	for range 2 {
		var results []RunResult
		t.Run("sweep", func(t *testing.T) { RunAll(t, j, func(x RunResult) { results = append(results, x) }) })
		if len(results) != 2 {
			t.Fatalf("%d results, want 2", len(results))
		}
		for _, x := range results {
			if x.Err != "" {
				t.Fatalf("run %s: %s", x.Spec.Name(j), x.Err)
			}
		}
		rs, err := Rank(j, results, r)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("utilization: %s %.3f, %s %.3f", rs[0].Config, rs[0].Objective, rs[1].Config, rs[1].Objective)
		orders = append(orders, Order(rs))
		last = results
	}
	if !slices.Equal(orders[0], orders[1]) || orders[0][0] != 1 {
		t.Errorf("rankings %v and %v; want [1 0] twice (gcc starting at the capacity first)", orders[0], orders[1])
	}
	rs, _ := Rank(j, last, r)
	d := NewDocument(j, r, rs, last, time.Now(), time.Second, 2, "test")
	checkPage(t, d.Page(), len(j.Configs))
}

// checkPage renders the page and checks every chart has data and one line per configuration.
func checkPage(t *testing.T, p reports.Page, configs int) {
	t.Helper()
	var b bytes.Buffer
	if err := p.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	charts := 0
	for _, s := range p.Sections {
		for _, c := range s.Charts {
			charts++
			lines := 0
			for _, sr := range c.Series {
				if sr.Name != "capacity" {
					lines++
				}
				if len(sr.X) == 0 {
					t.Errorf("chart %q: series %q is empty", c.Title, sr.Name)
				}
			}
			if lines != configs {
				t.Errorf("chart %q has %d configuration lines, want %d", c.Title, lines, configs)
			}
		}
	}
	if charts != 3 {
		t.Errorf("%d charts, want 3", charts)
	}
	html := b.String()
	if strings.Contains(html, `data-points="0"`) {
		t.Error("a chart without points")
	}
	if !strings.Contains(html, "<h2>Ranking</h2>") || !strings.Contains(html, "gcc.initial") {
		t.Error("no ranking table")
	}
}

// TestSpawn runs the small sweep in a worker process (this test binary, in worker mode) and
// checks the results and the progress come back, and the document round-trips through JSON.
func TestSpawn(t *testing.T) {
	j := smallJob(t)
	j.Configs = j.Configs[1:] // one run is enough here
	var progress []int
	dir := t.TempDir()
	results, err := Spawn(context.Background(), j, SpawnOptions{Exe: os.Args[0], Parallel: 1, Dir: dir,
		Progress: func(done, total int) { progress = append(progress, done, total) }})
	if err != nil {
		var we *WorkerError
		if errors.As(err, &we) {
			t.Fatalf("%v\n%s", err, we.Tail(40))
		}
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Err != "" || results[0].Metrics.Utilization <= 0 || results[0].Series.Len() == 0 {
		t.Fatalf("results %+v", results)
	}
	if !slices.Equal(progress, []int{1, 1}) {
		t.Errorf("progress %v, want [1 1]", progress)
	}
	rs, _ := Rank(j, results, Ranking{Objective: Loss})
	path := filepath.Join(dir, "results.json")
	if err := NewDocument(j, Ranking{Objective: Loss}, rs, results, time.Now(), time.Second, 1, "test").WriteJSONFile(path); err != nil {
		t.Fatal(err)
	}
	d, err := ReadDocument(path)
	if err != nil || len(d.Runs) != 1 || d.Ranking.Resolution != 0.001 || d.Runs[0].Series.Len() != results[0].Series.Len() {
		t.Errorf("document read back: %+v, %v", d.Ranking, err)
	}

	// A worker that dies: its output, and the runs it left, come back in a WorkerError.
	_, err = Spawn(context.Background(), j, SpawnOptions{Exe: "/bin/sh", Args: []string{"-c", "echo testing noise; echo '" + ProgressPrefix + "0' >&2; echo panic: boom >&2; exit 3"}})
	var we *WorkerError
	if err == nil || !errors.As(err, &we) || !slices.Equal(we.Missing, []int{0}) {
		t.Fatalf("a dying worker: %v", err)
	}
	if out := we.Tail(10); !strings.Contains(out, "testing noise") || !strings.Contains(out, "panic: boom") || strings.Contains(out, ProgressPrefix) {
		t.Errorf("worker output %q", out)
	}
}
