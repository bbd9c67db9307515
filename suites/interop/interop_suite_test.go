// Package interop_test is the gateway's interop suite: the gateway runs against the embedded
// PBX (freeswitch/conf) with the lab's SIP phone and the lab's pion WebRTC client, over
// loopback sockets in real time and over the lab's emulated network in virtual time (each
// scenario in its own testing/synctest bubble, lab.Virtual). Every scenario builds its own
// world (PBX, gateway, peers) and tears it down, so a failure never leaks into the next one.
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
