// Package tune sweeps the parameters of the WebRTC sender's congestion control (pion's gcc
// through gateway/rtc) and of its repair (NACK, FlexFEC, RED) over a cartesian grid, runs
// every configuration on one or more BWE scenarios (lab/scenario, in virtual time), and ranks
// the configurations by an objective under constraints. `siprtc tune` is its command line.
//
// The pieces: [ParseParam] and [Grid] build the configurations from --param flags,
// [ParseScenario] names a scenario (an RFC 8867 section or a scenario file), [Apply] turns a
// configuration into the BWE case and the world it runs in, [RunAll] runs a [Job] in a test's
// synctest bubbles (parallel subtests), [Worker] and [Spawn] run it in a child process (virtual
// time needs a *testing.T, which only testing.Main gives a normal binary), [Rank] orders the
// results, and [Report] builds the HTML report and the JSON document.
package tune

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab/peers/webclient"
	"github.com/siprtc/siprtc/lab/scenario"
)

// ParamInfo documents one tunable parameter.
type ParamInfo struct {
	Name string
	// Expect is what a value looks like, as error messages say it.
	Expect string
	// Help says what the parameter sets.
	Help string
}

// knobs are a configuration's values, parsed.
type knobs struct {
	gccInitial, gccMin, gccMax int
	pacer                      rtc.BWEPacer
	nackInterval               time.Duration
	nackRetries                int // 0: the case's default; -1: unlimited
	fecMedia, fecPackets       int // 0: off
	redDistance                int // 0: off
}

type paramDef struct {
	ParamInfo
	// set parses v into k; the error says what is wrong with v (the caller names the flag).
	set func(k *knobs, v string) error
}

