package media

import (
	"github.com/pion/interceptor"

	"github.com/siprtc/siprtc/gateway/rtc"
)

// RED and FlexFEC are gateway/rtc's (Config.RED, Config.FlexFEC): by the time a client's
// packet is read from its track, RED is unframed into plain Opus (the primary, and before it
// the lost packets its redundant blocks repeat) and FlexFEC has rebuilt the video packets it
// could; toward the client, rtc RED-frames the Opus and adds FlexFEC to the video the bridge
// writes. The bridge therefore only ever carries the negotiated Opus and video formats. It
// marks the rebuilt packets (Packet.Recovered) so that the WebRTC leg's receive statistics
// count them (LegStats.Recovered) and take no jitter sample from their late arrival.

// recovered reports whether a track's packet was rebuilt by RED or FlexFEC.
func recovered(attr interceptor.Attributes) bool { return rtc.RecoveredBy(attr) != "" }
