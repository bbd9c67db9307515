package netem_test

import (
	"fmt"
	"math"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/netem"
)

// jitterCDF is the distribution function of a jitter model's draw, as lab/netem documents it
// (random.go): uniform on [0, 2*Mean); normal of Mean and Std with draws below 0 counted as 0;
// exponential of mean Mean; Pareto type II (Lomax) of scale Mean*(Shape-1), so of mean Mean.
func jitterCDF(m netem.DelayModel) func(x float64) float64 {
	mean := float64(m.Mean)
	switch m.Jitter {
	case netem.JitterUniform:
		return func(x float64) float64 { return math.Min(math.Max(x/(2*mean), 0), 1) }
	case netem.JitterNormal:
		return func(x float64) float64 {
			if x < 0 {
				return 0
			}
			return 0.5 * math.Erfc(-(x-mean)/(float64(m.Std)*math.Sqrt2))
		}
	case netem.JitterExponential:
		return func(x float64) float64 { return 1 - math.Exp(-math.Max(x, 0)/mean) }
	case netem.JitterPareto:
		shape := m.Shape
		if shape == 0 {
			shape = 2.5
		}
		scale := mean * (shape - 1)
		return func(x float64) float64 { return 1 - math.Pow(1+math.Max(x, 0)/scale, -shape) }
	}
	return nil
}

var _ = Describe("Delay and jitter", Label("netem"), func() {
	const base = 30 * time.Millisecond

	// A sample p-quantile q matches the distribution when F(q), the model's probability of a
	// draw below q, lies in the 99% confidence interval of the rank: p +- z99*sqrt(p(1-p)/n).
	// The test is distribution-free and as strict at the tail as at the median. Reorder is set so
	// that each packet's delay is its own draw (without it a late packet holds back the next
	// ones, which the next spec checks).
	DescribeTable("one-way delay percentiles match the jitter distribution",
		func(m netem.DelayModel) {
			const n = 20000
			m.Base, m.Reorder = base, true
			res, err := measure(pair(31, netem.LinkConfig{Delay: m}), 5*time.Second,
				flow{from: "a", to: "b", size: 100, interval: 5 * time.Millisecond, count: n})
			Expect(err).NotTo(HaveOccurred())
			r := res[0]
			Expect(r.arrivals).To(HaveLen(n), "no loss configured")
			delays := r.delays()
			F := jitterCDF(m)

			var lines []string
			type check struct {
				p, fq, half float64
				q           time.Duration
			}
			var checks []check
			for _, p := range []float64{0.5, 0.9, 0.95, 0.99} {
				q := quantile(delays, p)
				c := check{p: p, q: q, fq: F(float64(q - base)), half: z99 * math.Sqrt(p*(1-p)/n)}
				checks = append(checks, c)
				lines = append(lines, fmt.Sprintf("p%.0f %.3fms (F=%.4f, want %.4f+-%.4f)", 100*p, ms(q), c.fq, p, c.half))
			}
			ow := r.up.OneWayDelay
			report := fmt.Sprintf("%s jitter mean=%v std=%v shape=%g over base %v, %d packets: min %.3fms %s; direction stats: %v",
				m.Jitter, m.Mean, m.Std, m.Shape, base, len(delays), ms(delays[0]), strings.Join(lines, ", "), ow)
			AddReportEntry("jitter", report)

			Expect(delays[0]).To(BeNumerically(">=", base), "no packet arrives before the base delay")
			for _, c := range checks {
				Expect(c.fq).To(BeNumerically("~", c.p, c.half), "F(p%.0f = %v)", 100*c.p, c.q)
			}
			// The direction's own percentiles (a histogram within 0.4%) agree with the receiver's.
			Expect(float64(ow.P50)).To(BeNumerically("~", float64(quantile(delays, 0.5)), 0.01*float64(quantile(delays, 0.5))))
			Expect(float64(ow.P99)).To(BeNumerically("~", float64(quantile(delays, 0.99)), 0.01*float64(quantile(delays, 0.99))))
		},
		Entry("uniform, mean 10ms", netem.DelayModel{Jitter: netem.JitterUniform, Mean: 10 * time.Millisecond}),
		Entry("normal, mean 20ms std 5ms", netem.DelayModel{Jitter: netem.JitterNormal, Mean: 20 * time.Millisecond, Std: 5 * time.Millisecond}),
		Entry("normal clipped at 0, mean 5ms std 5ms", netem.DelayModel{Jitter: netem.JitterNormal, Mean: 5 * time.Millisecond, Std: 5 * time.Millisecond}),
		Entry("exponential, mean 8ms", netem.DelayModel{Jitter: netem.JitterExponential, Mean: 8 * time.Millisecond}),
		Entry("pareto, mean 5ms shape 2.5", netem.DelayModel{Jitter: netem.JitterPareto, Mean: 5 * time.Millisecond, Shape: 2.5}),
		Entry("pareto, mean 10ms shape 1.5 (infinite variance)", netem.DelayModel{Jitter: netem.JitterPareto, Mean: 10 * time.Millisecond, Shape: 1.5}),
	)

	It("keeps packets in order when reordering is not asked for, and reorders when it is", func() {
		jitter := netem.DelayModel{Base: base, Jitter: netem.JitterExponential, Mean: 10 * time.Millisecond}
		inOrder := func(reorder bool) (reordered int, arrivals int) {
			jitter.Reorder = reorder
			res, err := measure(pair(41, netem.LinkConfig{Delay: jitter}), 5*time.Second,
				flow{from: "a", to: "b", size: 100, interval: 2 * time.Millisecond, count: 5000})
			Expect(err).NotTo(HaveOccurred())
			for i, a := range res[0].arrivals[1:] {
				if a.seq < res[0].arrivals[i].seq {
					reordered++
				}
			}
			return reordered, len(res[0].arrivals)
		}
		fifo, n1 := inOrder(false)
		shuffled, n2 := inOrder(true)
		report := fmt.Sprintf("exponential jitter 10ms, 2ms apart: %d of %d arrivals out of order without reorder, %d of %d with it", fifo, n1, shuffled, n2)
		AddReportEntry("reorder", report)
		Expect(fifo).To(BeZero())
		Expect(shuffled).To(BeNumerically(">", 0))
	})
})