var params = []paramDef{
	{ParamInfo{"gcc.initial", "a bitrate in bit/s, as 300k, 1.5M or 800000",
		"gcc's target before any feedback (rtc.BWEConfig.InitialBitrate; default 300k)"},
		func(k *knobs, v string) (err error) { k.gccInitial, err = ParseBitrate(v); return }},
	{ParamInfo{"gcc.min", "a bitrate in bit/s, as 100k or 50000",
		"the floor of gcc's delay-based target (rtc.BWEConfig.MinBitrate; default 5k)"},
		func(k *knobs, v string) (err error) { k.gccMin, err = ParseBitrate(v); return }},
	{ParamInfo{"gcc.max", "a bitrate in bit/s, as 2M or 2500000",
		"the ceiling of gcc's delay-based target (rtc.BWEConfig.MaxBitrate; default 50M)"},
		func(k *knobs, v string) (err error) { k.gccMax, err = ParseBitrate(v); return }},
	{ParamInfo{"pacer", "leaky-bucket or none",
		"the pacer the sender's packets leave through (rtc.BWEConfig.Pacer; default leaky-bucket)"},
		func(k *knobs, v string) error {
			switch p := rtc.BWEPacer(v); p {
			case rtc.PacerLeakyBucket, rtc.PacerNone:
				k.pacer = p
				return nil
			}
			return errors.New("not a pacer")
		}},
	{ParamInfo{"nack.interval", "a positive duration, as 50ms or 0.2s",
		"how often the NACK generators report missing packets, the gateway's (which NACKs the client's video) and the client's (default pion's 100ms)"},
		func(k *knobs, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("not a positive duration")
			}
			k.nackInterval = d
			return nil
		}},
	{ParamInfo{"nack.retries", "a count from 1 to 65535, or unlimited",
		"how many times the NACK generators (gateway's and client's) ask for one packet (default 10; unlimited: pion's, as long as the packet is in the receive log)"},
		func(k *knobs, v string) error {
			if v == "unlimited" {
				k.nackRetries = -1
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > math.MaxUint16 {
				return errors.New("not a count from 1 to 65535")
			}
			k.nackRetries = n
			return nil
		}},
	{ParamInfo{"fec", fmt.Sprintf("off, or N+K: K FlexFEC packets for every N video packets, 1 <= K <= N <= %d", rtc.MaxFECMediaPackets),
		"FlexFEC-03 on the client's video (the gateway accepts it; with gcc the video leaves room for the FEC packets; default off)"},
		func(k *knobs, v string) error {
			if v == "off" {
				k.fecMedia, k.fecPackets = 0, 0
				return nil
			}
			ns, ks, ok := strings.Cut(v, "+")
			n, err1 := strconv.Atoi(ns)
			m, err2 := strconv.Atoi(ks)
			if !ok || err1 != nil || err2 != nil {
				return errors.New("not N+K")
			}
			if m < 1 || m > n || n > rtc.MaxFECMediaPackets {
				return fmt.Errorf("%d+%d is outside 1 <= K <= N <= %d", n, m, rtc.MaxFECMediaPackets)
			}
			k.fecMedia, k.fecPackets = n, m
			return nil
		}},
	{ParamInfo{"red.distance", fmt.Sprintf("off, or a distance from 1 to %d", rtc.MaxREDDistance),
		"RFC 2198 RED on the client's Opus audio, each packet repeating that many earlier frames (the call then uses Opus; default off: PCMU, no RED)"},
		func(k *knobs, v string) error {
			if v == "off" || v == "0" {
				k.redDistance = 0
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > rtc.MaxREDDistance {
				return fmt.Errorf("not off or a distance from 1 to %d", rtc.MaxREDDistance)
			}
			k.redDistance = n
			return nil
		}},
}

// Params documents the parameters a sweep can vary, in the order a help text lists them.
func Params() []ParamInfo {
	out := make([]ParamInfo, len(params))
	for i, p := range params {
		out[i] = p.ParamInfo
	}
	return out
}

func paramNames() string {
	var names []string
	for _, p := range params {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func lookup(name string) (paramDef, bool) {
	for _, p := range params {
		if p.Name == name {
			return p, true
		}
	}
	return paramDef{}, false
}

// ParseBitrate reads a bitrate in bit/s: a number with an optional k, M or G (x1000, x10^6,
// x10^9) and an optional "bps" or "bit/s", as 300k, 1.5M, 800000, 2Mbps. It must be positive.
func ParseBitrate(s string) (int, error) {
	v := strings.TrimSpace(s)
	v = strings.TrimSuffix(strings.TrimSuffix(v, "bps"), "bit/s")
	mult := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mult, v = 1e3, v[:n-1]
		case 'M':
			mult, v = 1e6, v[:n-1]
		case 'G':
			mult, v = 1e9, v[:n-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a bitrate", s)
	}
	b := math.Round(f * mult)
	if b < 1 || b > math.MaxInt32 {
		return 0, fmt.Errorf("bitrate %q is out of range (1 bit/s to 2G)", s)
	}
	return int(b), nil
}

// Param is one --param flag: a parameter and the values it takes, as written.
type Param struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// ParseParam reads a --param value, NAME=V1,V2,...: a known parameter (see [Params]) and one or
// more distinct values it accepts. Errors name the flag, the value and what is expected.
func ParseParam(s string) (Param, error) {
	name, list, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Param{}, fmt.Errorf("--param %q: want NAME=V1,V2,... with NAME one of %s", s, paramNames())
	}
	def, ok := lookup(name)
	if !ok {
		return Param{}, fmt.Errorf("--param %q: unknown parameter %q: want one of %s", s, name, paramNames())
	}
	p := Param{Name: name}
	for v := range strings.SplitSeq(list, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return Param{}, fmt.Errorf("--param %q: empty value: want %s=V1,V2,... each %s", s, name, def.Expect)
		}
		var k knobs
		if err := def.set(&k, v); err != nil {
			return Param{}, fmt.Errorf("--param %q: value %q of %s: %v; want %s", s, v, name, err, def.Expect)
		}
		if slices.Contains(p.Values, v) {
			return Param{}, fmt.Errorf("--param %q: value %q of %s given twice", s, v, name)
		}
		p.Values = append(p.Values, v)
	}
	return p, nil
}

// Setting is one parameter's value in a configuration.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Config is one point of the grid: a value for each swept parameter, in the order of the
// --param flags. Index is its place in the grid (the first parameter varies slowest), the
// tie-break of the ranking.
type Config struct {
	Index    int       `json:"index"`
	Settings []Setting `json:"settings"`
}

// String is the configuration as "gcc.initial=300k nack.interval=50ms" ("defaults" with no
// parameter).
func (c Config) String() string {
	if len(c.Settings) == 0 {
		return "defaults"
	}
	parts := make([]string, len(c.Settings))
	for i, s := range c.Settings {
		parts[i] = s.Name + "=" + s.Value
	}
	return strings.Join(parts, " ")
}

// Value is the configuration's value of parameter name, "" if it does not set it.
func (c Config) Value(name string) string {
	for _, s := range c.Settings {
		if s.Name == name {
			return s.Value
		}
	}
	return ""
}

// Grid is the cartesian product of params, the first varying slowest: len = the product of the
// value counts (one configuration, the defaults, with no params). A parameter given twice is
// an error.
func Grid(ps []Param) ([]Config, error) {
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			return nil, fmt.Errorf("--param %s given twice: list all its values in one flag (%s=V1,V2,...)", p.Name, p.Name)
		}
		seen[p.Name] = true
		if len(p.Values) == 0 {
			return nil, fmt.Errorf("--param %s has no value", p.Name)
		}
	}
	out := []Config{{}}
	for _, p := range ps {
		var next []Config
		for _, c := range out {
			for _, v := range p.Values {
				next = append(next, Config{Settings: append(slices.Clone(c.Settings), Setting{p.Name, v})})
			}
		}
		out = next
	}
	for i := range out {
		out[i].Index = i
	}
	return out, nil
}

