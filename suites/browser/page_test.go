package browser_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/peers/sipphone"
)

const browserUser = "1005"

// browser is a headless browser with one page, driven over its remote protocol: CDP for
// Chromium, WebDriver BiDi for Firefox.
type browser interface {
	// open installs hookScript for every new document and loads url.
	open(ctx context.Context, url string) error
	// eval evaluates a JavaScript expression in the page (promises awaited) and decodes its
	// value into out (may be nil).
	eval(ctx context.Context, expr string, out any) error
	// logs are the browser's stderr, the page's console errors and warnings, and the number of
	// uncaught exceptions in the page.
	logs() (stderr, console string, thrown int64)
	// close ends the browser and removes its profile.
	close() error
}

// engine is one browser the scenarios run in.
type engine struct {
	name    string // the label, and what LAB_REQUIRE names
	install string // how to install it
	find    func() string
	launch  func(bin string) (browser, error)
}

var engines = []engine{
	{name: "chromium", install: "apt-get install -y chromium", find: findChromium,
		launch: func(bin string) (browser, error) { return launchChromium(bin) }},
	{name: "firefox", install: "apt-get install -y firefox-esr", find: findFirefox, launch: launchFirefox},
}

// page is the gateway's phone page open in a browser.
type page struct {
	b browser
}

// js evaluates expr in the page and decodes the value into out (may be nil).
func (p *page) js(ctx context.Context, expr string, out any) error { return p.b.eval(ctx, expr, out) }

// until polls a boolean page expression until it is true or d has passed.
func (p *page) until(ctx context.Context, d time.Duration, expr string) error {
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		var ok bool
		if lastErr = p.js(ctx, expr, &ok); lastErr == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("page: %q not true within %v (last error %v); page log:\n%s", expr, d, lastErr, p.log(ctx))
}

// log is the page's visible state for failure messages.
func (p *page) log(ctx context.Context) string {
	var s string
	_ = p.js(ctx, `[document.getElementById("status").textContent, "state: " + document.getElementById("callState").textContent,
		"error: " + (document.getElementById("error").hidden ? "" : document.getElementById("error").textContent.trim()),
		document.getElementById("stateLog").innerText, document.getElementById("log").innerText].join("\n")`, &s)
	return s
}

// click clicks a button by id once it is enabled (as a user would).
func (p *page) click(ctx context.Context, id string) error {
	if err := p.until(ctx, 10*time.Second, fmt.Sprintf(`(function(){const b=document.getElementById(%q); return !!b && !b.disabled && !b.closest("[hidden]");})()`, id)); err != nil {
		return err
	}
	return p.js(ctx, fmt.Sprintf(`document.getElementById(%q).click()`, id), nil)
}

// inboundAudioPackets is the page's received audio packets (getStats inbound-rtp), -1 without a peer connection.
func (p *page) inboundAudioPackets(ctx context.Context) (int, error) {
	var n int
	err := p.js(ctx, `(async function () {
		const pcs = window.__siprtcPCs || [];
		if (!pcs.length) { return -1; }
		const report = await pcs[pcs.length - 1].getStats();
		let n = 0;
		report.forEach(function (s) { if (s.type === "inbound-rtp" && s.kind === "audio") { n += s.packetsReceived || 0; } });
		return n;
	})()`, &n)
	return n, err
}

// outboundAudioPackets is the page's sent audio packets (getStats outbound-rtp).
func (p *page) outboundAudioPackets(ctx context.Context) (int, error) {
	var n int
	err := p.js(ctx, `(async function () {
		const pcs = window.__siprtcPCs || [];
		if (!pcs.length) { return -1; }
		const report = await pcs[pcs.length - 1].getStats();
		let n = 0;
		report.forEach(function (s) { if (s.type === "outbound-rtp" && s.kind === "audio") { n += s.packetsSent || 0; } });
		return n;
	})()`, &n)
	return n, err
}

// errorShown is the page's error banner text (empty while hidden) and the lines its log marks
// as errors.
func (p *page) errorShown(ctx context.Context) string {
	var s string
	if err := p.js(ctx, `[document.getElementById("error").hidden ? "" : document.getElementById("error").textContent.trim()].concat(
		Array.from(document.querySelectorAll("#log li.err")).map(function (li) { return li.textContent; })).join("\n").trim()`, &s); err != nil {
		return err.Error()
	}
	return s
}

// codec is the audio codec the page's peer connection receives and sends, from getStats.
func (p *page) codec(ctx context.Context) string {
	var s string
	_ = p.js(ctx, `(async function () {
		const pcs = window.__siprtcPCs || [];
		if (!pcs.length) { return ""; }
		const report = await pcs[pcs.length - 1].getStats();
		const out = [];
		report.forEach(function (s) {
			if ((s.type === "inbound-rtp" || s.type === "outbound-rtp") && s.kind === "audio" && s.codecId) {
				const c = report.get(s.codecId);
				out.push(s.type + " " + (c ? c.mimeType + "/" + c.clockRate : "?"));
			}
		});
		return out.join(", ");
	})()`, &s)
	return s
}

