package netem

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The value syntaxes of scenario files. Each parser returns the reason only; the caller adds
// the key path and the value as written.

var (
	errMustBePositive = errors.New("must be > 0")
	errNegative       = errors.New("must be >= 0")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func parseName(s string) (string, error) {
	if !nameRE.MatchString(s) {
		return "", errors.New("must be letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return s, nil
}

func parseSeed(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, errors.New("must be an integer (int64)")
	}
	return v, nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("must be true or false")
}

func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, errors.New("must be an IPv4 prefix such as 10.77.0.0/16")
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("has host bits set: write %s", p.Masked())
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, errors.New("too small: a /30 or larger holds hosts")
	}
	return p, nil
}

// parseDuration takes Go's duration syntax ("40ms", "1.5s"); a bare number other than 0 is an
// error rather than a guess at its unit.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, errors.New("needs a unit, as in 40ms or 1.5s")
		}
		return 0, errors.New("must be a duration such as 40ms or 1.5s")
	}
	return d, nil
}

func parseNonNegativeDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil && d < 0 {
		err = errNegative
	}
	return d, err
}

func parsePositiveDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err == nil && d <= 0 {
		err = errMustBePositive
	}
	return d, err
}

// parseProbability takes a fraction (0.05) or a percentage ("5%").
func parseProbability(s string) (float64, error) {
	t, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("must be a probability: a fraction such as 0.05 or a percentage such as 5%")
	}
	if pct {
		if v < 0 || v > 100 {
			return 0, errors.New("must be between 0% and 100%")
		}
		return v / 100, nil
	}
	if v < 0 || v > 1 {
		return 0, errors.New("must be between 0 and 1 (or a percentage such as 5%)")
	}
	return v, nil
}

func parseLossKind(s string) (LossKind, error) {
	switch k := LossKind(s); k {
	case LossBernoulli, LossGilbertElliott:
		return k, nil
	case "none":
		return LossNone, nil
	}
	return "", errors.New("must be none, bernoulli or gilbert-elliott")
}

func parseJitterKind(s string) (JitterKind, error) {
	switch k := JitterKind(s); k {
	case JitterUniform, JitterNormal, JitterExponential, JitterPareto:
		return k, nil
	case "none":
		return JitterNone, nil
	}
	return "", errors.New("must be none, uniform, normal, exponential or pareto")
}

func parseParetoShape(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("must be a number")
	}
	if v <= 1 {
		return 0, errors.New("must be > 1 (a Pareto distribution of shape <= 1 has no mean)")
	}
	return v, nil
}

var quantityRE = regexp.MustCompile(`^([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z/]*)$`)

// rateUnits are bits per second, decimal (1 Mbps = 1,000,000 bit/s) as link rates are.
var rateUnits = map[string]float64{
	"": 1, "bps": 1, "bit/s": 1,
	"kbps": 1e3, "kbit/s": 1e3,
	"mbps": 1e6, "mbit/s": 1e6,
	"gbps": 1e9, "gbit/s": 1e9,
}

// parseRate takes bits per second with a unit ("2Mbps", "500kbps", "2.5 Mbit/s") or a bare
// number of bits per second; "unlimited" is 0, no bottleneck.
func parseRate(s string) (int64, error) {
	if s == "unlimited" {
		return 0, nil
	}
	m := quantityRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errors.New("must be a rate such as 2Mbps, 500kbps or 1000000 (bits per second), or unlimited")
	}
	if strings.Contains(m[2], "B") {
		return 0, errors.New("is bytes per second: write bits per second (kbps, Mbps, Gbps)")
	}
	unit, ok := rateUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: use bps, kbps, Mbps or Gbps", m[2])
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	bps := v * unit
	switch {
	case bps <= 0:
		return 0, errMustBePositive
	case bps > 1e12:
		return 0, errors.New("must be at most 1000Gbps")
	case bps < 1000:
		return 0, errors.New("must be at least 1kbps: a packet would take seconds to leave")
	}
	return int64(math.Round(bps)), nil
}

// sizeUnits are bytes: decimal (KB, MB) or binary (KiB, MiB).
var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"KB": 1e3, "kB": 1e3, "MB": 1e6,
	"KiB": 1 << 10, "MiB": 1 << 20,
}

// parseQueue takes a queue limit in bytes ("64KB", "65536") or in time at the link's rate
// ("100ms").
func parseQueue(s string) (CapacityModel, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil && s != "0" {
		if d <= 0 {
			return CapacityModel{}, errMustBePositive
		}
		return CapacityModel{QueueDelay: d}, nil
	}
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		return CapacityModel{}, errors.New("must be a size such as 64KB or 65536 (bytes), or a time such as 100ms")
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		if strings.HasSuffix(m[2], "b") || strings.HasSuffix(m[2], "bps") {
			return CapacityModel{}, fmt.Errorf("unit %q is bits or a rate: a queue is bytes (B, KB, MB) or a time (ms)", m[2])
		}
		return CapacityModel{}, fmt.Errorf("unknown unit %q: use B, KB, KiB, MB, MiB, or a time such as 100ms", m[2])
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	b := v * unit
	switch {
	case b <= 0:
		return CapacityModel{}, errMustBePositive
	case b > 1<<30:
		return CapacityModel{}, errors.New("must be at most 1GiB")
	}
	return CapacityModel{QueueBytes: int(math.Round(b))}, nil
}
