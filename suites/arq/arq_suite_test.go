// Package arq_test is the lab's ARQ suite (label "arq"): how well NACK/RTX repair works across
// the gateway, against what retransmission can do in theory. Each case builds an emulated world
// (embedded PBX, gateway, the lab's pion WebRTC client and SIP phone), places a WebRTC -> SIP
// call carrying G.711 audio (20 ms packets) and synthetic VP8 video (500 kbit/s, 30 frames/s,
// RTX on the WebRTC leg) both ways, and loses packets on one direction of the client's link,
// which also carries the round trip (every other link is perfect; the NACKs cross the lossless
// direction). scenario.MeasureARQ measures 30 s of media in virtual time, after a warm-up, at
// the receiver of the lossy direction: the phone when the client's uplink loses (the gateway
// NACKs the client, then forwards what it got), the client when its downlink loses (the client
// NACKs the gateway).
//
// Per media kind it asserts:
//
//   - effective loss (lost after repair, or repaired after a playout deadline of 400 ms behind
//     the earliest packet: metrics.AnalyzeStream) <= the 99% Wilson upper limit, for the
//     packets measured, of what k retransmission rounds leave: p^(k+1) for Bernoulli loss p
//     (metrics.ARQResidualLoss), with k = metrics.ARQRounds(400 ms, RTT, gap + 100 ms): a loss
//     is seen at the next packet (20 ms audio, 33 ms video), reported at pion's next NACK
//     (every 100 ms), and repaired one RTT later; every further round costs as much (pion's
//     responder resends a packet at most once per RTT + 5 ms and the generator asks again
//     every 100 ms, so a real round costs ceil((RTT+5 ms)/100 ms)·100 ms, never more than the
//     model's). k is 2 at 50 ms and 1 at 200 ms. For Gilbert-Elliott (p=0.01, r=0.3: 3.2%
//     loss in bursts of 3.3 packets) the bound is π·q^k, q the probability that a
//     retransmission is lost given its predecessor was, taken at the fewest packets that cross
//     the link between them (one RTT of audio and video), and the sample counts as
//     n(1-λ)/(1+λ) independent packets, λ = 1-p-r (see scenario's arqResidual);
//   - RTX overhead: retransmissions / (originals + retransmissions) is, when each lost
//     transmission is resent exactly once, the channel's loss rate: it must lie within the 99.9%
//     Wilson interval around the loss the channel dealt in the window (netem's count) for that
//     many transmissions: below, losses went unrepaired (a stream not NACKed); above, spurious
//     retransmissions;
//   - voice quality (audio): the ITU-T G.107 E-model's MOS (metrics.EModel: G.711 with PLC,
//     mouth to ear = 20 ms frame + RTT/2 + the 400 ms playout buffer, the measured jitter,
//     effective loss and its burst ratio) >= the MOS of the same call at the bound's loss.
//
// Against a container PBX (LAB_PBX; Asterisk here, FreeSWITCH when its image exists; skipped
// with the reason when unavailable) two cells run in real time: Bernoulli 5% at 50 ms on both
// paths, with a 10 s window, in the split world (scenario.Config.Backend: the client's link
// emulated, the PBX and the phone on loopback). The phone then receives through the PBX what
// the gateway repaired (Asterisk bridges G.711 and VP8 unchanged and keeps their sequence
// numbers, so the phone's log still shows every gap and late repair), and the gateway
// receives the phone's media through it. The bounds are the same; the packet minimum scales
// with the window. Measured with Asterisk 22 under the race detector, three runs: effective
// loss 0 on both paths and kinds, the RTX share at the channel's loss (audio and video 0.038-
// 0.049 at 4.3-4.4% client -> gateway, 0.032-0.042 at 3.5% gateway -> client; the embedded
// PBX's 30 s windows: 0.05 at 4.9%, 0.037 at 3.8%), about 20 s a cell.
//
// Every case records a lab.Measurement (suite "arq", Backend, and the "image" param) with these
// values, their bounds and the counts behind them (expected, lost, late, repaired, originals,
// retransmissions, NACKs, the channel's loss), and the full result as detail.
package arq_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it (Ginkgo specs have no
// *testing.T of their own).
var suiteT *testing.T

func TestARQ(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "ARQ (NACK/RTX)")
}
