package netem

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is a network described in a YAML file, so users write scenarios without Go: the
// hosts, and for each host the model of its uplink and downlink. fixtures/scenarios/README.md
// describes every key with its unit; fixtures/scenarios/example.yaml uses them all.
//
//	name: rfc8867-5.1
//	seed: 42
//	cidr: 10.77.0.0/16
//	duration: 100s
//	hosts:
//	  - name: sender
//	    up:
//	      delay: {base: 50ms, jitter: {dist: normal, mean: 5ms, std: 2ms}}
//	      capacity: {queue: 300ms}
//	      capacity_trace: ../traces/rfc8867-5.1.csv
//	  - name: receiver
//	    ip: 10.77.0.20
//
// Parsing is strict: an unknown key, a value of the wrong unit or out of range, a duplicate
// host name or address, an address outside cidr, or a schedule past duration is an error that
// names the file, the line, the key path (hosts[0].up.loss.rate) and why.
type Scenario struct {
	// Name names the scenario in reports; it defaults to the file's base name.
	Name string
	// Seed seeds the network's random models (WithSeed); 0 keeps the network's default.
	Seed int64
	// CIDR is the network's address plan (DefaultCIDR when empty).
	CIDR string
	// Duration is how long the scenario runs; 0 leaves it to the caller.
	Duration time.Duration
	Hosts    []HostSpec
}

// HostSpec is one host of a scenario and the two directions of its link to the network: Up
// carries what the host sends, Down what it receives.
type HostSpec struct {
	// Name is unique within the scenario; IP is empty for the next free address.
	Name, IP string
	Up, Down LinkConfig
}

// ScenarioError is one problem found in a scenario file. ParseScenario and LoadScenario return
// every problem they find, joined (errors.Join); errors.As finds the first.
type ScenarioError struct {
	File string // the file's path, or "" for ParseScenario
	Line int    // 1-based; 0 when the problem is the whole document
	Path string // key path, as hosts[1].up.loss.rate
	// Value is the offending value as written, "" when the key itself is the problem.
	Value string
	Msg   string
}

func (e *ScenarioError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Path)
	if e.Value != "" {
		b.WriteString(" " + e.Value)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// maxScenarioErrors bounds the report of a badly broken file: the first ones say what is wrong.
const maxScenarioErrors = 20

// LoadScenario reads and parses a scenario file; capacity traces it names are read relative to
// the file's directory.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("netem: scenario: %w", err)
	}
	s, err := parseScenario(data, filepath.Dir(path), path)
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return s, nil
}

// ParseScenario parses a scenario; capacity traces it names are read relative to baseDir.
// Errors name lines ("line 14: ...") since there is no file name.
func ParseScenario(data []byte, baseDir string) (*Scenario, error) {
	return parseScenario(data, baseDir, "")
}

func parseScenario(data []byte, baseDir, file string) (*Scenario, error) {
	p := &scenarioParser{file: file, baseDir: baseDir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.fail(nil, "scenario", "", "empty document")
			return nil, p.err()
		}
		// yaml.v3 syntax errors already say "yaml: line N: ...".
		return nil, &ScenarioError{File: file, Path: "scenario", Msg: err.Error()}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.fail(resolve(&extra), "scenario", "", "more than one YAML document (--- separator): one scenario per file")
	}
	s := p.scenario(&doc)
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// scenarioParser walks the yaml.v3 node tree rather than decoding into structs: nodes carry the
// line numbers the error messages need, and it sees every key, so unknown ones are reported.
type scenarioParser struct {
	file, baseDir string
	errs          []error
}

