// Package rtprelay anchors the media of the embedded PBX, a back-to-back user
// agent that behaves like FreeSWITCH with media proxied through it.
//
// Each SIP call leg gets a PBX-owned port pair per m-line (an [Endpoint], RTP
// on an even port and RTCP on the next one) from an [Allocator]. A [Relay]
// joins two endpoints: what a leg sends to its endpoint goes out of the other
// endpoint to the other leg's remote address, so each leg only ever sees the
// PBX's address. [NewEcho] turns one endpoint into the dialplan's echo
// application. The SDP helpers ([ParseSDP], [RewriteSDP], [Origin]) read what
// a leg offers and rewrite it so it names the PBX's endpoints.
//
// Every socket is opened through the [github.com/pion/transport/v5.Net] given to the allocator:
// production passes stdnet.NewNet(), the lab a pion vnet host. The package
// never calls net.Listen* itself.
//
// # Symmetric RTP (latching)
//
// Phones behind NAT, and some that simply bind another port, send from an
// address that differs from the one in their SDP. Like FreeSWITCH's RTP
// auto-adjust, a relay with latching on (the default, [WithLatching]) sends
// to where a leg's packets really come from. The rule, applied separately to
// the RTP and the RTCP socket of each endpoint:
//
//   - After [Endpoint.SetRemote] the socket is learning. While learning, a
//     packet from a source other than the current remote makes that source the
//     remote at once (it latches) and is relayed; a packet from the current
//     remote counts towards confirming it.
//   - Learning ends when [WithLatchWindow] consecutive packets (default 10)
//     have come from the current remote. From then on the remote stays, and
//     packets from any other source are strays: counted in
//     [DirectionStats.Stray] and dropped, so a third party cannot inject media
//     or steal the stream once the call has settled.
//   - A leg whose SDP gives no address yet (SetRemote not called, or called
//     with an invalid address) learns its remote from its first packet.
//   - A leg on hold (connection address 0.0.0.0, or port 0) is sent nothing and
//     does not latch; what it sends is still relayed. (In an SDP with ICE,
//     0.0.0.0 is JSEP's placeholder, not hold: [Media.RTPAddr] then reports
//     no address and the leg is learnt from its first packet.)
//   - SetRemote with a new SDP address starts learning again; SetRemote with
//     the same addresses as before (a session-refresh re-INVITE) keeps what was
//     learnt.
//
// With latching off the remote is exactly the SDP one and packets from any
// source are relayed.
//
// # What a relay forwards
//
// RTP and RTCP (version 2) only: STUN, DTLS and anything else is counted as
// invalid and dropped, since a B2BUA anchoring plain RTP has no end-to-end ICE
// or DTLS. RTCP is told apart from RTP on a muxed port by its packet type
// (RFC 5761). A relay does not rewrite SSRCs, sequence numbers or timestamps;
// the echo does rewrite the SSRC (see [NewEcho]).
package rtprelay
