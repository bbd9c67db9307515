// Package rtc builds the gateway's pion/webrtc PeerConnections from a typed Config: the codecs
// (Opus with in-band FEC, G.722, PCMU, PCMA, telephone-event at 8000 and 48000 Hz, VP8 and
// H.264, each codec with RTX at its own clock rate; audio RTX is answered only to a client that
// offers it, which browsers do not, and Config.NoAudioRTX leaves it out), the interceptors
// (NACK generator and responder for audio and video, RTCP reports, TWCC feedback, repair
// counters) and the network settings (an injected
// transport.Net, public address, ICE-lite, port range or one-port UDP mux, ICE timeouts).
//
// It also decides what a call can carry: Match and PickCodecs intersect the WebRTC side's
// formats with the SIP side's in the configured order of preference, and PreferCodecs makes
// the PeerConnection answer with exactly that selection. RED (RFC 2198), which Chromium
// offers, and FlexFEC-03 are declined by not being registered, unless Config.RED or
// Config.FlexFEC is on: then (fec.go, with gateway/fec) the client's RED is decoded and its
// lost video packets are rebuilt from its FlexFEC stream before a TrackRemote read returns
// them (marked: RecoveredBy), the Opus sent is RED-framed and the video sent carries pion's
// FlexFEC-03, so the media bridge still passes only the negotiated Opus and video through.
// pion hands no receiver its FlexFEC stream: the gateway reads it from the SRTP session's
// buffers (SettingEngine.BufferFactory). Set remote descriptions through Peer, which notes
// the payload types the two need.
//
// pion gives only video senders an RTX stream: Config.SendAudioRTX adds one for audio
// (audiortx.go), signalled by Peer.LocalDescription. Receiving audio RTX needs nothing.
//
// NewPeer gives each call its own API so that its RepairCounters (NACKs, retransmissions,
// RTX, PLI/FIR, TWCC feedback, reports, RED and FlexFEC: pion's interceptors export none) are
// per call.
// TrackLocal is a local track that keeps each packet's payload type, which pion's
// TrackLocalStaticRTP overwrites (it would turn telephone-events into audio).
package rtc