func (p *scenarioParser) fail(n *yaml.Node, path, value, format string, args ...any) {
	if len(p.errs) >= maxScenarioErrors {
		return
	}
	e := &ScenarioError{File: p.file, Path: path, Value: value, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	p.errs = append(p.errs, e)
}

func (p *scenarioParser) err() error { return errors.Join(p.errs...) }

// markInvalid, deferred with the call evaluated at once, sets *invalid when errors were reported
// in between.
func (p *scenarioParser) markInvalid(invalid *bool) func() {
	before := len(p.errs)
	return func() { *invalid = *invalid || len(p.errs) > before }
}

// field is one key of a mapping and its value.
type field struct {
	key, val *yaml.Node
	path     string
}

// mapping returns the fields of a mapping node by key, reporting keys outside known and
// duplicate keys (which yaml.v3's Node API lets through). It returns nil when n is not a mapping.
func (p *scenarioParser) mapping(n *yaml.Node, path string, known ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, scalarText(n), "must be a mapping with keys %s", strings.Join(known, ", "))
		return nil
	}
	fields := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kpath := join(path, k.Value)
		switch {
		case !slices.Contains(known, k.Value):
			p.fail(k, kpath, "", "unknown key (known: %s)", strings.Join(known, ", "))
		case fields[k.Value].key != nil:
			p.fail(k, kpath, "", "duplicate key (first at line %d)", fields[k.Value].key.Line)
		default:
			fields[k.Value] = field{key: k, val: resolve(v), path: kpath}
		}
	}
	return fields
}

// sequence returns the items of a sequence node, or nil (reported) when n is not one.
func (p *scenarioParser) sequence(n *yaml.Node, path string) []*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, scalarText(n), "must be a list")
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items
}

// scalar returns the text of a scalar value, reporting other kinds.
func (p *scenarioParser) scalar(f field) (string, bool) {
	if f.val.Kind != yaml.ScalarNode {
		p.fail(f.val, f.path, "", "must be a single value, not a list or mapping")
		return "", false
	}
	return f.val.Value, true
}

