package netem

import (
	"errors"
	"fmt"
	"time"
)

// ConfigError is one impossible value in a LinkConfig. Field is the key path as the scenario
// format spells it (loss.rate, delay.jitter.std, schedule[2].capacity.rate, outages[0].start).
type ConfigError struct {
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s %v: %s", e.Field, e.Value, e.Reason)
}

// ValidateLinkConfig reports every impossible value in cfg, joined (errors.Join); errors.As
// finds the first *ConfigError. Set validates with it before applying anything.
func ValidateLinkConfig(cfg LinkConfig) error {
	var v validator
	v.loss("loss", cfg.Loss)
	v.delay("delay", cfg.Delay)
	v.capacity("capacity", cfg.Capacity)
	v.probability("duplicate.rate", cfg.Duplicate.Rate)
	v.nonNegative("duplicate.delay", cfg.Duplicate.Delay)
	for i, o := range cfg.Outages {
		p := fmt.Sprintf("outages[%d]", i)
		v.nonNegative(p+".start", o.Start)
		if o.Duration <= 0 {
			v.fail(p+".duration", o.Duration, "must be > 0")
		}
	}
	var last time.Duration
	for i, ph := range cfg.Schedule {
		p := fmt.Sprintf("schedule[%d]", i)
		switch {
		case ph.At < 0:
			v.fail(p+".at", ph.At, "must be >= 0")
		case ph.At < last:
			v.fail(p+".at", ph.At, fmt.Sprintf("before the previous phase's %v: phases must be in time order", last))
		}
		last = max(last, ph.At)
		if ph.Loss != nil {
			v.loss(p+".loss", *ph.Loss)
		}
		if ph.Delay != nil {
			v.delay(p+".delay", *ph.Delay)
		}
		if ph.Capacity != nil {
			v.capacity(p+".capacity", *ph.Capacity)
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) fail(field string, value any, reason string) {
	v.errs = append(v.errs, &ConfigError{Field: field, Value: value, Reason: reason})
}

func (v *validator) probability(field string, p float64) {
	if !(p >= 0 && p <= 1) { // NaN fails too
		v.fail(field, p, "must be within 0..1")
	}
}

func (v *validator) nonNegative(field string, d time.Duration) {
	if d < 0 {
		v.fail(field, d, "must be >= 0")
	}
}

func (v *validator) loss(path string, m LossModel) {
	switch m.Kind {
	case LossNone:
	case LossBernoulli:
		v.probability(path+".rate", m.Rate)
	case LossGilbertElliott:
		v.probability(path+".p", m.P)
		v.probability(path+".r", m.R)
		v.probability(path+".loss_good", m.LossGood)
		v.probability(path+".loss_bad", m.LossBad)
	default:
		v.fail(path+".kind", fmt.Sprintf("%q", m.Kind), `unknown: "", "bernoulli" or "gilbert-elliott"`)
	}
}

func (v *validator) delay(path string, m DelayModel) {
	v.nonNegative(path+".base", m.Base)
	jp := path + ".jitter"
	switch m.Jitter {
	case JitterNone, JitterUniform, JitterNormal, JitterExponential:
	case JitterPareto:
		if m.Shape != 0 && !(m.Shape > 1) {
			v.fail(jp+".shape", m.Shape, "must be > 1 (the mean is infinite otherwise); 0 means 2.5")
		}
	default:
		v.fail(jp+".dist", fmt.Sprintf("%q", m.Jitter), `unknown: "", "uniform", "normal", "exponential" or "pareto"`)
	}
	v.nonNegative(jp+".mean", m.Mean)
	v.nonNegative(jp+".std", m.Std)
}

func (v *validator) capacity(path string, m CapacityModel) {
	if m.Rate < 0 {
		v.fail(path+".rate", m.Rate, "must be >= 0 bit/s (0: unlimited)")
	}
	if m.QueueBytes < 0 {
		v.fail(path+".queue", m.QueueBytes, "must be >= 0 bytes")
	}
	v.nonNegative(path+".queue", m.QueueDelay)
}
