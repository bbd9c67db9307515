// Package scenarios_test runs scenario files through the gateway: each file's network (see
// fixtures/scenarios/README.md) carries one WebRTC -> SIP call with send-side BWE for the
// file's duration, in virtual time, and the run's figures go into the report (utilization,
// queue delay, loss, convergence per capacity change). It is how `make lab
// SCENARIOS="a.yaml b.yaml"` runs files of your own; without LAB_SCENARIOS it runs
// fixtures/scenarios/example.yaml, so the path from a YAML file to a measured call is always
// exercised.
//
// A file's host named "sender" is the media sender's side (the WebRTC client), "receiver" the
// other side (the gateway); other hosts must be named after the world's hosts (client,
// gateway, phone, pbx). User scenarios carry no expectations of their own: a spec fails only
// when the file is invalid or the call does not run (no media delivered).
package scenarios_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it.
var suiteT *testing.T

func TestScenarios(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "Scenario files")
}
