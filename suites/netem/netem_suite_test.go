// Package netem_test is the emulated network's validation suite: each spec drives traffic
// through a link model of lab/netem and compares what it measures with what the model promises
// (loss rates and bursts, delay percentiles, capacity, schedule instants, reproducibility).
// Specs run in virtual time (lab.Virtual), so minutes of emulated traffic cost a fraction of
// a second, and print their figures so a failure says what happened.
package netem_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it (Ginkgo specs have no
// *testing.T of their own).
var suiteT *testing.T

func TestNetem(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "Emulated network models")
}
