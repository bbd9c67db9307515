// Package gateway is the root of the SIP <-> WebRTC gateway, the successor of anyRTC's SRProxy:
// it reads SRProxy's rtx.conf, registers to a PBX, speaks the WebSocket call-invitation protocol
// to WebRTC clients and bridges their media (ICE, DTLS-SRTP, RTCP feedback) to SIP/RTP. Its
// packages (config, sipua, signaling, rtc, media, call) are built from one Config, hold no
// globals, and open every socket through an injected pion transport.Net.
//
// Gateway assembles them: New builds, from a config.Config,
//
//   - the SIP user agent (sipua) holding the [proxy] account and the [rtm2sip] pool, with 100rel,
//     OPTIONS keepalives every [sip] options_interval, re-registration with backoff and RFC
//     4028 session timers ([sip] session_expires, min_se: a call whose session is not
//     refreshed ends, so a lost BYE leaves no call behind);
//   - the call layer (call.Manager), which is the signalling server's Backend and the user
//     agent's incoming-call handler (see package call for the call flows and the account
//     mapping);
//   - the signalling server (signaling) and the HTTP side: the WebSocket at /ws, the browser
//     page at /, /healthz and /metrics.
//
// Start serves SIP and keeps the accounts registered; Serve serves the HTTP side on any
// net.Listener (the lab hands it an in-memory stream link; wrap it with tls.NewListener for
// TLS); Shutdown stops gracefully (no new call, calls in progress may end until a deadline,
// the rest are hung up, the accounts unregistered) and Close does the same at once.
//
// /healthz answers 200 when the proxy account (if on) and at least one pool account (if on)
// are registered, 503 otherwise or from the moment Shutdown stops taking calls, with a JSON
// Health report (draining set then). Log lines carry [global] appid; [log] level 0
// (SENSITIVE) adds every signalling message whole, tokens included.
//
// /metrics is the Prometheus text exposition format, written by hand:
//
//	siprtc_sip_registrations{state}                  accounts by registration state
//	siprtc_active_calls                              calls in progress
//	siprtc_calls_total{direction,outcome}            ended calls
//	siprtc_call_setup_seconds{direction}             invite-to-answer histogram
//	siprtc_media_packets_{received,sent,lost,late,repaired,dropped}_total{leg,kind}
//	siprtc_media_dtmf_received_total{leg,kind}
//	siprtc_webrtc_repairs_total{type}                NACKs, retransmissions, RTX, PLI/FIR, TWCC
//	siprtc_signaling_{connections,sessions}, siprtc_signaling_login_failures_total,
//	siprtc_signaling_errors_total{code}
//
// Media counters sum the ended calls' last snapshot and the live calls' current one, so they
// only grow. Logs are slog records at the [log] level, text or JSON, to standard error or to
// [log] file rotated at max_file_size; each call's detail record (call.Record) is one JSON line,
// to WithCDR's writer or to the log.
package gateway