// value parses a scalar field with parse, reporting "path value: why" on failure.
func value[T any](p *scenarioParser, f field, parse func(string) (T, error)) (T, bool) {
	var zero T
	s, ok := p.scalar(f)
	if !ok {
		return zero, false
	}
	v, err := parse(s)
	if err != nil {
		p.fail(f.val, f.path, s, "%v", err)
		return zero, false
	}
	return v, true
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func scalarText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (p *scenarioParser) scenario(doc *yaml.Node) *Scenario {
	s := &Scenario{}
	top := p.mapping(doc, "", "name", "seed", "cidr", "duration", "hosts")
	if top == nil {
		return s
	}
	if f, ok := top["name"]; ok {
		s.Name, _ = value(p, f, parseName)
	}
	if f, ok := top["seed"]; ok {
		s.Seed, _ = value(p, f, parseSeed)
	}
	prefix, _ := netip.ParsePrefix(DefaultCIDR)
	s.CIDR = DefaultCIDR
	if f, ok := top["cidr"]; ok {
		if pr, ok := value(p, f, parseCIDR); ok {
			prefix, s.CIDR = pr, pr.String()
		}
	}
	if f, ok := top["duration"]; ok {
		s.Duration, _ = value(p, f, parseNonNegativeDuration)
	}
	f, ok := top["hosts"]
	if !ok {
		p.fail(doc.Content[0], "hosts", "", "required: at least one host")
		return s
	}
	items := p.sequence(f.val, "hosts")
	if f.val.Kind == yaml.SequenceNode && len(items) == 0 {
		p.fail(f.val, "hosts", "", "required: at least one host")
	}
	names := map[string]int{}
	ips := map[netip.Addr]int{}
	for i, item := range items {
		path := fmt.Sprintf("hosts[%d]", i)
		h := p.host(item, path, s.Duration)
		if h.Name != "" {
			if line, dup := names[h.Name]; dup {
				p.fail(item, path+".name", h.Name, "duplicate host name (first at line %d)", line)
			}
			names[h.Name] = item.Line
		}
		if h.IP != "" {
			addr, err := netip.ParseAddr(h.IP)
			switch {
			case err != nil || !addr.Is4():
				p.fail(item, path+".ip", h.IP, "must be an IPv4 address")
			case !prefix.Contains(addr):
				p.fail(item, path+".ip", h.IP, "not in cidr %s", prefix)
			case addr == prefix.Addr() || (prefix.Bits() < 31 && addr == lastAddr(prefix)):
				p.fail(item, path+".ip", h.IP, "is the network or broadcast address of %s", prefix)
			default:
				if line, dup := ips[addr]; dup {
					p.fail(item, path+".ip", h.IP, "duplicate address (first at line %d)", line)
				}
				ips[addr] = item.Line
			}
		}
		s.Hosts = append(s.Hosts, h)
	}
	return s
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<hostBits - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (p *scenarioParser) host(n *yaml.Node, path string, duration time.Duration) HostSpec {
	var h HostSpec
	fields := p.mapping(n, path, "name", "ip", "up", "down")
	if fields == nil {
		return h
	}
	if f, ok := fields["name"]; ok {
		h.Name, _ = value(p, f, parseName)
	} else {
		p.fail(n, path+".name", "", "required")
	}
	if f, ok := fields["ip"]; ok {
		h.IP, _ = p.scalar(f)
	}
	if f, ok := fields["up"]; ok {
		h.Up = p.direction(f.val, f.path, duration)
	}
	if f, ok := fields["down"]; ok {
		h.Down = p.direction(f.val, f.path, duration)
	}
	return h
}

// directionKeys are the keys of up: and down:.
var directionKeys = []string{"loss", "outages", "delay", "capacity", "duplicate", "schedule", "capacity_trace", "seed"}

// schedulePatch is one schedule entry or trace row before it is resolved against the models in
// force at its instant: fields a phase omits keep their value.
type schedulePatch struct {
	at       time.Duration
	node     *yaml.Node
	path     string
	loss     *lossPatch
	delay    *delayPatch
	capacity *capacityPatch
	down     *bool
	// traceRow marks a capacity_trace row; node is then the capacity_trace value.
	traceRow bool
}

func (p *scenarioParser) direction(n *yaml.Node, path string, duration time.Duration) LinkConfig {
	var cfg LinkConfig
	errsBefore := len(p.errs)
	fields := p.mapping(n, path, directionKeys...)
	if fields == nil {
		return cfg
	}
	if f, ok := fields["seed"]; ok {
		cfg.Seed, _ = value(p, f, parseSeed)
	}
	if f, ok := fields["loss"]; ok {
		if lp := p.loss(f.val, f.path); lp != nil && !lp.invalid {
			cfg.Loss = p.checkLoss(lp.apply(LossModel{}), f)
		}
	}
	if f, ok := fields["delay"]; ok {
		if dp := p.delay(f.val, f.path); dp != nil && !dp.invalid {
			cfg.Delay = p.checkDelay(dp.apply(DelayModel{}), f)
		}
	}
	if f, ok := fields["capacity"]; ok {
		if cp := p.capacity(f.val, f.path); cp != nil && !cp.invalid {
			_, hasTrace := fields["capacity_trace"]
			cfg.Capacity = p.checkCapacity(cp.apply(CapacityModel{}), f, hasTrace)
		}
	}
	if f, ok := fields["duplicate"]; ok {
		cfg.Duplicate = p.duplicate(f.val, f.path)
	}
	if f, ok := fields["outages"]; ok {
		for i, item := range p.sequence(f.val, f.path) {
			ipath := fmt.Sprintf("%s[%d]", f.path, i)
			if o, ok := p.outage(item, ipath); ok {
				if duration > 0 && o.Start >= duration {
					p.fail(item, ipath+".start", o.Start.String(), "at or after the scenario's duration %s", duration)
				}
				cfg.Outages = append(cfg.Outages, o)
			}
		}
	}
	var patches []schedulePatch
	if f, ok := fields["schedule"]; ok {
		var last time.Duration = -1
		for i, item := range p.sequence(f.val, f.path) {
			ipath := fmt.Sprintf("%s[%d]", f.path, i)
			sp, ok := p.phase(item, ipath)
			if !ok {
				continue
			}
			if sp.at <= last {
				p.fail(item, ipath+".at", sp.at.String(), "must be after the previous entry's %s", last)
			}
			last = sp.at
			patches = append(patches, sp)
		}
	}
	if f, ok := fields["capacity_trace"]; ok {
		patches = append(patches, p.trace(f)...)
	}
	if duration > 0 {
		for _, sp := range patches {
			if sp.at >= duration {
				p.fail(sp.node, sp.path+".at", sp.at.String(), "at or after the scenario's duration %s", duration)
			}
		}
	}
	// Trace rows and schedule entries interleave in time; at the same instant the schedule
	// entry (written by hand) applies after the trace row, so it wins.
	slices.SortStableFunc(patches, func(a, b schedulePatch) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		switch {
		case a.traceRow && !b.traceRow:
			return -1
		case !a.traceRow && b.traceRow:
			return 1
		}
		return 0
	})
	cfg.Schedule = p.resolveSchedule(cfg, patches)
	// Phases at 0 are the starting models: fold them in, so the link never runs a moment
	// without them (a trace's first row is usually at 0).
	for len(cfg.Schedule) > 0 && cfg.Schedule[0].At == 0 && cfg.Schedule[0].Down == nil {
		ph := cfg.Schedule[0]
		if ph.Loss != nil {
			cfg.Loss = *ph.Loss
		}
		if ph.Delay != nil {
			cfg.Delay = *ph.Delay
		}
		if ph.Capacity != nil {
			cfg.Capacity = *ph.Capacity
		}
		cfg.Schedule = cfg.Schedule[1:]
	}
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = nil
	}
	if cfg.Capacity.Rate == 0 {
		// A queue kept for a trace that starts later: no bottleneck until then.
		cfg.Capacity = CapacityModel{}
	}
	if len(p.errs) == errsBefore {
		// The checks above are stricter than the network's; this catches a model the parser
		// let through but Direction.Set would refuse, with the key path of the file.
		phasePaths := make([]string, len(cfg.Schedule))
		for i := range phasePaths {
			phasePaths[i] = patches[len(patches)-len(cfg.Schedule)+i].path
		}
		p.configErrors(n, path, phasePaths, ValidateLinkConfig(cfg))
	}
	return cfg
}