// login fills the login form with user and token and submits it.
func (p *page) login(ctx context.Context, user, token string) error {
	expr := fmt.Sprintf(`(function () {
		document.getElementById("user").value = %q;
		const t = document.getElementById("token");
		t.value = %q;
		t.dispatchEvent(new Event("input"));
		document.getElementById("loginForm").requestSubmit();
		return true;
	})()`, user, token)
	if err := p.js(ctx, expr, nil); err != nil {
		return err
	}
	return p.until(ctx, 10*time.Second, `!document.getElementById("callButton").disabled && document.getElementById("status").textContent.indexOf("Logged in") >= 0`)
}

func stateSeen(state string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll("#stateLog li")).some(function (li) { return li.textContent.split(" ").indexOf(%q) >= 0; })`, state)
}

// timings are what a spec measured, for the report.
type timings map[string]time.Duration

func (t timings) String() string {
	var parts []string
	for _, k := range []string{"page loaded", "logged in", "accepted", "page audio in", "phone audio in", "hangup seen"} {
		if d, ok := t[k]; ok {
			parts = append(parts, k+" "+d.Round(time.Millisecond).String())
		}
	}
	return strings.Join(parts, ", ")
}

var _ = func() bool {
	for _, e := range engines {
		scenarios(e)
	}
	return true
}()

// scenarios are the page's specs, in one browser.
func scenarios(e engine) {
	Describe("the browser phone page in headless "+e.name, Label("browser", e.name), Ordered, func() {
		var (
			bin   string
			w     *world
			phone *sipphone.Phone
			pg    *page
		)

		BeforeAll(func() {
			bin = e.find()
			if bin == "" {
				missing := e.name + " not installed"
				if e.name == "firefox" {
					missing = "firefox-esr not installed"
				}
				if strings.Contains(os.Getenv("LAB_REQUIRE"), e.name) {
					Fail(missing + " (LAB_REQUIRE contains " + e.name + "): " + e.install)
				}
				Skip(missing + ": " + e.install)
			}
		})

		BeforeEach(func(ctx SpecContext) {
			var err error
			w, err = newWorld()
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() {
				Expect(w.Close()).To(Succeed())
			})
			phone, err = w.Phone("1001", sipphone.AutoAnswer(300*time.Millisecond))
			Expect(err).NotTo(HaveOccurred())

			b, err := e.launch(bin)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() {
				stderr, con, thrown := b.logs()
				if CurrentSpecReport().Failed() {
					AddReportEntry(e.name+" stderr", stderr)
				}
				if con != "" {
					AddReportEntry("page console", con)
				}
				Expect(b.close()).To(Succeed())
				Expect(thrown).To(BeZero(), "uncaught exceptions in the page:\n%s", con)
			})
			pg = &page{b: b}
			DeferCleanup(func(ctx SpecContext) {
				// Shown with -v or on failure: what the page itself logged.
				GinkgoWriter.Println("page log:\n" + pg.log(ctx))
			}, NodeTimeout(5*time.Second))
			start := time.Now()
			Expect(b.open(ctx, "http://"+w.httpAddr+"/")).To(Succeed())
			Expect(pg.until(ctx, 10*time.Second, `document.readyState === "complete" && !!document.getElementById("loginForm") && Array.isArray(window.__siprtcPCs)`)).To(Succeed())
			var secure bool
			Expect(pg.js(ctx, `window.isSecureContext`, &secure)).To(Succeed())
			Expect(secure).To(BeTrue(), "http://127.0.0.1 must be a secure context for getUserMedia")
			loaded := time.Since(start)
			token := w.Token(browserUser)
			Expect(pg.login(ctx, browserUser, token)).To(Succeed())
			AddReportEntry("page", timings{"page loaded": loaded, "logged in": time.Since(start)}.String())
		}, NodeTimeout(60*time.Second))

		DescribeTable("calls the SIP phone: ACCEPTED_BY_REMOTE, audio both ways, hangup from the page ends the phone's call", func(ctx SpecContext, codec, wantMime string) {
			t := timings{}
			start := time.Now()
			Expect(pg.js(ctx, fmt.Sprintf(`(function(){
			document.getElementById("codec").value = %q;
			document.getElementById("callee").value = "1001";
			document.getElementById("callForm").requestSubmit();
			return true;
		})()`, codec), nil)).To(Succeed())
			Expect(pg.until(ctx, 15*time.Second, stateSeen("ACCEPTED_BY_REMOTE"))).To(Succeed())
			t["accepted"] = time.Since(start)
			Expect(pg.until(ctx, 5*time.Second, `document.getElementById("callState").textContent.length > 0 && !document.getElementById("hangupButton").disabled`)).To(Succeed())

			var calls []*sipphone.Call
			Eventually(func() int { calls = phone.Calls(); return len(calls) }).WithTimeout(5 * time.Second).Should(Equal(1))
			pc := calls[0]
			Eventually(func() uint64 { return pc.Media().Stats().PacketsReceived }).WithTimeout(10*time.Second).WithPolling(20*time.Millisecond).
				Should(BeNumerically(">", 25), "the SIP phone receives the browser's audio")
			t["phone audio in"] = time.Since(start)
			Eventually(func() (int, error) { return pg.inboundAudioPackets(ctx) }).WithTimeout(10*time.Second).WithPolling(50*time.Millisecond).
				Should(BeNumerically(">", 25), "the page receives the phone's audio")
			t["page audio in"] = time.Since(start)
			sent, err := pg.outboundAudioPackets(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(sent).To(BeNumerically(">", 0))

			Expect(pg.errorShown(ctx)).To(BeEmpty())
			used := pg.codec(ctx)
			AddReportEntry("outbound codec", used)
			Expect(strings.ToLower(used)).To(ContainSubstring("outbound-rtp " + wantMime))

			hang := time.Now()
			Expect(pg.click(ctx, "hangupButton")).To(Succeed())
			Eventually(pc.Done()).WithTimeout(10 * time.Second).Should(BeClosed())
			t["hangup seen"] = time.Since(hang)
			Expect(pg.until(ctx, 5*time.Second, `document.getElementById("hangupButton").disabled && !document.getElementById("callButton").disabled`)).To(Succeed())
			Expect(w.quiesce()).To(Succeed())
			AddReportEntry("outbound call", t.String())
			GinkgoWriter.Println("outbound:", t.String())
		},
			// The gateway never transcodes: the page's leg carries what the PBX accepted for the
			// G.711-only phone, whatever the page prefers (the codec used is a report entry; today
			// the gateway's configured order wins, so even PCMA preferred gives PCMU).
			Entry("with the browser's default codec choice", NodeTimeout(60*time.Second), "", "audio/pcm"),
			Entry("with Opus preferred (still G.711: the phone has nothing else)", NodeTimeout(60*time.Second), "audio/opus", "audio/pcm"),
			Entry("with PCMA preferred", NodeTimeout(60*time.Second), "audio/PCMA", "audio/pcm"))

		It("is called by the SIP phone (0 + user): shows the invitation, accepts, audio both ways", func(ctx SpecContext) {
			t := timings{}
			start := time.Now()
			type dialed struct {
				c   *sipphone.Call
				err error
			}
			res := make(chan dialed, 1)
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			go func() {
				c, err := phone.Call(dctx, "0"+browserUser)
				res <- dialed{c, err}
			}()
			Expect(pg.until(ctx, 10*time.Second, `!document.getElementById("incoming").hidden && document.getElementById("incomingCaller").textContent.length > 0`)).To(Succeed())
			var caller string
			Expect(pg.js(ctx, `document.getElementById("incomingCaller").textContent`, &caller)).To(Succeed())
			Expect(caller).To(ContainSubstring("1001"))
			Expect(pg.js(ctx, stateSeen("INVITATION_RECEIVED"), new(bool))).To(Succeed())
			Expect(pg.click(ctx, "acceptButton")).To(Succeed())
			var d dialed
			Eventually(res).WithTimeout(15 * time.Second).Should(Receive(&d))
			Expect(d.err).NotTo(HaveOccurred())
			t["accepted"] = time.Since(start)
			Expect(pg.until(ctx, 10*time.Second, stateSeen("ACCEPTED"))).To(Succeed())

			Eventually(func() uint64 { return d.c.Media().Stats().PacketsReceived }).WithTimeout(10*time.Second).WithPolling(20*time.Millisecond).
				Should(BeNumerically(">", 25), "the SIP phone receives the browser's audio")
			t["phone audio in"] = time.Since(start)
			Eventually(func() (int, error) { return pg.inboundAudioPackets(ctx) }).WithTimeout(10*time.Second).WithPolling(50*time.Millisecond).
				Should(BeNumerically(">", 25), "the page receives the phone's audio")
			t["page audio in"] = time.Since(start)

			Expect(pg.errorShown(ctx)).To(BeEmpty())
			AddReportEntry("inbound codec", pg.codec(ctx))

			hang := time.Now()
			Expect(d.c.Hangup(ctx)).To(Succeed())
			Expect(pg.until(ctx, 10*time.Second, `document.getElementById("hangupButton").disabled && !document.getElementById("callButton").disabled`)).To(Succeed())
			t["hangup seen"] = time.Since(hang)
			Expect(w.quiesce()).To(Succeed())
			AddReportEntry("inbound call", t.String())
			GinkgoWriter.Println("inbound:", t.String())
		}, NodeTimeout(60*time.Second))
	})
}
