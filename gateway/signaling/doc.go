// Package signaling is the gateway's client-facing side: a JSON-over-WebSocket call-invitation
// protocol that mirrors the anyRTC/Agora RTM call-invitation API (LocalInvitation and
// RemoteInvitation, with their exact state sets, failure codes and timeouts), plus the per-call
// WebRTC signalling that follows an invitation (SDP offer/answer, trickle ICE, hangup, DTMF).
//
// The package owns both invitation state machines: it enforces the legal transitions and the
// 30 s / 60 s timers, so the call side (SIP, media) only reports what SIP did, through methods
// such as [LocalInvitation.Received] or [RemoteInvitation.Confirm], and receives what clients do
// through the [Backend] interface. It contains no SIP or WebRTC code.
//
// A [Server] is served on any net.Listener ([Server.Serve]) or mounted as an http.Handler, so the
// lab can hand it an in-memory stream listener; it never opens a socket itself and does all its
// timing through the time package, so it runs unchanged inside testing/synctest.
//
// The wire protocol is documented with examples in docs/signaling.md.
package signaling
