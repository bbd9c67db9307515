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

var scenarioDir = filepath.Join("..", "..", "fixtures", "scenarios")

var _ = Describe("Schedules", Label("netem"), func() {
	// The RFC 8867 section 5.1 scenario caps the sender's uplink with the trace
	// fixtures/traces/rfc8867-5.1.csv (1, 2.5, 0.6, 1 Mbps from 0, 40, 60, 80 s) behind a 50 ms
	// delay. Offered 3 Mbps, the queue never empties, so packets leave the bottleneck exactly one
	// packet time apart at the rate in force: the instant the spacing changes is the instant the
	// rate changed.
	It("switches capacity at the instants of a loaded scenario's capacity trace, within one packet time", func() {
		s, err := netem.LoadScenario(filepath.Join(scenarioDir, "rfc8867-5.1.yaml"))
		Expect(err).NotTo(HaveOccurred())
		sender := s.Hosts[0]
		Expect(sender.Name).To(Equal("sender"))
		pathDelay := sender.Up.Delay.Base

		const payload = 1000
		wire := wireBytes(payload)
		interval := time.Duration(float64(wire*8) / 3e6 * float64(time.Second))
		res, err := measure(func() (*netem.Network, error) { return s.Build() }, 2*time.Second,
			flow{from: "sender", to: "receiver", size: payload, interval: interval, count: int(s.Duration / interval)})
		Expect(err).NotTo(HaveOccurred())
		arr := res[0].arrivals
		// When each packet left the bottleneck (no jitter: arrival minus the path's delay).
		departs := make([]time.Duration, len(arr))
		for i, a := range arr {
			departs[i] = a.recv - pathDelay
		}

		phases := []struct {
			at   time.Duration
			rate float64
		}{{0, float64(sender.Up.Capacity.Rate)}}
		for _, ph := range sender.Up.Schedule {
			phases = append(phases, struct {
				at   time.Duration
				rate float64
			}{ph.At, float64(ph.Capacity.Rate)})
		}
		Expect(phases).To(HaveLen(4))
		packetTime := func(rate float64) time.Duration {
			return time.Duration(float64(wire*8) / rate * float64(time.Second))
		}
		near := func(spacing, want time.Duration) bool {
			return (spacing - want).Abs() <= want/100
		}

		var lines []string
		type switchCheck struct {
			at, lastOld, newStart, tolerance time.Duration
		}
		var switches []switchCheck
		var phaseRates []float64
		for k, ph := range phases {
			// Delivered rate over the phase, away from its edges.
			end := s.Duration
			if k+1 < len(phases) {
				end = phases[k+1].at
			}
			from, to := ph.at+time.Second, end-500*time.Millisecond
			var bits int64
			for _, d := range departs {
				if d > from && d <= to {
					bits += int64(wire * 8)
				}
			}
			got := float64(bits) / (to - from).Seconds()
			phaseRates = append(phaseRates, got)
			lines = append(lines, fmt.Sprintf("%v-%v: %.0f bit/s (%.2f%% of %.0f)", ph.at, end, got, 100*got/ph.rate, ph.rate))
			if k == 0 {
				continue
			}
			// The switch: the last departure spaced at the old rate, and the first packet sent
			// whole at the new rate (its departure minus one packet time at the new rate).
			oldT, newT := packetTime(phases[k-1].rate), packetTime(ph.rate)
			c := switchCheck{at: ph.at, lastOld: -1, newStart: -1, tolerance: max(oldT, newT)}
			for i := 1; i < len(departs); i++ {
				d, spacing := departs[i], departs[i]-departs[i-1]
				if d < ph.at-2*time.Second || d > ph.at+2*time.Second {
					continue
				}
				if near(spacing, oldT) && c.newStart < 0 {
					c.lastOld = d
				}
				if near(spacing, newT) && c.lastOld >= 0 && d > c.lastOld && c.newStart < 0 {
					c.newStart = d - newT
				}
			}
			switches = append(switches, c)
			lines = append(lines, fmt.Sprintf("switch at %v: last old-rate departure %v, first new-rate packet started %v (tolerance %v)",
				ph.at, c.lastOld, c.newStart, c.tolerance))
		}
		report := "RFC 8867 5.1 trace, 3 Mbps offered: " + strings.Join(lines, "; ")
		AddReportEntry("schedule", report)

		for k, got := range phaseRates {
			Expect(got).To(BeNumerically("~", phases[k].rate, 0.02*phases[k].rate), "phase from %v", phases[k].at)
		}
		for _, c := range switches {
			Expect(c.lastOld).To(BeNumerically("~", c.at, c.tolerance), "last departure at the old rate, switch at %v", c.at)
			Expect(c.newStart).To(BeNumerically("~", c.at, c.tolerance), "first packet at the new rate, switch at %v", c.at)
		}
	})

	DescribeTable("takes a direction down for exactly the configured interval, within one packet time",
		func(yaml string, downFrom, downTo time.Duration) {
			s, err := netem.ParseScenario([]byte(yaml), "")
			Expect(err).NotTo(HaveOccurred())
			const interval = time.Millisecond
			res, err := measure(func() (*netem.Network, error) { return s.Build() }, time.Second,
				flow{from: "a", to: "b", size: 100, interval: interval, count: 5000})
			Expect(err).NotTo(HaveOccurred())
			lost := res[0].lost()
			Expect(lost).NotTo(BeEmpty())
			firstLost := time.Duration(lost[0]) * interval
			lastLost := time.Duration(lost[len(lost)-1]) * interval
			report := fmt.Sprintf("down %v-%v, a packet every %v: %d lost, sent %v to %v; stats: dropped by outage %d",
				downFrom, downTo, interval, len(lost), firstLost, lastLost, res[0].up.DroppedOutage+res[0].down.DroppedOutage)
			AddReportEntry("outage", report)

			Expect(firstLost).To(BeNumerically("~", downFrom, interval))
			Expect(lastLost).To(BeNumerically("~", downTo-interval, interval))
			Expect(lost).To(HaveLen(lost[len(lost)-1]-lost[0]+1), "every packet in the interval is lost, and only those")
		},
		Entry("outage on the sender's uplink", `
hosts:
  - name: a
    up: {outages: [{start: 2s, duration: 500ms}]}
  - name: b`, 2*time.Second, 2500*time.Millisecond),
		Entry("schedule down/up on the receiver's downlink", `
hosts:
  - name: a
  - name: b
    down:
      schedule:
        - {at: 1.2s, down: true}
        - {at: 3.7s, down: false}`, 1200*time.Millisecond, 3700*time.Millisecond),
		Entry("a loss phase (rate 100%) and its end on the sender's uplink", `
hosts:
  - name: a
    up:
      schedule:
        - {at: 0.8s, loss: {rate: 100%}}
        - {at: 2.3s, loss: {kind: none}}
  - name: b`, 800*time.Millisecond, 2300*time.Millisecond),
	)

	It("switches the delay at a phase's instant, within one packet time, without reordering", func() {
		s, err := netem.ParseScenario([]byte(`
hosts:
  - name: a
    up:
      delay: {base: 20ms}
      schedule:
        - {at: 1.5s, delay: {base: 80ms}}
        - {at: 3s, delay: {base: 5ms}}
  - name: b`), "")
		Expect(err).NotTo(HaveOccurred())
		const interval = time.Millisecond
		res, err := measure(func() (*netem.Network, error) { return s.Build() }, time.Second,
			flow{from: "a", to: "b", size: 100, interval: interval, count: 4500})
		Expect(err).NotTo(HaveOccurred())
		Expect(res[0].lost()).To(BeEmpty())
		// The first packet sent at or after each instant carries the new delay; before it, the
		// old one. Going from 80 ms down to 5 ms, packets sent right after the switch wait for
		// the last 80 ms packet (a link does not reorder): from 3 s + 75 ms on they take 5 ms.
		firstAt := map[time.Duration]time.Duration{}
		var prevRecv time.Duration
		for _, a := range res[0].arrivals {
			Expect(a.recv).To(BeNumerically(">=", prevRecv), "packet %d arrived before the one sent earlier", a.seq)
			prevRecv = a.recv
			want := 20 * time.Millisecond
			switch {
			case a.sent >= 3*time.Second:
				want = 5 * time.Millisecond
			case a.sent >= 1500*time.Millisecond:
				want = 80 * time.Millisecond
			}
			if _, seen := firstAt[want]; !seen && a.delay() == want {
				firstAt[want] = a.sent
			}
			if want == 5*time.Millisecond && a.sent < 3*time.Second+75*time.Millisecond {
				Expect(a.delay()).To(BeNumerically(">=", want), "packet sent at %v", a.sent)
				continue
			}
			Expect(a.delay()).To(Equal(want), "packet sent at %v", a.sent)
		}
		AddReportEntry("delay phases", fmt.Sprintf("20 ms -> 80 ms at 1.5 s: first 80 ms packet sent at %v; -> 5 ms at 3 s: first 5 ms packet sent at %v (after the 80 ms ones drained)",
			firstAt[80*time.Millisecond], firstAt[5*time.Millisecond]))
		Expect(firstAt[80*time.Millisecond]).To(BeNumerically("~", 1500*time.Millisecond, interval))
		Expect(firstAt[5*time.Millisecond]).To(BeNumerically("~", 3*time.Second+75*time.Millisecond, interval))
	})
})
