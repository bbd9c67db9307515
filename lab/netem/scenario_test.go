package netem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadScenarioExample(t *testing.T) {
	s, err := LoadScenario(filepath.Join("..", "..", "fixtures", "scenarios", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "example" || s.Seed != 42 || s.CIDR != "10.77.0.0/16" || s.Duration != 100*time.Second {
		t.Errorf("scenario = %q seed %d cidr %s duration %s", s.Name, s.Seed, s.CIDR, s.Duration)
	}
	if len(s.Hosts) != 3 {
		t.Fatalf("%d hosts, want 3", len(s.Hosts))
	}
	client, gateway, phone := s.Hosts[0], s.Hosts[1], s.Hosts[2]
	if client.Name != "client" || client.IP != "10.77.0.10" || gateway.IP != "10.77.0.2" || phone.IP != "" {
		t.Errorf("hosts = %+v", s.Hosts)
	}

	up := client.Up
	if up.Loss != (LossModel{Kind: LossBernoulli, Rate: 0.01}) {
		t.Errorf("client up loss = %+v", up.Loss)
	}
	if up.Delay != (DelayModel{Base: 50 * time.Millisecond, Jitter: JitterNormal, Mean: 5 * time.Millisecond, Std: 2 * time.Millisecond}) {
		t.Errorf("client up delay = %+v", up.Delay)
	}
	if up.Duplicate != (DuplicateModel{Rate: 0.001, Delay: time.Millisecond}) {
		t.Errorf("client up duplicate = %+v", up.Duplicate)
	}
	// The trace's row at 0 is the starting capacity; the queue comes from capacity.queue.
	if up.Capacity != (CapacityModel{Rate: 1_000_000, QueueDelay: 300 * time.Millisecond}) {
		t.Errorf("client up capacity = %+v", up.Capacity)
	}
	wantTrace := []CapacityModel{{Rate: 2_500_000}, {Rate: 600_000}, {Rate: 1_000_000}}
	if len(up.Schedule) != len(wantTrace) {
		t.Fatalf("client up schedule has %d phases, want %d", len(up.Schedule), len(wantTrace))
	}
	for i, ph := range up.Schedule {
		want := wantTrace[i]
		want.QueueDelay = 300 * time.Millisecond
		if ph.At != []time.Duration{40 * time.Second, 60 * time.Second, 80 * time.Second}[i] || ph.Capacity == nil || *ph.Capacity != want || ph.Loss != nil || ph.Delay != nil || ph.Down != nil {
			t.Errorf("client up phase %d = %+v", i, ph)
		}
	}

	down := client.Down
	if down.Loss != (LossModel{Kind: LossGilbertElliott, P: 0.01, R: 0.5, LossBad: 1}) || down.Seed != 7 {
		t.Errorf("client down loss = %+v seed %d", down.Loss, down.Seed)
	}
	if down.Delay.Jitter != JitterPareto || down.Delay.Shape != 2.5 || down.Delay.Mean != 4*time.Millisecond {
		t.Errorf("client down delay = %+v", down.Delay)
	}
	if down.Capacity != (CapacityModel{Rate: 5_000_000, QueueBytes: 64_000}) {
		t.Errorf("client down capacity = %+v", down.Capacity)
	}

	if len(phone.Up.Outages) != 2 || phone.Up.Outages[1] != (Outage{Start: 75 * time.Second, Duration: 2 * time.Second}) {
		t.Errorf("phone up outages = %+v", phone.Up.Outages)
	}
	sched := phone.Down.Schedule
	if len(sched) != 4 {
		t.Fatalf("phone down schedule has %d phases, want 4", len(sched))
	}
	// Omitted keys keep the value in force: the queue at 20 s, the jitter at 51 s.
	if *sched[0].Loss != (LossModel{Kind: LossBernoulli, Rate: 0.05}) || *sched[0].Capacity != (CapacityModel{Rate: 500_000, QueueDelay: 100 * time.Millisecond}) {
		t.Errorf("phase at 20s = loss %+v capacity %+v", *sched[0].Loss, *sched[0].Capacity)
	}
	if sched[1].Down == nil || !*sched[1].Down || sched[2].Down == nil || *sched[2].Down {
		t.Errorf("phases at 50s/51s: down %v %v", sched[1].Down, sched[2].Down)
	}
	if *sched[2].Delay != (DelayModel{Base: 120 * time.Millisecond, Jitter: JitterUniform, Mean: 3 * time.Millisecond}) {
		t.Errorf("phase at 51s delay = %+v", *sched[2].Delay)
	}
	if *sched[3].Loss != (LossModel{}) || *sched[3].Capacity != (CapacityModel{}) {
		t.Errorf("phase at 80s = loss %+v capacity %+v", *sched[3].Loss, *sched[3].Capacity)
	}
}

func TestLoadScenarioFixturesAllParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "fixtures", "scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		if _, err := LoadScenario(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseScenarioGood(t *testing.T) {
	cases := []struct {
		name, in string
		check    func(t *testing.T, s *Scenario)
	}{
		{"minimal", "hosts: [{name: a}]", func(t *testing.T, s *Scenario) {
			if s.CIDR != DefaultCIDR || s.Name != "" || s.Seed != 0 || s.Duration != 0 || len(s.Hosts) != 1 || s.Hosts[0].Up.Schedule != nil {
				t.Errorf("%+v", s)
			}
		}},
		{"gilbert defaults to Gilbert's model", "hosts: [{name: a, up: {loss: {p: 1%, r: 25%}}}]", func(t *testing.T, s *Scenario) {
			if got := s.Hosts[0].Up.Loss; got != (LossModel{Kind: LossGilbertElliott, P: 0.01, R: 0.25, LossBad: 1}) {
				t.Errorf("loss = %+v", got)
			}
		}},
		{"rate units", `
hosts:
  - {name: a, up: {capacity: {rate: 500kbps, queue: 64KiB}}, down: {capacity: {rate: 2.5 Mbit/s, queue: 1500}}}
  - {name: b, up: {capacity: {rate: 1e6, queue: 1MB}}, down: {capacity: {rate: 1Gbps, queue: 1.5s}}}`, func(t *testing.T, s *Scenario) {
			got := []CapacityModel{s.Hosts[0].Up.Capacity, s.Hosts[0].Down.Capacity, s.Hosts[1].Up.Capacity, s.Hosts[1].Down.Capacity}
			want := []CapacityModel{{Rate: 500_000, QueueBytes: 65536}, {Rate: 2_500_000, QueueBytes: 1500}, {Rate: 1_000_000, QueueBytes: 1_000_000}, {Rate: 1_000_000_000, QueueDelay: 1500 * time.Millisecond}}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("capacity %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		}},
		{"anchors and aliases", `
hosts:
  - name: a
    up: &lossy {loss: {rate: 2%}, delay: {base: 10ms}}
  - name: b
    up: *lossy`, func(t *testing.T, s *Scenario) {
			if s.Hosts[1].Up.Loss.Rate != 0.02 || s.Hosts[1].Up.Delay.Base != 10*time.Millisecond {
				t.Errorf("b up = %+v", s.Hosts[1].Up)
			}
		}},
		{"schedule changes kind and starts from its defaults", `
hosts:
  - name: a
    up:
      loss: {rate: 10%}
      schedule:
        - {at: 0s, delay: {base: 5ms}}
        - {at: 1s, loss: {kind: gilbert-elliott, p: 0.1, r: 0.2, loss_good: 0.01}}
        - {at: 2s, loss: {r: 0.4}}`, func(t *testing.T, s *Scenario) {
			up := s.Hosts[0].Up
			if up.Delay.Base != 5*time.Millisecond || len(up.Schedule) != 2 {
				t.Fatalf("up = %+v", up)
			}
			if *up.Schedule[0].Loss != (LossModel{Kind: LossGilbertElliott, P: 0.1, R: 0.2, LossGood: 0.01, LossBad: 1}) {
				t.Errorf("at 1s loss = %+v", *up.Schedule[0].Loss)
			}
			if *up.Schedule[1].Loss != (LossModel{Kind: LossGilbertElliott, P: 0.1, R: 0.4, LossGood: 0.01, LossBad: 1}) {
				t.Errorf("at 2s loss = %+v", *up.Schedule[1].Loss)
			}
		}},
		{"down at 0 stays a phase", "hosts: [{name: a, up: {schedule: [{at: 0s, down: true}, {at: 1s, down: false}]}}]", func(t *testing.T, s *Scenario) {
			if len(s.Hosts[0].Up.Schedule) != 2 {
				t.Errorf("schedule = %+v", s.Hosts[0].Up.Schedule)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseScenario([]byte(tc.in), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

// TestParseScenarioErrors checks each message: the line, the key path, the value as written and
// why. Each input has one mistake.
func TestParseScenarioErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.csv", "time_seconds,capacity_bps\n0,1000000\n40,0\n")
	write("long.csv", "0,1000000\n40,2000000\n")

	cases := []struct{ name, in, want string }{
		{"unknown key", `
hosts:
  - name: a
  - name: b
    up:
      loss: {kind: bernoulli, rat: 0.1}`,
			"line 6: hosts[1].up.loss.rat: unknown key (known: kind, rate, p, r, loss_good, loss_bad)"},
		{"unknown top key", "name: x\nhost: []\n", "line 2: host: unknown key (known: name, seed, cidr, duration, hosts)"},
		{"negative rate", `
hosts:
  - name: a
    down:
      capacity:
        rate: -2Mbps`, "line 6: hosts[0].down.capacity.rate -2Mbps: must be > 0"},
		{"bytes per second", "hosts: [{name: a, up: {capacity: {rate: 2MBps}}}]", "line 1: hosts[0].up.capacity.rate 2MBps: is bytes per second: write bits per second (kbps, Mbps, Gbps)"},
		{"unknown rate unit", "hosts: [{name: a, up: {capacity: {rate: 2Mbs}}}]", `line 1: hosts[0].up.capacity.rate 2Mbs: unknown unit "Mbs": use bps, kbps, Mbps or Gbps`},
		{"queue in bits", "hosts: [{name: a, up: {capacity: {rate: 1Mbps, queue: 64kb}}}]", `line 1: hosts[0].up.capacity.queue 64kb: unit "kb" is bits or a rate: a queue is bytes (B, KB, MB) or a time (ms)`},
		{"queue without rate", "hosts: [{name: a, up: {capacity: {queue: 100ms}}}]", "line 1: hosts[0].up.capacity.rate: required with a queue (or give capacity_trace)"},
		{"duplicate host", "hosts:\n  - name: a\n  - name: b\n  - name: a\n", "line 4: hosts[2].name a: duplicate host name (first at line 2)"},
		{"ip outside cidr", "cidr: 10.77.0.0/16\nhosts:\n  - {name: a, ip: 10.78.0.1}\n", "line 3: hosts[0].ip 10.78.0.1: not in cidr 10.77.0.0/16"},
		{"duplicate ip", "hosts:\n  - {name: a, ip: 10.77.0.5}\n  - {name: b, ip: 10.77.0.5}\n", "line 3: hosts[1].ip 10.77.0.5: duplicate address (first at line 2)"},
		{"network address", "cidr: 10.1.2.0/24\nhosts: [{name: a, ip: 10.1.2.0}]", "line 2: hosts[0].ip 10.1.2.0: is the network or broadcast address of 10.1.2.0/24"},
		{"not an ip", "hosts: [{name: a, ip: gateway}]", "line 1: hosts[0].ip gateway: must be an IPv4 address"},
		{"cidr host bits", "cidr: 10.77.1.0/16\nhosts: [{name: a}]", "line 1: cidr 10.77.1.0/16: has host bits set: write 10.77.0.0/16"},
		{"missing name", "hosts:\n  - ip: 10.77.0.3\n", "line 2: hosts[0].name: required"},
		{"bad host name", "hosts: [{name: 'my host'}]", "line 1: hosts[0].name my host: must be letters, digits, '.', '_' or '-', starting with a letter or digit"},
		{"no hosts", "name: x\n", "line 1: hosts: required: at least one host"},
		{"empty hosts", "hosts: []\n", "line 1: hosts: required: at least one host"},
		{"hosts not a list", "hosts: {name: a}\n", "line 1: hosts: must be a list"},
		{"duplicate key", "hosts:\n  - name: a\n    up: {delay: {base: 1ms}}\n    up: {delay: {base: 2ms}}\n", "line 4: hosts[0].up: duplicate key (first at line 3)"},
		{"probability over 1", "hosts: [{name: a, up: {loss: {rate: 1.5}}}]", "line 1: hosts[0].up.loss.rate 1.5: must be between 0 and 1 (or a percentage such as 5%)"},
		{"percentage over 100", "hosts: [{name: a, up: {loss: {rate: 150%}}}]", "line 1: hosts[0].up.loss.rate 150%: must be between 0% and 100%"},
		{"zero bernoulli", "hosts: [{name: a, up: {loss: {kind: bernoulli}}}]", "line 1: hosts[0].up.loss.rate: required for bernoulli, > 0 (use kind: none for no loss)"},
		{"gilbert without r", "hosts: [{name: a, up: {loss: {kind: gilbert-elliott, p: 0.01}}}]", "line 1: hosts[0].up.loss.r: required for gilbert-elliott, > 0 (the chance to leave the bad state)"},
		{"mixed loss keys", "hosts: [{name: a, up: {loss: {rate: 0.01, p: 0.1}}}]", "line 1: hosts[0].up.loss: rate is bernoulli's, p gilbert-elliott's: give kind, or keys of one model"},
		{"stray loss key", "hosts: [{name: a, up: {loss: {kind: bernoulli, rate: 0.01, r: 0.1}}}]", "line 1: hosts[0].up.loss.r: not a key of loss kind bernoulli"},
		{"unknown loss kind", "hosts: [{name: a, up: {loss: {kind: burst}}}]", "line 1: hosts[0].up.loss.kind burst: must be none, bernoulli or gilbert-elliott"},
		{"duration without unit", "hosts: [{name: a, up: {delay: {base: 40}}}]", "line 1: hosts[0].up.delay.base 40: needs a unit, as in 40ms or 1.5s"},
		{"negative delay", "hosts: [{name: a, up: {delay: {base: -5ms}}}]", "line 1: hosts[0].up.delay.base -5ms: must be >= 0"},
		{"std on uniform", "hosts: [{name: a, up: {delay: {jitter: {dist: uniform, mean: 5ms, std: 1ms}}}}]", "line 1: hosts[0].up.delay.jitter.std: not a key of dist uniform (its keys: dist, mean)"},
		{"normal without std", "hosts: [{name: a, up: {delay: {jitter: {dist: normal, mean: 5ms}}}}]", "line 1: hosts[0].up.delay.jitter.std: required for dist normal"},
		{"uniform zero mean", "hosts: [{name: a, up: {delay: {jitter: {dist: uniform, mean: 0s}}}}]", "line 1: hosts[0].up.delay.jitter.mean 0s: must be > 0"},
		{"pareto shape", "hosts: [{name: a, up: {delay: {jitter: {dist: pareto, mean: 5ms, shape: 1}}}}]", "line 1: hosts[0].up.delay.jitter.shape 1: must be > 1 (a Pareto distribution of shape <= 1 has no mean)"},
		{"reorder without jitter", "hosts: [{name: a, up: {delay: {base: 5ms, reorder: true}}}]", "line 1: hosts[0].up.delay.reorder true: has no effect without jitter"},
		{"outage zero duration", "hosts: [{name: a, up: {outages: [{start: 1s, duration: 0s}]}}]", "line 1: hosts[0].up.outages[0].duration 0s: must be > 0"},
		{"outage after duration", "duration: 10s\nhosts: [{name: a, up: {outages: [{start: 10s, duration: 1s}]}}]", "line 2: hosts[0].up.outages[0].start 10s: at or after the scenario's duration 10s"},
		{"schedule after duration", "duration: 10s\nhosts:\n  - name: a\n    up:\n      schedule:\n        - {at: 12s, down: true}\n", "line 6: hosts[0].up.schedule[0].at 12s: at or after the scenario's duration 10s"},
		{"schedule not increasing", "hosts:\n  - name: a\n    up:\n      schedule:\n        - {at: 2s, down: true}\n        - {at: 1s, down: false}\n", "line 6: hosts[0].up.schedule[1].at 1s: must be after the previous entry's 2s"},
		{"schedule without at", "hosts: [{name: a, up: {schedule: [{down: true}]}}]", "line 1: hosts[0].up.schedule[0].at: required"},
		{"empty schedule entry", "hosts: [{name: a, up: {schedule: [{at: 1s}]}}]", "line 1: hosts[0].up.schedule[0]: changes nothing: give at least one of loss, delay, capacity, down"},
		{"down not bool", "hosts: [{name: a, up: {schedule: [{at: 1s, down: yes}]}}]", "line 1: hosts[0].up.schedule[0].down yes: must be true or false"},
		{"duplicate needs rate", "hosts: [{name: a, up: {duplicate: {delay: 1ms}}}]", "line 1: hosts[0].up.duplicate.rate: required"},
		{"seed not integer", "seed: 1.5\nhosts: [{name: a}]", "line 1: seed 1.5: must be an integer (int64)"},
		{"scalar where mapping", "hosts: [{name: a, up: {loss: 5%}}]", "line 1: hosts[0].up.loss 5%: must be a mapping with keys kind, rate, p, r, loss_good, loss_bad"},
		{"list where value", "hosts: [{name: a, up: {delay: {base: [1ms]}}}]", "line 1: hosts[0].up.delay.base: must be a single value, not a list or mapping"},
		{"trace bad row", "hosts:\n  - name: a\n    up: {capacity: {queue: 100ms}, capacity_trace: bad.csv}\n",
			"line 3: hosts[0].up.capacity_trace bad.csv: " + filepath.Join(dir, "bad.csv") + ":3: capacity 0: must be > 0 (take a link down with an outage)"},
		{"trace missing", "hosts:\n  - name: a\n    up: {capacity_trace: missing.csv}\n",
			"line 3: hosts[0].up.capacity_trace missing.csv: open " + filepath.Join(dir, "missing.csv") + ": no such file or directory"},
		{"trace after duration", "duration: 30s\nhosts:\n  - name: a\n    up: {capacity_trace: long.csv}\n",
			"line 4: hosts[0].up.capacity_trace long.csv:2.at 40s: at or after the scenario's duration 30s"},
		{"two documents", "hosts: [{name: a}]\n---\nhosts: [{name: b}]\n", "line 3: scenario: more than one YAML document (--- separator): one scenario per file"},
		{"empty", "", "scenario: empty document"},
		{"not a mapping", "- a\n- b\n", "line 1: : must be a mapping with keys name, seed, cidr, duration, hosts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.in), dir)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msgs := strings.Split(err.Error(), "\n")
			for _, m := range msgs {
				if m == tc.want {
					return
				}
			}
			t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(msgs, "\n  "), tc.want)
		})
	}
}

func TestParseScenarioSyntaxError(t *testing.T) {
	_, err := ParseScenario([]byte("hosts: [{name: a\n"), "")
	var se *ScenarioError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "line") {
		t.Fatalf("error %v, want a ScenarioError quoting yaml's line", err)
	}
}

func TestLoadScenarioErrorsNameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte("name: x\nhosts:\n  - name: a\n    up: {loss: {rat: 1}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadScenario(path)
	want := path + ":4: hosts[0].up.loss.rat: unknown key (known: kind, rate, p, r, loss_good, loss_bad)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant it to contain %q", err, want)
	}
	var se *ScenarioError
	if !errors.As(err, &se) || se.File != path || se.Line != 4 || se.Path != "hosts[0].up.loss.rat" {
		t.Errorf("ScenarioError = %+v", se)
	}
}

func TestParseScenarioReportsEveryError(t *testing.T) {
	_, err := ParseScenario([]byte("hosts:\n  - {name: a, up: {loss: {rate: 2}}}\n  - {name: a, bogus: 1}\n"), "")
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Errorf("%d errors, want 3:\n%v", n, err)
	}
}

func TestParseRateAndQueue(t *testing.T) {
	rates := map[string]int64{"2Mbps": 2e6, "500kbps": 5e5, "500Kbps": 5e5, "1000000": 1e6, "1e6": 1e6, "2.5 Mbit/s": 2.5e6, "1Gbps": 1e9, "64000bps": 64000, "unlimited": 0}
	for in, want := range rates {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "0", "0Mbps", "-1Mbps", "10bps", "2MBps", "2 MB/s", "1Tbps", "2Mbps2"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, want an error", in, got)
		}
	}
	queues := map[string]CapacityModel{"64KB": {QueueBytes: 64000}, "64kB": {QueueBytes: 64000}, "64KiB": {QueueBytes: 65536}, "1MiB": {QueueBytes: 1 << 20}, "1500": {QueueBytes: 1500}, "1500B": {QueueBytes: 1500}, "100ms": {QueueDelay: 100 * time.Millisecond}}
	for in, want := range queues {
		if got, err := parseQueue(in); err != nil || got != want {
			t.Errorf("parseQueue(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "0ms", "-5ms", "-1KB", "64kb", "1Mbps", "lots", "2GB"} {
		if got, err := parseQueue(in); err == nil {
			t.Errorf("parseQueue(%q) = %+v, want an error", in, got)
		}
	}
}

func TestScenarioMapsConfigErrorsToKeyPaths(t *testing.T) {
	p := &scenarioParser{file: "s.yaml"}
	cfg := LinkConfig{
		Loss:     LossModel{Kind: LossBernoulli, Rate: 2},
		Schedule: []Phase{{At: time.Second, Capacity: &CapacityModel{Rate: -1}}},
	}
	p.configErrors(nil, "hosts[3].down", []string{"hosts[3].down.schedule[1]"}, ValidateLinkConfig(cfg))
	got := p.err().Error()
	for _, want := range []string{
		"s.yaml: hosts[3].down.loss.rate 2: must be within 0..1",
		"s.yaml: hosts[3].down.schedule[1].capacity.rate -1: must be >= 0 bit/s (0: unlimited)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors:\n%s\nwant a line %q", got, want)
		}
	}
}
