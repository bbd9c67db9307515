package browser_test

import (
	"context"
	"os"
	"os/exec"
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

// chartInfo is what the render check reads of one svg.chart.
type chartInfo struct {
	Title  string  `json:"title"`
	Width  float64 `json:"width"`
	Points int     `json:"points"`
	Drawn  int     `json:"drawn"`
}

// renderedCharts opens an HTML file in headless Chromium and reads every chart as laid out:
// its width, the points it claims, and how many of its series have a non-empty box (a line
// with width and height, or markers). It returns the page's text too.
func renderedCharts(ctx context.Context, file string) ([]chartInfo, string) {
	bin := findChromium()
	if bin == "" {
		if strings.Contains(os.Getenv("LAB_REQUIRE"), "chromium") {
			Fail("chromium not installed (LAB_REQUIRE contains chromium): apt-get install -y chromium")
		}
		Skip("chromium not installed: apt-get install -y chromium")
	}
	b, err := launchChromium(bin)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(b.close)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	Expect(b.open(cctx, "file://"+file)).To(Succeed())
	pg := &page{b: b}
	Expect(pg.until(cctx, 10*time.Second, `document.readyState === "complete"`)).To(Succeed())
	var charts []chartInfo
	Expect(b.eval(cctx, `[...document.querySelectorAll("svg.chart")].map(svg => ({
		title: svg.getAttribute("aria-label"),
		width: svg.getBoundingClientRect().width,
		points: +svg.dataset.points,
		drawn: [...svg.querySelectorAll(".series")].filter(s => { const b = s.getBBox(); return b.width > 0 && b.height > 0; }).length,
	}))`, &charts)).To(Succeed())
	var text string
	Expect(b.eval(cctx, `document.body.innerText`, &text)).To(Succeed())
	AddReportEntry("charts", charts)
	return charts, text
}

func expectDrawn(charts []chartInfo) {
	for _, c := range charts {
		Expect(c.Width).To(BeNumerically(">", 300), c.Title)
		Expect(c.Points).To(BeNumerically(">", 0), c.Title)
		Expect(c.Drawn).To(BeNumerically(">", 0), "%s: no series drawn with a size", c.Title)
	}
}

var _ = Describe("the lab's HTML reports in headless Chromium", Label("browser", "chromium", "report"), func() {
	It("shows every chart of a run's report with its data drawn", func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		reportPath := filepath.Join(dir, "report.html")
		Expect(sampleRun(dir).HTML().WriteHTMLFile(reportPath)).To(Succeed())
		charts, text := renderedCharts(ctx, reportPath)
		// Set-up CDF, NACK/RTX loss, FEC loss, BWE rates and BWE queue delay.
		Expect(charts).To(HaveLen(5))
		expectDrawn(charts)
		Expect(text).To(ContainSubstring("PASSED"))
		Expect(text).To(ContainSubstring("rfc8867-5.1 client->gateway"))
	})

	It("shows every chart of a siprtc tune report (a real 2 x 1 sweep on RFC 8867 5.1) with one line per configuration", func(ctx SpecContext) {
		if findChromium() == "" {
			renderedCharts(ctx, "") // skips, or fails under LAB_REQUIRE
		}
		dir := GinkgoT().TempDir()
		cmd := exec.CommandContext(ctx, "go", "run", "../../cmd/siprtc", "tune", "--scenario", "rfc8867-5.1",
			"--param", "gcc.initial=300k,1M", "--repeat", "1", "--duration", "30s", "--out", dir)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)
		AddReportEntry("tune", string(out))
		charts, text := renderedCharts(ctx, filepath.Join(dir, "report.html"))
		Expect(charts).NotTo(BeEmpty())
		expectDrawn(charts)
		for _, c := range charts {
			Expect(c.Drawn).To(BeNumerically(">=", 2), "%s: one line per configuration", c.Title)
		}
		Expect(text).To(ContainSubstring("300k"))
		Expect(text).To(ContainSubstring("1M"))
	}, SpecTimeout(3*time.Minute))
})
