// Package browser_test proves the gateway's browser phone page (gateway/web) in real headless
// Chromium: the embedded PBX and the gateway run on 127.0.0.1 in real time, a lab SIP phone
// registers as 1001, and the page, driven over the Chrome DevTools Protocol, logs in, calls the
// phone and answers the phone's call, with audio checked at both ends.
//
// The same scenarios run in headless Firefox (firefox-esr), driven over WebDriver BiDi.
//
// A browser missing skips its scenarios, unless LAB_REQUIRE names it ("chromium", "firefox"):
// then they fail.
package browser_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestBrowser(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gateway browser page in Chromium and Firefox")
}