// configErrors reports ValidateLinkConfig's errors at the direction's node, with their fields
// turned into the file's key paths: "schedule[k]" is the k-th phase after merging the
// capacity trace and folding the phases at 0, named by phasePaths.
func (p *scenarioParser) configErrors(n *yaml.Node, path string, phasePaths []string, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			p.fail(n, path, "", "%v", e)
			continue
		}
		field := join(path, ce.Field)
		var k int
		var rest string
		if _, scanErr := fmt.Sscanf(ce.Field, "schedule[%d]%s", &k, &rest); scanErr == nil && k >= 0 && k < len(phasePaths) {
			field = phasePaths[k] + rest
		}
		p.fail(n, field, fmt.Sprint(ce.Value), "%s", ce.Reason)
	}
}

// resolveSchedule turns patches, in time order, into phases carrying whole models: each starts
// from the model in force just before it (the direction's own, changed by earlier phases).
func (p *scenarioParser) resolveSchedule(cfg LinkConfig, patches []schedulePatch) []Phase {
	if len(patches) == 0 {
		return nil
	}
	loss, delay, capacity := cfg.Loss, cfg.Delay, cfg.Capacity
	phases := make([]Phase, 0, len(patches))
	for _, sp := range patches {
		ph := Phase{At: sp.at, Down: sp.down}
		if sp.loss != nil {
			loss = sp.loss.apply(loss)
			if !sp.loss.invalid {
				p.checkLoss(loss, field{val: sp.node, path: sp.path + ".loss"})
			}
			ph.Loss = ptr(loss)
		}
		if sp.delay != nil {
			delay = sp.delay.apply(delay)
			if !sp.delay.invalid {
				p.checkDelay(delay, field{val: sp.node, path: sp.path + ".delay"})
			}
			ph.Delay = ptr(delay)
		}
		if sp.capacity != nil {
			capacity = sp.capacity.apply(capacity)
			if !sp.capacity.invalid {
				p.checkCapacity(capacity, field{val: sp.node, path: sp.path + ".capacity"}, false)
			}
			ph.Capacity = ptr(capacity)
		}
		phases = append(phases, ph)
	}
	return phases
}

func ptr[T any](v T) *T { return &v }

