package fec

import "math"

// FlexFECResidualLoss is the expected fraction of media packets still missing after
// FlexFEC repair, when every packet (media and FEC) is lost independently with probability
// p, for the code pion's flexfec encoder builds with numMedia media packets and numFEC FEC
// packets per batch (flexfec.NumMediaPackets, flexfec.NumFECPackets; its defaults are 5
// and 2).
//
// Derivation. pion's encoder (ProtectionCoverage) collects numMedia = N consecutive packets,
// then sends numFEC = K FEC packets whose masks interleave: FEC packet j protects the media
// packets i with i mod K = j (i < N). Batches do not overlap, so the groups G_j = {i < N :
// i mod K = j} are disjoint, each with one parity packet: a single-parity code of length
// n_j + 1, where n_j = |G_j| = ceil((N-j)/K) (K > N leaves the extra FEC packets empty:
// they are not sent). With XOR parity, a lost media packet of G_j is rebuilt exactly when the
// n_j - 1 other media packets of G_j and FEC packet j all arrive (probability (1-p)^n_j); a
// rebuilt packet completes no other group, so there is nothing more to gain. A media packet
// therefore stays missing with probability p * (1 - (1-p)^n_j), and averaging over the
// batch:
//
//	residual = (p / N) * sum_j n_j * (1 - (1-p)^n_j)
//
// numFEC <= 0 (no protection) gives p; numMedia <= 0 gives 0.
func FlexFECResidualLoss(p float64, numMedia, numFEC int) float64 {
	if numMedia <= 0 {
		return 0
	}
	if numFEC <= 0 {
		return p
	}
	var sum float64
	for j := 0; j < min(numFEC, numMedia); j++ {
		n := (numMedia - j + numFEC - 1) / numFEC
		sum += float64(n) * (1 - math.Pow(1-p, float64(n)))
	}
	return p * sum / float64(numMedia)
}

// REDResidualLoss is the expected fraction of packets still missing after RED repair with
// the given distance, under independent loss with probability p. Packet s travels as the
// primary of RED packet s and as a redundant block of the next distance packets s+1 ..
// s+distance (REDEncoder, and libwebrtc, repeat the distance previous payloads in each
// packet); it is missing only when all distance+1 of them are lost: p^(distance+1). (At the
// end of a stream the last packets have fewer carriers; over a call that is negligible.)
func REDResidualLoss(p float64, distance int) float64 {
	return math.Pow(p, float64(max(distance, 0)+1))
}
