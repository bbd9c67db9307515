package scenarios_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/scenario"
)

// files are the scenario files to run: LAB_SCENARIOS (separated by spaces or commas, relative
// to the module root or absolute), or the example.
func files() []string {
	root, err := scenario.ModuleRoot()
	if err != nil {
		panic(err)
	}
	list := strings.FieldsFunc(os.Getenv("LAB_SCENARIOS"), func(r rune) bool { return r == ' ' || r == ',' })
	if len(list) == 0 {
		list = []string{filepath.Join("fixtures", "scenarios", "example.yaml")}
	}
	for i, f := range list {
		if !filepath.IsAbs(f) {
			list[i] = filepath.Join(root, f)
		}
	}
	return list
}

var _ = Describe("A scenario file", Label("scenarios"), func() {
	for _, path := range files() {
		for _, b := range lab.Backends() {
			if !pbx.IsContainer(b) {
				continue
			}
			// A container PBX's world is split (scenario.Config.Backend): the PBX's and the
			// phone's links are real, so a file that impairs them (the example's phone has
			// outages) cannot run there, and its minutes would run in real time.
			It("carries a call with send-side BWE through the gateway: "+filepath.Base(path)+" against "+string(b), func() {
				Skip(fmt.Sprintf("scenario files run on the embedded PBX only, in virtual time (%s=embedded or all): the %s PBX's world keeps the PBX's and the phone's links real, and runs in real time", pbx.EnvPBX, b))
			})
		}
		if !lab.Selected(pbx.BackendEmbedded) {
			continue
		}
		It("carries a call with send-side BWE through the gateway: "+filepath.Base(path), func() {
			s, err := netem.LoadScenario(path)
			Expect(err).NotTo(HaveOccurred())
			if s.Duration <= 0 {
				s.Duration = time.Minute
			}
			c := scenario.BWECase{Name: s.Name, Scenario: s, Direction: scenario.BWEUplink}
			start := time.Now()
			res, err := scenario.RunBWE(suiteT, c)
			Expect(err).NotTo(HaveOccurred(), "scenario %s", path)
			m := lab.Measurement{
				Suite: "scenarios", Case: s.Name, Backend: string(pbx.BackendEmbedded),
				Params: lab.BackendParams(pbx.BackendEmbedded, map[string]string{"file": path, "duration": s.Duration.String()}),
				Values: map[string]float64{
					"wall_s":             time.Since(start).Seconds(),
					"utilization":        res.Total.Utilization,
					"mean_target_bps":    res.Total.MeanTarget,
					"mean_delivered_bps": res.Total.MeanDelivered,
					"queue_delay_p95_ms": float64(res.Total.QueueDelay.P95) / 1e6,
					"loss":               res.Loss.Rate,
				},
				Detail: res.Detail(),
			}
			lab.Record(m)
			Expect(res.Total.MeanDelivered).To(BeNumerically(">", 0), "no media crossed the bottleneck")
		})
	}
})
