// Package report_test checks release baselines and regression diffs on real lab runs (label
// "report"): one ARQ case (client -> gateway, Bernoulli 5%, RTT 50 ms, 15 s of media in
// virtual time) is measured twice with the gateway's NACKs on, and once with them off (pion's
// NACK generator told to skip every sequence number: the injected regression). The diff of a
// run with itself, and of the two runs with NACK on, must report no regression under
// reports/thresholds.yaml; the diff against the run without NACK must report the loss after
// repair as regressed, by name, and the command's exit status must say so.
package report_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it.
var suiteT *testing.T

func TestReport(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "Baselines and regression diffs")
}
