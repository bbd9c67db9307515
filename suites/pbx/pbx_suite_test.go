// Package pbx_test is the embedded PBX's suite: real SIP phones register and call through the
// PBX, which runs the FreeSWITCH overlay in freeswitch/conf, over loopback and over the lab's
// emulated network.
package pbx_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestPBX(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Embedded PBX")
}
