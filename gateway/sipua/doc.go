// Package sipua is the SIP dialog layer of siprtc, on sipgo: the gateway registers its proxy
// account and account pool and places and answers calls with it, and the lab's SIP phone
// (lab/peers/sipphone) is built on it too.
//
// A UA serves a set of accounts on one UDP socket of an injected transport.Net, plus TCP or TLS
// (Config.Transport, Config.TLS; stream connections are opened through the Net too, by
// internal/sipnet: sipgo never opens a socket of its own). It does:
//
//   - registration: digest authentication (401/407), 423 Min-Expires, refresh after half the
//     granted time, retry with capped exponential backoff and jitter after a failure, OPTIONS
//     keepalives that notice a lost server, per-account state with a callback and a snapshot,
//     staggered first REGISTERs for large pools (register.go);
//   - outgoing calls: INVITE with an SDP offer and extra headers, provisional responses and early
//     media reported, reliable ones PRACKed (RFC 3262), 407 digest, CANCEL when the context ends
//     (invite.go);
//   - incoming calls: delivered with the account they target; ring (reliably when the caller
//     supports 100rel), 183 with early media, answer only when told, reject with any code; a
//     CANCEL answered 200/487 and reported (incoming.go);
//   - dialogs: route sets, BYE either way, 2xx retransmission until the ACK and the ACK sent
//     again for a retransmitted 2xx, re-INVITE and UPDATE both ways with offer/answer callbacks
//     and glare (491), SIP INFO DTMF both ways (application/dtmf-relay, application/dtmf),
//     session timers (RFC 4028) refreshed by UPDATE or re-INVITE and ended by BYE on expiry
//     (dialog.go, timer.go, dtmf.go).
//
// sipgo (v1.7.3) is used for what it does well, the transport and transaction layers; the
// dialogs are done here, because sipgo's dialog helpers have neither 100rel nor session timers.
// Pitfalls of sipgo this package works around:
//
//   - An INVITE server transaction is terminated when its handler returns: the handler of an
//     incoming call holds it until the call is answered, rejected or cancelled.
//   - After a CANCEL, sipgo answers 487 itself, but a Respond racing it replaces the 487 as the
//     response it retransmits: the 487 is put back (Incoming.respond).
//   - A client transaction blocks until its responses are read: every transaction's responses
//     are drained until it ends, and transactions are terminated when done.
//   - A 2xx retransmitted after the INVITE client transaction ended arrives as an unmatched
//     response: it is ACKed again from the dialog (UA.onStrayResponse).
//   - sipgo sends no 2xx retransmissions for the UAS core: Dialog.retransmit does.
//   - Every message is handed over on a goroutine of its own, so messages sent back to back can
//     arrive swapped: a 183 before its 180 (each new RSeq is PRACKed, not only last+1), a
//     re-INVITE before the ACK of the previous one (it counts as that ACK).
package sipua
