package browser_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/reports"
)

// sampleRun is a lab run as reports reads it back from measurements.json: a set-up case with
// its calls, ARQ and FEC cases with bounds, and a BWE case with its 100 ms series.
func sampleRun(dir string) *reports.Run {
	series := func(n int, f func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	const n = 1000 // 100 s at 100 ms
	capacity := func(i int) float64 {
		switch {
		case i < 400:
			return 1e6
		case i < 600:
			return 2.5e6
		case i < 800:
			return 0.6e6
		}
		return 1e6
	}
	run := &reports.Run{Schema: reports.Schema,
		Env:    reports.Env{Version: "test", Started: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), WallSeconds: 30, Backends: []string{"embedded"}},
		Suites: []reports.Suite{{Name: "BWE", Passed: true, Specs: 1}},
		Measurements: []reports.Measurement{
			{Suite: "setup", Case: "webrtc-to-sip rtt=50ms", Backend: "embedded", Values: map[string]float64{"invite_to_connected_p50_ms": 260},
				Detail: map[string]any{"direction": "webrtc-to-sip", "calls": []map[string]any{
					{"invite_to_connected_ns": 250e6}, {"invite_to_connected_ns": 262e6}, {"invite_to_connected_ns": 1300e6}}}},
			{Suite: "arq", Case: "bernoulli 5%", Backend: "embedded", Values: map[string]float64{"model_loss": 0.05, "audio_effective_loss": 0.001, "video_effective_loss": 0.002},
				Bounds: map[string]float64{"audio_effective_loss": 0.004, "video_effective_loss": 0.004}},
			{Suite: "fec", Case: "bernoulli 10%", Backend: "embedded", Values: map[string]float64{"model_loss": 0.1, "residual_loss_video": 0.02, "residual_loss_audio": 0.008},
				Bounds: map[string]float64{"residual_loss_video": 0.044, "residual_loss_audio": 0.02}},
			{Suite: "bwe", Case: "rfc8867-5.1 client->gateway", Backend: "embedded", Values: map[string]float64{"utilization": 0.8},
				Detail: map[string]any{"series": map[string]any{"aggregate": map[string]any{
					"step_ns":        1e8,
					"capacity_bps":   series(n, capacity),
					"target_bps":     series(n, func(i int) float64 { return 0.85 * capacity(i) }),
					"sending_bps":    series(n, func(i int) float64 { return 0.88 * capacity(i) }),
					"delivered_bps":  series(n, func(i int) float64 { return 0.86 * capacity(i) }),
					"queue_delay_ns": series(n, func(i int) float64 { return float64(20e6 + (i%50)*1e6) }),
				}}}},
		}}
	// Through the JSON, as summarize reads it.
	p := filepath.Join(dir, "measurements.json")
	Expect(run.WriteJSON(p)).To(Succeed())
	back, err := reports.ReadRun(p)
	Expect(err).NotTo(HaveOccurred())
	return back
}

var _ = Describe("the lab's HTML report in headless Chromium", Label("browser", "chromium", "report"), func() {
	It("shows every chart with its data drawn", func(ctx SpecContext) {
		bin := findChromium()
		if bin == "" {
			if strings.Contains(os.Getenv("LAB_REQUIRE"), "chromium") {
				Fail("chromium not installed (LAB_REQUIRE contains chromium): apt-get install -y chromium")
			}
			Skip("chromium not installed: apt-get install -y chromium")
		}
		dir := GinkgoT().TempDir()
		reportPath := filepath.Join(dir, "report.html")
		Expect(sampleRun(dir).HTML().WriteHTMLFile(reportPath)).To(Succeed())

		b, err := launchChromium(bin)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(b.close)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		Expect(b.open(cctx, "file://"+reportPath)).To(Succeed())
		pg := &page{b: b}
		Expect(pg.until(cctx, 10*time.Second, `document.readyState === "complete"`)).To(Succeed())

		// Each chart: laid out with a size, and at least one drawn series whose box is not empty
		// (a line with width and height, or markers).
		var charts []struct {
			Title  string  `json:"title"`
			Width  float64 `json:"width"`
			Points int     `json:"points"`
			Drawn  int     `json:"drawn"`
		}
		Expect(b.eval(cctx, `[...document.querySelectorAll("svg.chart")].map(svg => ({
			title: svg.getAttribute("aria-label"),
			width: svg.getBoundingClientRect().width,
			points: +svg.dataset.points,
			drawn: [...svg.querySelectorAll(".series")].filter(s => { const b = s.getBBox(); return b.width > 0 && b.height > 0; }).length,
		}))`, &charts)).To(Succeed())
		AddReportEntry("charts", charts)
		// Set-up CDF, NACK/RTX loss, FEC loss, BWE rates and BWE queue delay.
		Expect(charts).To(HaveLen(5))
		for _, c := range charts {
			Expect(c.Width).To(BeNumerically(">", 300), c.Title)
			Expect(c.Points).To(BeNumerically(">", 0), c.Title)
			Expect(c.Drawn).To(BeNumerically(">", 0), "%s: no series drawn with a size", c.Title)
		}
		var text string
		Expect(b.eval(cctx, `document.body.innerText`, &text)).To(Succeed())
		Expect(text).To(ContainSubstring("PASSED"))
		Expect(text).To(ContainSubstring("rfc8867-5.1 client->gateway"))
	})
})