func (p *scenarioParser) phase(n *yaml.Node, path string) (schedulePatch, bool) {
	sp := schedulePatch{node: n, path: path}
	fields := p.mapping(n, path, "at", "loss", "delay", "capacity", "down")
	if fields == nil {
		return sp, false
	}
	f, ok := fields["at"]
	if !ok {
		p.fail(n, path+".at", "", "required")
		return sp, false
	}
	if sp.at, ok = value(p, f, parseNonNegativeDuration); !ok {
		return sp, false
	}
	if f, ok := fields["loss"]; ok {
		sp.loss = p.loss(f.val, f.path)
	}
	if f, ok := fields["delay"]; ok {
		sp.delay = p.delay(f.val, f.path)
	}
	if f, ok := fields["capacity"]; ok {
		sp.capacity = p.capacity(f.val, f.path)
	}
	if f, ok := fields["down"]; ok {
		if b, ok := value(p, f, parseBool); ok {
			sp.down = &b
		}
	}
	if len(fields) == 1 {
		p.fail(n, path, "", "changes nothing: give at least one of loss, delay, capacity, down")
	}
	return sp, true
}

func (p *scenarioParser) outage(n *yaml.Node, path string) (Outage, bool) {
	var o Outage
	fields := p.mapping(n, path, "start", "duration")
	if fields == nil {
		return o, false
	}
	okAll := true
	for _, k := range []string{"start", "duration"} {
		f, ok := fields[k]
		if !ok {
			p.fail(n, path+"."+k, "", "required")
			okAll = false
			continue
		}
		parse := parseNonNegativeDuration
		if k == "duration" {
			parse = parsePositiveDuration
		}
		d, ok := value(p, f, parse)
		okAll = okAll && ok
		if k == "start" {
			o.Start = d
		} else {
			o.Duration = d
		}
	}
	return o, okAll
}

func (p *scenarioParser) duplicate(n *yaml.Node, path string) DuplicateModel {
	var d DuplicateModel
	fields := p.mapping(n, path, "rate", "delay")
	if fields == nil {
		return d
	}
	if f, ok := fields["rate"]; ok {
		d.Rate, _ = value(p, f, parseProbability)
	} else {
		p.fail(n, path+".rate", "", "required")
	}
	if f, ok := fields["delay"]; ok {
		d.Delay, _ = value(p, f, parseNonNegativeDuration)
	}
	return d
}

// lossPatch is a loss: mapping; kind is explicit or inferred from the keys given.
type lossPatch struct {
	kind                  LossKind
	rate, p, r, good, bad *float64
	// invalid: a value was reported already; checks of the result would only repeat it.
	invalid bool
}

var lossKeys = []string{"kind", "rate", "p", "r", "loss_good", "loss_bad"}

func (p *scenarioParser) loss(n *yaml.Node, path string) *lossPatch {
	fields := p.mapping(n, path, lossKeys...)
	if fields == nil {
		return nil
	}
	lp := &lossPatch{}
	defer p.markInvalid(&lp.invalid)()
	prob := func(k string) *float64 {
		f, ok := fields[k]
		if !ok {
			return nil
		}
		v, ok := value(p, f, parseProbability)
		if !ok {
			return nil
		}
		return &v
	}
	lp.rate, lp.p, lp.r, lp.good, lp.bad = prob("rate"), prob("p"), prob("r"), prob("loss_good"), prob("loss_bad")
	_, hasRate := fields["rate"]
	var geKeys []string
	for _, k := range []string{"p", "r", "loss_good", "loss_bad"} {
		if _, ok := fields[k]; ok {
			geKeys = append(geKeys, k)
		}
	}
	if f, ok := fields["kind"]; ok {
		k, ok := value(p, f, parseLossKind)
		if !ok {
			return nil
		}
		lp.kind = k
	} else {
		switch {
		case hasRate && len(geKeys) > 0:
			p.fail(n, path, "", "rate is bernoulli's, %s gilbert-elliott's: give kind, or keys of one model", strings.Join(geKeys, ", "))
			return nil
		case hasRate:
			lp.kind = LossBernoulli
		case len(geKeys) > 0:
			lp.kind = LossGilbertElliott
		default:
			p.fail(n, path, "", "give kind (none, bernoulli, gilbert-elliott) or the model's keys")
			return nil
		}
	}
	// Keys of another model than kind are mistakes, not extras to ignore.
	var stray []string
	if hasRate && lp.kind != LossBernoulli {
		stray = append(stray, "rate")
	}
	if lp.kind != LossGilbertElliott {
		stray = append(stray, geKeys...)
	}
	for _, k := range stray {
		f := fields[k]
		p.fail(f.key, f.path, "", "not a key of loss kind %s", kindName(lp.kind))
	}
	return lp
}

