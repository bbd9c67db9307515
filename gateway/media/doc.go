// Package media is the per-call media bridge between the client's PeerConnection (ICE,
// DTLS-SRTP, NACK/RTX, TWCC, done by pion and gateway/rtc) and a plain RTP/RTCP socket pair
// toward the PBX, opened through an injected transport.Net.
//
// Per media kind a Stream runs two directions, each a chain of small Handlers in pion's
// interceptor shape (bound once per path, then called per packet), all assembled in
// Stream.pipeline so the whole media path reads top to bottom: payload-type classification,
// RFC 3550 receive statistics, RFC 4733 DTMF detection, payload-type mapping, header-extension
// stripping, SSRC/sequence/timestamp rewriting (continuous across re-INVITEs and new tracks),
// send statistics; the SIP -> WebRTC direction first latches onto the PBX's source
// (symmetric RTP). Beside the chains run the long-lived services: the SIP leg's SR/RR every
// RTCPInterval, the translation of key-frame requests (PLI/FIR) between the legs, DTMF
// generation, and the counters that Stats snapshots.
//
// A telephone-event the SIP leg did not negotiate (rtc.Selection.ClientEvents: the client is
// offered it anyway, browsers send DTMF in-band) is consumed on its way to SIP: each event is
// reported once, at its end, with DTMF.SIPInfo set (the call layer sends SIP INFO), and the
// rewriter closes the sequence numbers it leaves out so the PBX sees no loss.
//
// There is no transcoding: a format reaches the other leg only when both negotiated it
// (gateway/rtc.Match decides; no common codec is a refusal before a bridge exists). RED
// (RFC 2198) and FlexFEC-03 are declined at negotiation unless rtc.Config.RED or
// rtc.Config.FlexFEC is on; then gateway/rtc decodes them before the bridge reads the track
// (RED into plain Opus, the lost packets it repeats first; FlexFEC into the video packets it
// rebuilds) and encodes them after the bridge writes, so the bridge still sees only the
// negotiated Opus and video formats, and the SIP side gets nothing else. The rebuilt packets
// are counted in LegStats.Recovered (per mechanism in rtc.RepairStats) and take no part in
// jitter (fec.go).
package media
