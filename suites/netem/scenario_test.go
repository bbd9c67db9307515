package netem_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/netem"
)

// scenarioEntries lists the scenario fixtures, one table entry each.
func scenarioEntries() []TableEntry {
	files, _ := filepath.Glob(filepath.Join(scenarioDir, "*.yaml"))
	var entries []TableEntry
	for _, f := range files {
		entries = append(entries, Entry(filepath.Base(f), f))
	}
	return entries
}

var _ = Describe("Scenario files", Label("netem"), func() {
	It("are present", func() {
		Expect(scenarioEntries()).NotTo(BeEmpty(), "fixtures/scenarios has no *.yaml")
	})

	DescribeTable("a fixture scenario builds and carries traffic between every pair of hosts",
		func(path string) {
			s, err := netem.LoadScenario(path)
			Expect(err).NotTo(HaveOccurred())
			var flows []flow
			for _, a := range s.Hosts {
				for _, b := range s.Hosts {
					if a.Name != b.Name {
						// 100 datagrams of 200 B, 20 ms apart: 80 kbit/s, inside every link of the fixtures.
						flows = append(flows, flow{from: a.Name, to: b.Name, size: 200, interval: 20 * time.Millisecond, count: 100, first: 100 * time.Millisecond})
					}
				}
			}
			res, err := measure(func() (*netem.Network, error) { return s.Build() }, 3*time.Second, flows...)
			Expect(err).NotTo(HaveOccurred())
			var lines []string
			for _, r := range res {
				var p50 time.Duration
				if len(r.arrivals) > 0 {
					p50 = quantile(r.delays(), 0.5)
				}
				lines = append(lines, fmt.Sprintf("%s->%s %d/%d p50 %.1fms", r.from, r.to, len(r.arrivals), r.count, ms(p50)))
			}
			report := fmt.Sprintf("%s (%d hosts): %s", s.Name, len(s.Hosts), strings.Join(lines, ", "))
			AddReportEntry("scenario", report)
			for _, r := range res {
				Expect(len(r.arrivals)).To(BeNumerically(">=", r.count/2), "%s -> %s", r.from, r.to)
			}
		},
		scenarioEntries(),
	)
})