func kindNameJitter(k JitterKind) string {
	if k == JitterNone {
		return "none"
	}
	return string(k)
}

func kindName(k LossKind) string {
	if k == LossNone {
		return "none"
	}
	return string(k)
}

// apply returns the model in force after this patch: parameters it omits keep their value when
// the kind stays the same; a new kind starts from its defaults (Gilbert's model: loss_good 0,
// loss_bad 1).
func (lp *lossPatch) apply(cur LossModel) LossModel {
	m := cur
	if lp.kind != cur.Kind {
		m = LossModel{Kind: lp.kind}
		if lp.kind == LossGilbertElliott {
			m.LossBad = 1
		}
	}
	set := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&m.Rate, lp.rate)
	set(&m.P, lp.p)
	set(&m.R, lp.r)
	set(&m.LossGood, lp.good)
	set(&m.LossBad, lp.bad)
	return m
}

func (p *scenarioParser) checkLoss(m LossModel, f field) LossModel {
	switch m.Kind {
	case LossBernoulli:
		if m.Rate == 0 {
			p.fail(f.val, f.path+".rate", "", "required for bernoulli, > 0 (use kind: none for no loss)")
		}
	case LossGilbertElliott:
		if m.P == 0 {
			p.fail(f.val, f.path+".p", "", "required for gilbert-elliott, > 0 (the chance to enter the bad state)")
		}
		if m.R == 0 {
			p.fail(f.val, f.path+".r", "", "required for gilbert-elliott, > 0 (the chance to leave the bad state)")
		}
	}
	return m
}

// delayPatch is a delay: mapping; a jitter: mapping replaces the whole jitter model.
type delayPatch struct {
	invalid bool
	base    *time.Duration
	jitter  *DelayModel // Jitter, Mean, Std, Shape only
	reorder *bool
}

var jitterKeys = map[JitterKind][]string{
	JitterNone:        {"dist"},
	JitterUniform:     {"dist", "mean"},
	JitterNormal:      {"dist", "mean", "std"},
	JitterExponential: {"dist", "mean"},
	JitterPareto:      {"dist", "mean", "shape"},
}

func (p *scenarioParser) delay(n *yaml.Node, path string) *delayPatch {
	fields := p.mapping(n, path, "base", "jitter", "reorder")
	if fields == nil {
		return nil
	}
	dp := &delayPatch{}
	defer p.markInvalid(&dp.invalid)()
	if f, ok := fields["base"]; ok {
		if d, ok := value(p, f, parseNonNegativeDuration); ok {
			dp.base = &d
		}
	}
	if f, ok := fields["reorder"]; ok {
		if b, ok := value(p, f, parseBool); ok {
			dp.reorder = &b
		}
	}
	if f, ok := fields["jitter"]; ok {
		dp.jitter = p.jitter(f.val, f.path)
	}
	return dp
}

