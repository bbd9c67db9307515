// Package rtc builds the gateway's pion/webrtc PeerConnections from a typed Config: the codecs
// (Opus with in-band FEC, G.722, PCMU, PCMA, telephone-event at 8000 and 48000 Hz, VP8 and
// H.264 with RTX), the interceptors (NACK generator and responder for audio and video, RTCP
// reports, TWCC feedback, repair counters) and the network settings (an injected
// transport.Net, public address, ICE-lite, port range or one-port UDP mux, ICE timeouts).
//
// It also decides what a call can carry: Match and PickCodecs intersect the WebRTC side's
// formats with the SIP side's in the configured order of preference, and PreferCodecs makes
// the PeerConnection answer with exactly that selection. RED (RFC 2198), which Chromium
// offers, is declined by not being registered: pion has no RED support and the media bridge
// passes payloads through without transcoding, so the answer simply leaves it out.
//
// NewPeer gives each call its own API so that its RepairCounters (NACKs, retransmissions,
// RTX, PLI/FIR, TWCC feedback, reports: pion's interceptors export none) are per call.
// TrackLocal is a local track that keeps each packet's payload type, which pion's
// TrackLocalStaticRTP overwrites (it would turn telephone-events into audio).
package rtc
