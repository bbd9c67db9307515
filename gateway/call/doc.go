// Package call is the gateway's call layer: the state machine that ties one SIP dialog
// (gateway/sipua), one signalling invitation (gateway/signaling) and one media bridge
// (gateway/rtc + gateway/media) into a call, whichever side places it. Manager implements
// signaling.Backend for the clients and takes incoming SIP calls with HandleIncoming.
//
// # WebRTC -> SIP
//
// The client's invite carries its SDP offer. The gateway picks what both sides can carry
// (rtc.PickCodecs against the gateway's own SIP formats; none in common: the invite gets an
// INVALID_ARGUMENT error), opens the PeerConnection and the bridge, and sends the INVITE from
// the caller's account (below). The client's SDP answer is made once the SIP side has
// answered (183 with SDP, or 200), restricted to the formats the PBX accepted, so both legs
// carry the same payloads and the bridge never transcodes. SIP responses map to invitation
// outcomes:
//
//	180, 183                          RECEIVED_BY_REMOTE (183 with SDP: early media bridged)
//	200                               ACCEPTED_BY_REMOTE
//	486, 488, 403, 6xx                REFUSED_BY_REMOTE with the SIP code
//	404, 410, 480, 484, 5xx, others   FAILURE PEER_OFFLINE with the SIP code and reason
//	408, no response                  FAILURE PEER_NO_RESPONSE
//
// The client's cancel (and the invitation timers) send CANCEL; a 200 that crosses it is
// hung up.
//
// # SIP -> WebRTC
//
// An INVITE to the proxy account is for the user named by the user part of its X-Number
// header (the PBX's "0 + number" extension sets it); an INVITE to a pool account is for the
// user holding that account. The gateway offers the client what both sides can carry (no
// common codec: 488) with the invitation, sends 180 when the client acknowledges it, and
// answers 200 only when the client accepts with its SDP answer (ACCEPTED at the ACK).
// Refused: the client's code (486, 600, 603). Not logged in within the invitation's offline
// timer, no acknowledgement, not answered in time, session ended: 480 (408 when the
// invitation expired). A CANCEL from the caller makes the invitation CANCELED. A busy callee
// (too many calls) gets 486, an unknown one 404, a shutting-down gateway 503.
//
// # Accounts
//
// A call leaves from one SIP account, chosen deterministically:
//
//  1. a user whose id is a pool account calls from that account;
//  2. otherwise the user holds one pool account from its first call until its session ends:
//     the least recently assigned account that nobody holds, registered ones first;
//  3. with no pool ([rtm2sip] off), calls leave from the proxy account, as in SRProxy.
//
// Every account is busy when all are held: the invite gets LIMIT_EXCEEDED. A call flagged as
// a PSTN call (invitation content {"pstn": true}) goes to sip:PREFIX+number@PSTN-server.
//
// # During the call
//
// BYE from either side ends the call on the other. A re-INVITE or UPDATE of the PBX (hold,
// resume, a new address) updates the bridge and is answered with the mirrored direction.
// DTMF: a client's dtmf message goes to SIP as RFC 4733 in the RTP leg when the SIP side
// negotiated telephone-event, as SIP INFO otherwise; the client is always offered
// telephone-event, and its RFC 4733 events are forwarded by the bridge, or (no
// telephone-event on the SIP side) consumed by it and sent as SIP INFO. SIP INFO DTMF and RFC
// 4733 from the SIP side reach the client as dtmf events. A client's key-frame request
// (PLI/FIR) goes to SIP as RTCP PLI (the bridge) and SIP INFO picture_fast_update; an INFO
// picture_fast_update from SIP asks the client for a key frame.
//
// # Ending
//
// Every call ends once, whoever ends it: the SIP side gets BYE, CANCEL or a final response,
// the client a hangup event or the invitation's final state, the PeerConnection and the
// bridge are closed, and a Record is passed to Config.OnEnd. Its JSON form is the CDR line:
//
//	{"call_id":"...","sip_call_id":"...","direction":"webrtc-to-sip","from":"alice","to":"1001",
//	 "user":"alice","account":"1005","start":"...","answer":"...","end":"...","setup_s":0.21,
//	 "duration_s":12.5,"end_reason":"BYE","sip_code":0,"outcome":"answered","codec":"PCMU/8000",
//	 "webrtc":{"packets_received":625,"packets_sent":624,"lost":0,"late":0},
//	 "sip":{"packets_received":624,"packets_sent":625,"lost":0,"late":0},
//	 "nacks_sent":0,"nacks_received":0,"retransmissions":0}
package call
