// Package fec_test is the lab's FEC suite (label "fec"): how well RED (RFC 2198 redundant Opus)
// and FlexFEC-03 (video) repair loss across the gateway, against what their codes can do in
// theory. Each case builds an emulated world (embedded PBX, gateway, the lab's pion WebRTC
// client and SIP phone), places a WebRTC -> SIP call carrying Opus (20 ms frames of 80 bytes)
// RED-framed with distance d, and synthetic VP8 (500 kbit/s, 30 frames/s; 100 kbit/s the other
// way) protected by FlexFEC with pion's 5+2 code (FEC packet j of a batch protects the media
// packets i with i mod 2 = j: parity groups of 3 and 2 packets), both ways on the WebRTC leg:
// the gateway gets [media] red=1, red_distance, flexfec=1, fec_media_packets, fec_packets and
// Opus first in codecs, the client WithRED and WithFlexFEC. One direction of the client's link
// loses packets, both carry the round trip, every other link is perfect. scenario.MeasureFEC
// measures 30 s of media in virtual time, after a 2 s warm-up, at the receiver of the lossy
// direction: the phone when the client's uplink loses (the gateway decodes RED and FlexFEC,
// then forwards), the client when its downlink loses (the gateway encodes, the client decodes).
//
// NACK is off on both ends (rtc.Config.NACKSkipLastN = 2^15: pion's generator then reports no
// missing packet, see scenario's fecNoNACK), so that what the receiver misses is what FEC
// left: nacks and retransmissions over the window are asserted to be 0.
//
// The matrix is the ARQ suite's, Bernoulli {1%, 5%, 10%} x RTT {50, 200 ms} each way, plus
// Gilbert-Elliott (p=0.01, r=0.3: 3.2% loss in bursts of 3.3 packets) at 50 ms with RED
// distance 2 (d is 1 elsewhere). FEC does not depend on the round trip: the 200 ms rows differ
// from the 50 ms ones by the draw only, and are there to compare with ARQ's.
//
// Per media kind it asserts:
//
//   - residual loss (residual_loss_video, residual_loss_audio: lost after FEC over expected,
//     metrics.AnalyzeStream on the receiver's window, no playout deadline) <= the 99% Wilson
//     upper limit, over an effective sample, of what the code leaves. Bernoulli loss p:
//     FlexFEC leaves fec.FlexFECResidualLoss(p, 5, 2) = (p/5)·[3(1-(1-p)^3) + 2(1-(1-p)^2)]
//     (a lost packet is rebuilt exactly when every other packet of its group, parity
//     included, arrived; groups do not overlap), 2.4% at 10%; RED leaves
//     fec.REDResidualLoss(p, d) = p^(d+1) (packet s and its d carriers s+1..s+d all lost).
//     The sample: residual losses cluster, a failed parity group leaving up to m = ceil(N/K)
//     = 3 packets missing, so the video count has at most m times the binomial variance
//     (n(1-r)/m packets); RED's residual indicators of neighbours share losses, lag-k
//     correlation at most p^k (n(1-p)/(1+p) packets). Gilbert-Elliott: bursts defeat
//     single-parity codes, and the bound is computed from the code's structure: packet i is
//     missing only if lost (probability π) with another packet of its repair set, which lies
//     at least |o-i| packets away on the link (their distance in the stream; other streams
//     interleave) and is lost, given a loss, with probability at most q(m) = π_B +
//     π_G·λ^m (λ = 1-p-r), so by the union bound residual <= π·mean_i min(1, Σ_o q(|o-i|)):
//     0.89π = 2.9% for 5+2 (a batch's last media packet and FEC packet 0 are adjacent); for
//     RED π·q(1)^d = 0.49π = 1.6% at d = 2. The sample is further divided by
//     (1+q(1))/(1-q(1)) = 5.7 for the bursts. These are upper bounds: FEC is shown to help,
//     not to meet a Bernoulli figure;
//   - recovery is real (recovered_fec_min, recovered_red_min): of the L media packets the
//     channel took in the window (recovered plus still missing), each is rebuildable with
//     probability F = 1 - residual(p̂)/p̂ at the loss p̂ the channel dealt in the window
//     (FlexFEC (1/N)·Σ_j n_j(1-p)^n_j, 0.76 at 10%; RED 1 - p^d); rebuildable losses of
//     different sets are independent, of one set exclusive, so the recovered count must reach
//     L times the 99.9% Wilson lower limit of F over L trials (99.9%: some twenty such
//     checks a run are about the channel's draw, and CI must not cry wolf; the exactness
//     check below holds the decoder to every packet). Gilbert-Elliott: F = 1 -
//     bound/π (0.11 video, 0.51 audio) over the effective number of trials; recovered > 0 is
//     asserted everywhere;
//   - exactness, packet by packet (missed_fec, missed_red, unexplained_fec, unexplained_red,
//     all 0): taps of the client's and the gateway's ICE sockets see every datagram (the RTP
//     header of SRTP is in the clear). On the receiver's wire, for the window's whole FlexFEC
//     batches (found from the order of arrival: a batch's FEC packets follow its last media
//     packet) and its RED packets, a missing media packet is fixable when the rest of its
//     repair set arrived (FlexFEC: its group and its FEC packet; RED: one of its d
//     carriers). Missed counts the fixable ones the receiving application did not get (the
//     client's track; for the gateway, the phone behind its bridge and the PBX, sequence
//     numbers mapped by the gateway's constant offsets), unexplained the ones it got that no
//     code could rebuild;
//   - overhead, on the sender's wire (RTP sizes: the SRTP tag, 16 bytes, measured by matching
//     logged packets, taken off). fec_overhead = FlexFEC bytes / VP8 bytes: a FEC packet is
//     at least as large as each packet it protects (the same header, a 20-byte FlexFEC-03
//     header, the XOR of their payloads padded to the longest), and at most the largest plus
//     32 bytes, K of them per N media packets, so with M media packets of mean size S and
//     largest S_max in the window it lies in [K·floor(M/N)/M, K·ceil(M/N)·(S_max+32)/(M·S)],
//     about [0.40, 0.51] (measured 0.48: a group of 2 or 3 packets usually holds a full one).
//     red_overhead = (RED payload - B)/B with B the Opus frame (80 bytes): a RED packet
//     carries a 1-byte primary header and d blocks of 4 + B bytes, so it lies in [d, d +
//     (1+4d)/B] = [1, 1.0625] for d = 1 (below: a frame missing; above: a block too many);
//     with constant frames it is exactly the upper end.
//
// Against a container PBX (LAB_PBX; Asterisk here, FreeSWITCH when its image exists; skipped
// with the reason when unavailable) two cells run in real time: Bernoulli 10% at 50 ms on both
// paths, with a 10 s window, in the split world (scenario.Config.Backend). RED and FlexFEC live
// on the WebRTC leg; Opus and VP8 cross Asterisk unchanged (the same codec on both of its
// legs, sequence numbers kept), so the exactness check still maps the phone's packets to the
// client's. Measured with Asterisk 22 under the race detector, three runs: missed and
// unexplained 0, residual loss 0.6-1.2% audio and 1.5-2.8% video (bounds 3.3% and 6.5%; the
// embedded PBX's 30 s windows: 0.6-1.1% and 1.9-2.2%), overheads as on the embedded PBX
// (FlexFEC 0.48, RED 1.0625), about 18 s a cell.
//
// Every case records a lab.Measurement (suite "fec", Backend, and the "image" param) with these
// values, their bounds and the counts behind them (expected, lost, channel-lost, fixable,
// theory, sample sizes, the channel's loss, packets on the wire), and the full
// scenario.FECResult as detail. The 14 embedded cases take about 35 s with the race detector.
package fec_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it (Ginkgo specs have no
// *testing.T of their own).
var suiteT *testing.T

func TestFEC(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "FEC (RED and FlexFEC)")
}