// Apply sets configuration cfg on base: it returns the case to measure and the world to run it
// in (base.Config() with the gateway's side of the settings). Values are checked again, and
// so are combinations (gcc.min <= gcc.initial <= gcc.max, the defaults filling in).
func Apply(base scenario.BWECase, cfg Config) (scenario.BWECase, scenario.Config, error) {
	var k knobs
	for _, s := range cfg.Settings {
		def, ok := lookup(s.Name)
		if !ok {
			return base, scenario.Config{}, fmt.Errorf("unknown parameter %q: want one of %s", s.Name, paramNames())
		}
		if err := def.set(&k, s.Value); err != nil {
			return base, scenario.Config{}, fmt.Errorf("value %q of %s: %v; want %s", s.Value, s.Name, err, def.Expect)
		}
	}
	c := base
	c.ClientOptions = slices.Clone(base.ClientOptions)
	if k.gccInitial > 0 {
		c.BWE.InitialBitrate = k.gccInitial
	}
	if k.gccMin > 0 {
		c.BWE.MinBitrate = k.gccMin
	}
	if k.gccMax > 0 {
		c.BWE.MaxBitrate = k.gccMax
	}
	if k.pacer != "" {
		c.BWE.Pacer = k.pacer
	}
	if err := checkBWE(c.BWE); err != nil {
		return base, scenario.Config{}, fmt.Errorf("configuration %s: %w", cfg, err)
	}
	if k.nackRetries != 0 {
		c.NACKRetries, c.GatewayNACKRetries = k.nackRetries, k.nackRetries
	}
	if k.nackInterval > 0 {
		iv := k.nackInterval
		c.ClientOptions = append(c.ClientOptions, webclient.WithRTC(func(rc *rtc.Config) { rc.NACKInterval = iv }))
	}
	if k.fecMedia > 0 {
		c.ClientOptions = append(c.ClientOptions, webclient.WithFlexFEC(k.fecMedia, k.fecPackets))
	}
	if k.redDistance > 0 {
		// RED frames Opus: the call's audio must be Opus end to end (the gateway does not
		// transcode, and the phones default to PCMU).
		c.Opus = true
		c.ClientOptions = append(c.ClientOptions, webclient.WithRED(k.redDistance))
	}
	wc, err := c.Config()
	if err != nil {
		return base, scenario.Config{}, err
	}
	if k.nackInterval > 0 {
		iv := k.nackInterval
		wc.Gateway = append(slices.Clone(wc.Gateway), gateway.WithRTC(func(rc *rtc.Config) { rc.NACKInterval = iv }))
	}
	var media []string
	if k.redDistance > 0 {
		media = append(media, "red=1", fmt.Sprintf("red_distance=%d", k.redDistance))
	}
	if k.fecMedia > 0 {
		media = append(media, "flexfec=1", fmt.Sprintf("fec_media_packets=%d", k.fecMedia), fmt.Sprintf("fec_packets=%d", k.fecPackets))
	}
	if len(media) > 0 {
		wc.GatewayConf += "\n[media]\n" + strings.Join(media, "\n") + "\n"
	}
	return c, wc, nil
}

// checkBWE checks what rtc's validation would, with its defaults filling in zero fields.
func checkBWE(b rtc.BWEConfig) error {
	lo, hi := b.MinBitrate, b.MaxBitrate
	if lo == 0 {
		lo = rtc.DefaultBWEMinBitrate
	}
	if hi == 0 {
		hi = rtc.DefaultBWEMaxBitrate
	}
	if lo > hi {
		return fmt.Errorf("gcc.min %d is above gcc.max %d", lo, hi)
	}
	init := b.InitialBitrate
	if init == 0 {
		if init = min(max(rtc.DefaultBWEInitialBitrate, lo), hi); init != rtc.DefaultBWEInitialBitrate {
			return nil // rtc clamps its own default into the bounds
		}
	}
	if init < lo || init > hi {
		return fmt.Errorf("gcc.initial %d is outside gcc.min %d - gcc.max %d", init, lo, hi)
	}
	return nil
}
