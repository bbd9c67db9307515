package netem_test

import (
	"fmt"
	"math"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/netem"
)

var _ = Describe("Loss models", Label("netem"), func() {
	DescribeTable("Bernoulli loss rate lies within the 99% confidence interval of the configured rate",
		func(rate float64, n int) {
			res, err := measure(pair(11, netem.LinkConfig{Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: rate}}),
				time.Second, flow{from: "a", to: "b", size: 160, interval: time.Millisecond, count: n})
			Expect(err).NotTo(HaveOccurred())
			r := res[0]
			lost := len(r.lost())
			measured := float64(lost) / float64(n)
			half := z99 * math.Sqrt(rate*(1-rate)/float64(n))
			report := fmt.Sprintf("Bernoulli %.3f over %d packets: %d lost = %.4f, 99%% CI [%.4f, %.4f]; stats: offered %d dropped by loss %d delivered %d",
				rate, n, lost, measured, rate-half, rate+half, r.up.OfferedPackets, r.up.DroppedLoss, r.up.DeliveredPackets)
			AddReportEntry("bernoulli", report)

			Expect(measured).To(BeNumerically("~", rate, half))
			Expect(r.up.DroppedLoss).To(BeEquivalentTo(lost), "the direction's loss counter counts what the receiver missed")
			Expect(r.up.OfferedPackets).To(BeEquivalentTo(n))
		},
		Entry("1%", 0.01, 40000),
		Entry("5%", 0.05, 20000),
		Entry("20%", 0.20, 20000),
	)

	// Tolerances are the 99% confidence intervals of the estimators, from the model itself:
	//   - the loss fraction of a two-state Markov chain is correlated from packet to packet, so
	//     its variance is larger than a binomial's: with pi the stationary probabilities,
	//     lambda = 1-P-R the chain's second eigenvalue and h the per-state loss,
	//     Var = (pbar(1-pbar) + 2 (hB-hG)^2 piG piB lambda/(1-lambda)) / n;
	//   - with LossGood 0 a loss reveals the bad state, so a burst continues with probability
	//     c = (1-R) LossBad and burst lengths are geometric: mean 1/(1-c), standard deviation
	//     sqrt(c)/(1-c), over the number of bursts observed (1/R for Gilbert's LossBad 1).
	DescribeTable("Gilbert-Elliott loss rate and mean burst length match theory",
		func(m netem.LossModel, n int) {
			m.Kind = netem.LossGilbertElliott
			res, err := measure(pair(23, netem.LinkConfig{Loss: m}),
				time.Second, flow{from: "a", to: "b", size: 160, interval: time.Millisecond, count: n})
			Expect(err).NotTo(HaveOccurred())
			lost := res[0].lost()

			piB := m.P / (m.P + m.R)
			piG := 1 - piB
			pbar := piG*m.LossGood + piB*m.LossBad
			lambda := 1 - m.P - m.R
			variance := pbar*(1-pbar) + 2*(m.LossBad-m.LossGood)*(m.LossBad-m.LossGood)*piG*piB*lambda/(1-lambda)
			half := z99 * math.Sqrt(variance/float64(n))
			measured := float64(len(lost)) / float64(n)
			runs := bursts(lost)
			report := fmt.Sprintf("Gilbert-Elliott p=%g r=%g h_good=%g h_bad=%g over %d packets: loss %.4f (theory %.4f, 99%% CI +-%.4f), %d bursts",
				m.P, m.R, m.LossGood, m.LossBad, n, measured, pbar, half, len(runs))
			Expect(runs).NotTo(BeEmpty())
			var burstMean, burstHalf, burstTheory float64
			if m.LossGood == 0 {
				c := (1 - m.R) * m.LossBad
				burstTheory = 1 / (1 - c)
				burstHalf = z99 * math.Sqrt(c) / (1 - c) / math.Sqrt(float64(len(runs)))
				burstMean = mean(runs)
				report += fmt.Sprintf("; mean burst %.3f (theory %.3f, 99%% CI +-%.3f)", burstMean, burstTheory, burstHalf)
			}
			AddReportEntry("gilbert-elliott", report)

			Expect(measured).To(BeNumerically("~", pbar, half), "loss rate")
			if m.LossGood == 0 {
				Expect(burstMean).To(BeNumerically("~", burstTheory, burstHalf), "mean burst length")
			}
		},
		Entry("Gilbert: p=1% r=25% (bursts of 4, 3.8% loss)", netem.LossModel{P: 0.01, R: 0.25, LossBad: 1}, 60000),
		Entry("Gilbert: p=0.5% r=50% (short bursts)", netem.LossModel{P: 0.005, R: 0.5, LossBad: 1}, 60000),
		Entry("Gilbert-Elliott: p=2% r=30% loss_bad=80%", netem.LossModel{P: 0.02, R: 0.3, LossBad: 0.8}, 60000),
		Entry("Gilbert-Elliott: p=1% r=10% loss_good=0.5% loss_bad=50% (loss rate only)", netem.LossModel{P: 0.01, R: 0.1, LossGood: 0.005, LossBad: 0.5}, 60000),
	)

	It("gives the same loss decisions for the same scenario and seed", func() {
		scenario := func(seed int) *netem.Scenario {
			s, err := netem.ParseScenario([]byte(fmt.Sprintf(`
name: reproducible
seed: %d
hosts:
  - name: a
    up:
      loss: {kind: gilbert-elliott, p: 2%%, r: 40%%}
      delay: {base: 20ms, jitter: {dist: exponential, mean: 5ms}}
  - name: b
    down:
      loss: {rate: 3%%}
`, seed)), "")
			Expect(err).NotTo(HaveOccurred())
			return s
		}
		lostWith := func(s *netem.Scenario) []int {
			res, err := measure(func() (*netem.Network, error) { return s.Build() }, time.Second,
				flow{from: "a", to: "b", size: 200, interval: 2 * time.Millisecond, count: 10000})
			Expect(err).NotTo(HaveOccurred())
			return res[0].lost()
		}
		first, second, other := lostWith(scenario(7)), lostWith(scenario(7)), lostWith(scenario(8))
		report := fmt.Sprintf("seed 7: %d and %d lost of 10000 (first lost %v); seed 8: %d lost",
			len(first), len(second), first[:min(8, len(first))], len(other))
		AddReportEntry("reproducibility", report)

		Expect(first).NotTo(BeEmpty())
		Expect(second).To(Equal(first), "the same seed loses the same packets")
		Expect(other).NotTo(Equal(first), "another seed loses other packets")
	})
})
