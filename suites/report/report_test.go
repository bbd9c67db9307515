package report_test

import (
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/lab"
	"github.com/siprtc/siprtc/lab/netem"
	"github.com/siprtc/siprtc/lab/scenario"
	"github.com/siprtc/siprtc/reports"
)

// measureARQ runs the case and returns it as a one-measurement run, as make lab would record it.
func measureARQ(nack bool) *reports.Run {
	c := scenario.ARQCase{Path: scenario.ClientToGateway, RTT: 50 * time.Millisecond, Duration: 15 * time.Second,
		Loss: netem.LossModel{Kind: netem.LossBernoulli, Rate: 0.05}, Seed: 5}
	cfg := c.WorldConfig()
	if !nack {
		// The gateway is the receiver that NACKs on this path: make its generator skip
		// every sequence number, so it never asks for anything.
		cfg.Gateway = append(cfg.Gateway, gateway.WithRTC(func(rc *rtc.Config) { rc.NACKSkipLastN = 1 << 15 }))
	}
	res, err := scenario.In(suiteT, cfg, func(w *scenario.World) (scenario.ARQResult, error) { return scenario.MeasureARQ(w, c) })
	Expect(err).NotTo(HaveOccurred())
	m := lab.Measurement{Suite: "arq", Case: c.Name(), Backend: "embedded",
		Values: map[string]float64{"audio_effective_loss": res.Audio.Receiver.EffectiveLossRate,
			"video_effective_loss": res.Video.Receiver.EffectiveLossRate, "channel_loss": res.ChannelLoss},
		Bounds: map[string]float64{"audio_effective_loss": res.Audio.Bound, "video_effective_loss": res.Video.Bound}}
	AddReportEntry("run", m.String())
	return &reports.Run{Schema: reports.Schema, Measurements: []reports.Measurement{m},
		Specs: []reports.Spec{{Suite: "ARQ", Name: c.Name(), State: "passed"}}}
}

var _ = Describe("siprtc report diff", Label("report"), Ordered, func() {
	var thresholds *reports.Thresholds
	var first, second, noNACK *reports.Baseline

	BeforeAll(func() {
		root, err := scenario.ModuleRoot()
		Expect(err).NotTo(HaveOccurred())
		thresholds, err = reports.LoadThresholds(filepath.Join(root, "reports", "thresholds.yaml"))
		Expect(err).NotTo(HaveOccurred())
		first = measureARQ(true).Baseline("v1")
		second = measureARQ(true).Baseline("v2")
		noNACK = measureARQ(false).Baseline("v3-no-nack")
	})

	It("finds no regression in a run compared with itself", func() {
		d := reports.Compare(first, first, thresholds)
		Expect(d.Changes).To(BeEmpty())
		Expect(d.Compared).To(Equal(2), "the two losses (channel_loss is bookkeeping)")
	})

	It("finds no regression between two runs of the same code", func() {
		d := reports.Compare(first, second, thresholds)
		Expect(d.Regressions()).To(BeZero(), "%+v", d.Changes)
	})

	It("catches NACK disabled, naming the loss after repair", func() {
		d := reports.Compare(first, noNACK, thresholds)
		var b strings.Builder
		Expect(d.WriteText(&b)).To(Succeed())
		AddReportEntry("diff", b.String())
		Expect(d.Regressions()).To(BeNumerically(">=", 2))
		Expect(b.String()).To(ContainSubstring("REGRESSED arq/client-to-gateway bernoulli 5% rtt=50ms/embedded/audio_effective_loss"))
		Expect(b.String()).To(ContainSubstring("REGRESSED arq/client-to-gateway bernoulli 5% rtt=50ms/embedded/video_effective_loss"))
	})
})
