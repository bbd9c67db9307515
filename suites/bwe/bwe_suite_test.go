// Package bwe_test is the lab's bandwidth-estimation suite (label "bwe"): the RFC 8867 test
// cases for congestion control of interactive real-time media, run through the gateway, judged
// with the RFC 8868 metrics (lab/metrics). Each case builds an emulated world (embedded PBX,
// gateway, the lab's pion WebRTC clients and SIP phones) whose client link is the case's path
// (fixtures/scenarios/rfc8867-*.yaml: 50 ms one-way delay, a 300 ms drop-tail queue, the
// capacity schedule of the RFC), and scenario.MeasureBWE runs the RFC's timeline in virtual
// time, sampling every 100 ms the clients' gcc targets, the rates they send and their phones
// receive, and the bottleneck (netem: offered and delivered rates on the wire, queue delay,
// drops).
//
// # What is under test, and which way
//
// client -> gateway: the WebRTC client is the media sender with send-side BWE (pion's gcc,
// webclient.WithBWE; its synthetic VP8 encoder follows the target up to 3 Mbit/s, above every
// capacity of the cases, so a flow is always network-limited), fed by the TWCC feedback the
// gateway returns; the bottleneck is the client's uplink. This is the closed loop the RFC
// cases evaluate, and every band below is about it.
//
// gateway -> client: the gateway forwards what the SIP phone sends; it runs no congestion
// control toward the client (it stamps no transport-wide sequence numbers, so the client
// returns no TWCC, and it neither estimates nor passes an estimate to the SIP side), and the
// phone does not adapt. Nothing closes the loop, so gcc cannot be evaluated that way. What can
// honestly be measured is the open loop: the phone sends VP8 at a fixed 1.5 Mbit/s through the
// RFC 8867 5.1 downlink, and the spec checks that the gateway passes the stream at the
// phone's rate (the downlink saturates) and how it treats the congested downlink: its NACK
// responder answers every NACK of the client, uncapped. The second measurement is a gap (see
// below).
//
// # The bands, and why
//
// GCC (draft-ietf-rmcat-gcc-02, which pion implements) decreases to 0.85 of the received rate
// on over-use and otherwise increases by at most 8% a second (η = 1.08), additively near its
// last decrease; its loss controller cuts A·(1-p/2) above 10% loss. Without probing (pion has
// none), a ramp from R0 to R takes ln(R/R0)/ln(1.08) seconds (scenario.GCCRampTime). Rates
// are judged on 1 s means of the bottleneck's offered rate (per-100 ms rates swing with every
// frame), against the capacity on the wire (IP/UDP headers counted, as netem's capacity does).
// The bands were checked against a sender without estimation (a fixed 2.5 Mbit/s: loss 86%,
// queue p95 287 ms, never at the capacity) and against a client that gets no TWCC feedback
// (its target stays at its 300 kbit/s start: utilization 0.34, never at the capacity); both
// fail them.
//
//   - reach: from the start, or a flow joining, pausing or resuming, the offered rate must
//     first lie within [0.75, 1.1]·C no later than t0 + 2·GCCRampTime(R0, 0.75·C) + 2 s, where
//     R0 is the lowest 1 s rate before (and t0 when it was): the ramp's start. The factor 2
//     allows for the encoder and the pacer trailing the target (pion's ramps measure about
//     6%/s), the 2 s for one bin of averaging and the feedback interval. When that bound
//     exceeds the epoch, a GCC without probing cannot be asked to reach the capacity in it
//     and the epoch is only measured. After a capacity decrease: the reaction bound plus the
//     climb back from a loss cut to half the capacity, 3 s + 2·GCCRampTime(0.5·C, 0.75·C) =
//     13.5 s. After a capacity increase the time is recorded without a bound: GCC climbs
//     additively near its previous estimate, which the model does not bound (pion once in 12
//     runs did not reach 0.75·2.5 Mbit/s within 5.1's 20 s phase).
//   - reaction: after a capacity decrease the offered rate must be at most 1.1·C from the
//     third 1 s bin on (<= 3 s). GCC sees the over-use one RTT (100 ms) plus the queue (up to
//     300 ms) plus a feedback interval (100 ms) after the drop, cuts at once, and the encoder
//     follows at its next frame: under 1 s, so the drop's own bin and at most the next one
//     may still exceed C; one more bin of margin for the scheduler.
//   - convergence (RFC 8868 §2 item 8, metrics.ConvergenceTime: ±25% of C, held 3 s; the band
//     is that wide because GCC's own sawtooth spans 0.72-1.0 C) after a capacity decrease:
//     <= 15 s, the climb-back argument of reach plus the 3 s hold.
//   - utilization (RFC 8868 §2 item 10: delivered/capacity, time-weighted) from 5 s after the
//     capacity was first reached to the end of the run, per case: the RFC's phases are short,
//     so the climbs after each increase and after each loss cut weigh in. An η = 1.08 GCC
//     averages about 0.83 over 5.1 (0.92 in steady state between its decreases, about 0.6
//     during its climbs): 0.70 for 5.1, 0.75 for 5.2, 0.65 for 5.3 (see its spec), 0.85 for
//     5.4 and 5.8 (constant capacity). The offered rate over the same time must stay <= 1.05·C:
//     5% above the capacity grows the queue by 50 ms every second and fills the 300 ms buffer
//     within 6 s, which a delay-based controller exists to prevent.
//   - queue delay (RFC 8868 §2 item 4, the bottleneck's queueing part, 100 ms samples over the
//     run): p95 <= 250 ms. A delay-based controller keeps a standing queue of tens of ms and
//     lets it grow only in the transients after a drop (a correct GCC's p95 stays near or
//     below 150 ms); a loss-based or open-loop sender keeps the buffer full (p95 >= 285 ms).
//     The band lies between the two rather than at 200 ms because pion's gcc, in about one run
//     in eight of 5.1 and 5.3, overshoots a 2-2.5 Mbit/s capacity on a key frame and lets the
//     queue fill for a few seconds (p95 206-234 ms measured in those runs).
//   - loss (RFC 8868 §2 item 5, drops at the bottleneck queue over the run): <= 5%. Only the
//     capacity drops cost packets, 0.5-1% of a run (the half second before the cut, when the
//     sender overdrives the new capacity); the episodes above reach 3%; an open loop, 86%.
//   - feedback: the gateway returns TWCC feedback every 100 ms per call (pion's TWCC sender);
//     at least half of that must have been sent over the run.
//   - fairness (RFC 8868 §2 item 7, Jain's index of the flows' delivered rates): >= 0.80 once
//     every flow had time to converge (for two flows: the weaker one has at least half the
//     stronger one's rate). For 5.2 (both flows start together) over 25-125 s; for 5.4 over
//     60-120 s (the last flow joined at 40 s and needs GCCRampTime(0.3, 1.17 Mbit/s) ≈ 18 s to
//     reach its share) and for 5.8 over 80-120 s (20 s after the resume). GCC's additive
//     increase near convergence and its adaptive over-use threshold are there to make
//     competing GCC flows converge to equal shares (Carlucci et al., "Congestion control for
//     Web real-time communication", IEEE/ACM ToN 2017, report a Jain index above 0.9 for
//     competing GCC flows).
//
// The lab's client and the gateway NACK like a browser in these runs (at most 10 requests
// per packet, libwebrtc's limit; scenario.DefaultBWENACKRetries): with pion's default, which
// asks until the packet leaves its receive log, the gateway keeps NACKing for tens of
// seconds after a capacity drop and, in about a third of the 5.1 runs, drives the client's
// gcc loss controller to its 100 kbit/s floor for some 10 s on a link that no longer drops
// anything.
//
// # Known gaps (label "gap")
//
// The specs labelled "gap" assert what a correct implementation does and fail today; they
// are kept failing on purpose, with the measured figures in the failure message and the
// report (select the rest with --label-filter='bwe && !gap'):
//
//   - pion's gcc (interceptor v0.1.51) is not self-fair: a flow that starts late (5.4) or
//     resumes after a pause (5.8) stays at a fraction of its share for the rest of the run
//     (Jain 0.45-0.77 measured over 20 runs). Its decrease (0.85 of each flow's own received
//     rate) and its multiplicative increase keep the ratio between flows, and a paused flow's
//     estimate collapses to its audio rate (no application-limited handling), so it resumes
//     as a latecomer.
//   - gateway -> client, the gateway's NACK responder is not congestion controlled: on a
//     congested downlink it answers every NACK of the client, the retransmissions congest the
//     downlink further and are NACKed again (1.1-1.3 retransmissions per media packet the
//     phone sent, with a browser-like client; about 13 with the lab client's default, which
//     NACKs without limit). RFC 4588 §9 asks that retransmissions be congestion controlled
//     together with the original stream; the spec allows at most one retransmission per
//     media packet, on average.
//
// # Against a container PBX
//
// Against each container PBX LAB_PBX selects (Asterisk here, FreeSWITCH when its image exists;
// skipped with the reason when unavailable), one case runs in real time: RFC 8867 5.1's first
// phase only, 1 Mbit/s for 40 s (not the whole 100 s case), client -> gateway, in the split world
// (scenario.Config.Backend: the client's link is the case's path, the PBX and the phone on
// loopback), against 5.1's bands: reach, queue delay, loss, feedback, utilization and the
// sending rate after the reach (no capacity change in the phase: no reaction or convergence).
// The phone's media reaches the gateway through the PBX, the client's gcc is fed by the
// gateway's TWCC as with the embedded PBX. Measured with Asterisk 22 under the race detector,
// four runs: capacity reached at 8-17 s (bound 21 s; the embedded PBX's 5.1, in virtual time:
// 10-12 s), queue delay p95 49-100 ms, no loss, utilization after the reach 0.91-0.96; 44 s.
//
// Every spec records a lab.Measurement (suite "bwe", Backend, and the "image" param) with its
// values and bounds, and scenario.BWEDetail as detail: the 100 ms series of target, sending and
// delivered rates against the capacity with the queue delay, per flow and at the bottleneck,
// and the epochs.
package bwe_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it (Ginkgo specs have no
// *testing.T of their own).
var suiteT *testing.T

func TestBWE(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "Bandwidth estimation (RFC 8867)")
}
