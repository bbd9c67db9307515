// Package fec is the gateway's forward error correction and redundancy, written from the
// specifications because pion has neither on the receiving side: RFC 2198 redundant audio
// (RED, how Chrome protects Opus) both ways, and a receiver for FlexFEC-03
// (draft-ietf-payload-flexible-fec-scheme-03, the FlexFEC Chrome sends and pion's
// pkg/flexfec encoder produces).
//
// RED: REDEncoder frames each packet with up to distance earlier payloads of the same stream
// (oldest first, then the primary, as libwebrtc's encoder writes them); REDDecoder unframes a
// RED packet into its primary and the earlier packets it repeats that were lost, numbering
// them as libwebrtc does (the k-th block before the primary is sequence number primary - k).
//
// FlexFEC: FlexFECDecoder keeps a sliding window of the protected stream's media packets and
// of the FEC packets that cannot repair anything yet, and rebuilds a lost media packet by XOR
// as soon as it is the only packet missing from a FEC packet's protected set; a rebuilt
// packet may complete another FEC packet's set, and so on. It accepts the flexible mask with
// its three lengths (15, 46 and 109 packets, ended by the K bits), one protected SSRC per FEC
// packet (what both pion and libwebrtc send); retransmission FEC packets (R bit) and fixed
// masks (F bit) are rejected.
//
// Both decoders count what they do (REDStats, FlexFECStats): the counters are atomics, safe
// to read while the decoder runs. The decoders themselves are not safe for concurrent use.
//
// FlexFECResidualLoss and REDResidualLoss give the loss left after repair under independent
// (Bernoulli) loss, for the codes these encoders build; the FEC suite compares measurements
// with them.
package fec
