// Package webclient is the lab's WebRTC client: a pion/webrtc v4 peer that speaks the
// gateway's signalling protocol (docs/signaling.md) the way the gateway's browser page does,
// for the interop suite and the lab's measurements.
//
// A Client logs in with a token over one WebSocket, places calls (Call: an invite carrying its
// SDP offer, then the LocalInvitation states, the gateway's answer, trickled candidates both
// ways) and answers them (OnInvitation: received, then accept with its SDP answer to the
// gateway's offer, or refuse with a SIP code; the default handler accepts, after an optional
// delay). Every signalling message from the gateway is kept (Client.Events) for assertions.
//
// The PeerConnection is the gateway's own construction, gateway/rtc (NewPeer): the same codec
// table, NACK on audio and video, RTCP reports, TWCC (the client also stamps transport-wide
// sequence numbers, as browsers do) and per-call repair counters (NACKs sent and received,
// retransmissions). The client registers only what it can produce: PCMU, PCMA and Opus for
// audio, telephone-event, and VP8 (it receives offered video even without a video source of
// its own, answering receive-only as a browser without a camera does).
//
// Media. Audio is a sine tone the client encodes itself in G.711 (PCMU or PCMA), 20 ms frames
// with correct sequence numbers, timestamps and talkspurt markers; received G.711 is decoded so
// that Call.ToneFrequency can check content. There is no Go Opus codec among the module's
// dependencies: when Opus is negotiated the client sends well-formed Opus packets that decode
// to silence, padded to a real encoder's size at the configured bitrate, and cannot check what
// it receives (ErrUndecodable). Tests that check content negotiate G.711, the default. DTMF
// goes as RFC 4733 telephone-events in the audio stream (Call.SendDTMF) or as signalling
// messages (Call.SendDTMFMessage); digits received either way are logged (Call.DTMF). Video,
// when enabled, is a synthetic VP8 stream whose frame sizes follow a target bitrate, with key
// frames at the start, periodically and on PLI/FIR; a gateway passes VP8 through, so frames
// are counted, not decoded. Every RTP packet sent and received is logged (Call.Packets): sent
// packets as they leave the client (after the pacer: retransmissions, RTX and FEC included),
// received ones as the track delivers them, each marked with how it was repaired
// (PacketRecord.Repaired: "nack" for a late packet the client had NACKed, "rtx" for one pion
// unwrapped from the RTX stream, "fec" and "red" for recoveries).
//
// Bandwidth estimation (WithBWE): pion's send-side GCC (gateway/rtc's BWEConfig) estimates the
// uplink from the TWCC feedback the other side returns; the client's packets go through its
// pacer, the synthetic video's bitrate follows the target (what audio leaves of it, between
// MinVideoBitrate and the WithVideo bitrate), and the call samples the estimator every 100 ms
// (Call.BWESamples: target, sending rate, loss, delay state). WithNACK tunes the NACK
// generator.
//
// Every socket goes through injected seams: the WebSocket through Config.Dial (the lab passes
// its stream link's DialContext, loopback a net.Dialer), ICE through Config.Net (a lab host's
// transport.Net, or the standard network). All timing uses the time package, so a client runs
// on the lab's emulated network inside testing/synctest; Close ends every goroutine it started.
package webclient