func (p *scenarioParser) jitter(n *yaml.Node, path string) *DelayModel {
	fields := p.mapping(n, path, "dist", "mean", "std", "shape")
	if fields == nil {
		return nil
	}
	f, ok := fields["dist"]
	if !ok {
		p.fail(n, path+".dist", "", "required: none, uniform, normal, exponential or pareto")
		return nil
	}
	kind, ok := value(p, f, parseJitterKind)
	if !ok {
		return nil
	}
	j := &DelayModel{Jitter: kind}
	known := jitterKeys[kind]
	for k, f := range fields {
		if !slices.Contains(known, k) {
			p.fail(f.key, f.path, "", "not a key of dist %s (its keys: %s)", kindNameJitter(kind), strings.Join(known, ", "))
		}
	}
	if f, ok := fields["mean"]; ok {
		parse := parsePositiveDuration
		if kind == JitterNormal {
			parse = parseNonNegativeDuration
		}
		j.Mean, _ = value(p, f, parse)
	} else if kind != JitterNormal && kind != JitterNone {
		p.fail(n, path+".mean", "", "required for dist %s", kind)
	}
	if f, ok := fields["std"]; ok {
		j.Std, _ = value(p, f, parsePositiveDuration)
	} else if kind == JitterNormal {
		p.fail(n, path+".std", "", "required for dist normal")
	}
	if f, ok := fields["shape"]; ok {
		j.Shape, _ = value(p, f, parseParetoShape)
	}
	return j
}

func (dp *delayPatch) apply(cur DelayModel) DelayModel {
	m := cur
	if dp.base != nil {
		m.Base = *dp.base
	}
	if dp.reorder != nil {
		m.Reorder = *dp.reorder
	}
	if dp.jitter != nil {
		m.Jitter, m.Mean, m.Std, m.Shape = dp.jitter.Jitter, dp.jitter.Mean, dp.jitter.Std, dp.jitter.Shape
	}
	return m
}

func (p *scenarioParser) checkDelay(m DelayModel, f field) DelayModel {
	if m.Reorder && m.Jitter == JitterNone {
		p.fail(f.val, f.path+".reorder", "true", "has no effect without jitter")
	}
	return m
}

// capacityPatch is a capacity: mapping.
type capacityPatch struct {
	invalid bool
	rate    *int64 // 0: unlimited
	queue   *CapacityModel
}

func (p *scenarioParser) capacity(n *yaml.Node, path string) *capacityPatch {
	fields := p.mapping(n, path, "rate", "queue")
	if fields == nil {
		return nil
	}
	cp := &capacityPatch{}
	defer p.markInvalid(&cp.invalid)()
	if f, ok := fields["rate"]; ok {
		if r, ok := value(p, f, parseRate); ok {
			cp.rate = &r
		}
	}
	if f, ok := fields["queue"]; ok {
		if q, ok := value(p, f, parseQueue); ok {
			cp.queue = &q
		}
	}
	if len(fields) == 0 {
		p.fail(n, path, "", "give rate, queue or both")
	}
	return cp
}

func (cp *capacityPatch) apply(cur CapacityModel) CapacityModel {
	m := cur
	if cp.rate != nil {
		m.Rate = *cp.rate
		if m.Rate == 0 {
			// unlimited: no bottleneck, so no queue either.
			m.QueueBytes, m.QueueDelay = 0, 0
		}
	}
	if cp.queue != nil {
		m.QueueBytes, m.QueueDelay = cp.queue.QueueBytes, cp.queue.QueueDelay
	}
	return m
}

// checkCapacity reports a queue with no rate to drain it, unless a capacity trace brings one.
func (p *scenarioParser) checkCapacity(m CapacityModel, f field, hasTrace bool) CapacityModel {
	if m.Rate == 0 && (m.QueueBytes > 0 || m.QueueDelay > 0) && !hasTrace {
		p.fail(f.val, f.path+".rate", "", "required with a queue (or give capacity_trace)")
	}
	return m
}

// trace reads a capacity_trace file into capacity patches: each row sets the rate, the queue
// stays as configured.
func (p *scenarioParser) trace(f field) []schedulePatch {
	name, ok := p.scalar(f)
	if !ok {
		return nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.baseDir, path)
	}
	rows, err := loadCapacityTrace(path)
	if err != nil {
		p.fail(f.val, f.path, name, "%v", err)
		return nil
	}
	patches := make([]schedulePatch, len(rows))
	for i, r := range rows {
		rate := r.rate
		// A row has no node of its own: errors point at the capacity_trace line and name the row.
		patches[i] = schedulePatch{
			at:       r.at,
			node:     f.val,
			path:     fmt.Sprintf("%s %s:%d", f.path, name, r.line),
			capacity: &capacityPatch{rate: &rate},
			traceRow: true,
		}
	}
	return patches
}
