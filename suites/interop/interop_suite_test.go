// Package interop_test is the gateway's interop suite: the gateway runs against the embedded
// PBX (freeswitch/conf) with the lab's SIP phone and the lab's pion WebRTC client, over
// loopback sockets in real time and over the lab's emulated network in virtual time (each
// scenario in its own testing/synctest bubble, lab.Virtual). Every scenario builds its own
// world (PBX, gateway, peers) and tears it down, so a failure never leaks into the next one.
//
// The loopback scenarios also run against each container PBX LAB_PBX selects (lab.Backends:
// Asterisk 22 generated from the same freeswitch/conf by lab/pbx/astconf; FreeSWITCH 1.10 when
// its image exists), in real time, one container per scenario; an unavailable backend's
// scenarios are skipped with the reason (they fail when LAB_REQUIRE names it), and a failing
// scenario's report carries the container's log. Where Asterisk legitimately differs from the
// embedded PBX (which relays what the legs say, as FreeSWITCH's configuration makes it), the
// spec asserts what Asterisk does, and says why:
//
//   - no codec in common: Asterisk transcodes (Opus is in the configuration's codec list, so
//     codec_opus_open_source is loaded) and offers the gateway its own codecs: the gateway's
//     SIP leg takes the phone's G.711 call as Opus, and what lacks a common codec is the
//     client, whose refusal reaches the phone;
//   - video key-frame requests: Asterisk turns the gateway's RTCP PLI and SIP INFO
//     picture_fast_update alike into an RTCP FIR toward a VP8 phone, never an INFO;
//   - DTMF: the gateway's SIP leg is Asterisk, which always negotiates telephone-event, so the
//     gateway sends RFC 4733 and Asterisk converts (dtmf_mode=auto_info): the phone gets the
//     same digits, by SIP INFO without telephone-event and RFC 4733 with it, and the phone's
//     INFO reaches the gateway as RFC 4733 (which the gateway passes to the client in its
//     audio and as a dtmf message). Asterisk reads the gateway's RFC 4733 as a receiver does,
//     which showed a gateway bug the embedded PBX's relaying hid: a digit sent before the
//     client's first audio packet started the SIP stream at a random timestamp the audio then
//     fell back from, and Asterisk dropped every later event as older (fixed in gateway/media's
//     rewriter), and another: the gateway's generated event overlapped the client's in-band
//     ones (the "overlapping" specs; fixed in gateway/media: one event at a time);
//   - hold: Asterisk answers the phone's re-INVITE itself (recvonly) and keeps the gateway's
//     leg as it is; the audio flows again after the resume. When the client holds, Asterisk
//     answers the gateway's sendonly re-INVITE recvonly but goes on sending to it: the gateway
//     drops that audio itself (a holding client gets nothing, gateway/media), which this
//     backend showed;
//   - failures: Asterisk's Dial reports a callee's 603 or 408 only as CHANUNAVAIL; the
//     generated dialplan takes the callee's cause from HANGUPCAUSE as FreeSWITCH's
//     originate_disposition would be, and the 408 reaches the gateway as 408. No Asterisk cause
//     goes out as 603: CALL_REJECTED goes out as 403 (still REFUSED_BY_REMOTE).
//
// Registration loss and recovery runs against the embedded PBX only, which the spec stops and
// restarts: on the emulated network by an outage of the PBX's link, over loopback by stopping
// the PBX and starting another on the same port and configuration.
package interop_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// suiteT is the test that runs the suite: synctest bubbles hang off it (Ginkgo specs have no
// *testing.T of their own).
var suiteT *testing.T

func TestInterop(t *testing.T) {
	suiteT = t
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gateway interop")
}
