package netem_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/siprtc/siprtc/lab/netem"
)

// wireBytes is what a datagram of payload bytes costs on a link: lab/netem's capacity counts
// the IPv4 and UDP headers too.
func wireBytes(payload int) int { return payload + 28 }

var _ = Describe("Capacity", Label("netem"), func() {
	const base = 10 * time.Millisecond

	DescribeTable("a saturated link delivers within 2% of its rate, and its queue delay never exceeds the queue",
		func(c netem.CapacityModel, payload int, load float64, run time.Duration) {
			wire := wireBytes(payload)
			interval := time.Duration(float64(wire*8) / (load * float64(c.Rate)) * float64(time.Second))
			count := int(run / interval)
			res, err := measure(pair(51, netem.LinkConfig{Capacity: c, Delay: netem.DelayModel{Base: base}}), 2*time.Second,
				flow{from: "a", to: "b", size: payload, interval: interval, count: count})
			Expect(err).NotTo(HaveOccurred())
			r := res[0]

			// The queue limit in time: QueueDelay, QueueBytes at the rate, or the default 300 ms.
			limit := c.QueueDelay
			if c.QueueBytes > 0 {
				limit = time.Duration(float64(c.QueueBytes*8) / float64(c.Rate) * float64(time.Second))
			}
			if limit == 0 {
				limit = 300 * time.Millisecond
			}
			// Throughput over the saturated part of the run: from 2 s (the queue has filled) to the
			// last send, counted at the receiver in wire bits.
			from, to := 2*time.Second, r.first+time.Duration(count-1)*interval
			var bits int64
			var maxQueue time.Duration
			for _, a := range r.arrivals {
				if a.recv > from && a.recv <= to {
					bits += int64(wire * 8)
				}
				maxQueue = max(maxQueue, a.delay()-base)
			}
			rate := float64(bits) / (to - from).Seconds()
			packetTime := time.Duration(float64(wire*8) / float64(c.Rate) * float64(time.Second))
			report := fmt.Sprintf("capacity %d bit/s, queue limit %v, %d B datagrams offered at %.1fx: delivered %.0f bit/s (%.3f%% of the rate); "+
				"queue delay max %v (receiver: %v, packet time %v); offered %d delivered %d queue drops %d",
				c.Rate, limit, payload, load, rate, 100*rate/float64(c.Rate), r.up.QueueDelay.Max, maxQueue, packetTime,
				r.up.OfferedPackets, r.up.DeliveredPackets, r.up.DroppedQueue)
			AddReportEntry("capacity", report)

			Expect(rate).To(BeNumerically("~", float64(c.Rate), 0.02*float64(c.Rate)), "delivered rate")
			Expect(r.up.DroppedQueue).To(BeNumerically(">", 0), "the link was saturated")
			Expect(r.up.QueueDelay.Max).To(BeNumerically("<=", limit), "queue delay (waiting and own transmission)")
			Expect(maxQueue).To(BeNumerically("<=", limit), "one-way delay minus the base delay")
			Expect(r.up.OfferedPackets).To(Equal(r.up.DeliveredPackets+r.up.DroppedQueue), "every packet is delivered or dropped")
		},
		Entry("2 Mbps, 100ms queue, 1200 B at 1.5x", netem.CapacityModel{Rate: 2_000_000, QueueDelay: 100 * time.Millisecond}, 1200, 1.5, 20*time.Second),
		Entry("1 Mbps, 64 KB queue, 1000 B at 1.2x", netem.CapacityModel{Rate: 1_000_000, QueueBytes: 64_000}, 1000, 1.2, 20*time.Second),
		Entry("500 kbps, default queue, 200 B at 2x", netem.CapacityModel{Rate: 500_000}, 200, 2.0, 20*time.Second),
		Entry("10 Mbps, 50ms queue, 1200 B at 1.1x", netem.CapacityModel{Rate: 10_000_000, QueueDelay: 50 * time.Millisecond}, 1200, 1.1, 10*time.Second),
	)

	It("loses nothing and queues for at most one packet time below its rate", func() {
		c := netem.CapacityModel{Rate: 1_000_000, QueueDelay: 100 * time.Millisecond}
		res, err := measure(pair(52, netem.LinkConfig{Capacity: c}), time.Second,
			flow{from: "a", to: "b", size: 1000, interval: 10 * time.Millisecond, count: 2000}) // 822 kbit/s on the wire
		Expect(err).NotTo(HaveOccurred())
		r := res[0]
		packetTime := time.Duration(wireBytes(1000) * 8 * int(time.Second) / 1_000_000)
		report := fmt.Sprintf("1 Mbps at 82%%: %d of 2000 delivered, queue delay %v (packet time %v)", len(r.arrivals), r.up.QueueDelay, packetTime)
		AddReportEntry("capacity below rate", report)
		Expect(r.arrivals).To(HaveLen(2000))
		Expect(r.up.QueueDelay.Max).To(BeNumerically("<=", packetTime))
	})
})
