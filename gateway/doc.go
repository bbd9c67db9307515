// Package gateway is the root of the SIP <-> WebRTC gateway, the successor of anyRTC's SRProxy:
// it reads SRProxy's rtx.conf, registers to a PBX, speaks the WebSocket call-invitation protocol
// to WebRTC clients and bridges their media (ICE, DTLS-SRTP, RTCP feedback) to SIP/RTP. Its
// packages (config, sipua, signaling, rtc, media, call) are built from one Config, hold no
// globals, and open every socket through an injected pion transport.Net.
package gateway
