package gateway_test

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/rtc"
	"github.com/siprtc/siprtc/gateway/sipua"
)

// TestOptionsCompose: several WithRTC and WithSIP options all apply, in the order given, each
// on what the previous ones left (the lab's world adds its own next to a suite's).
func TestOptionsCompose(t *testing.T) {
	cfg, _, err := config.Parse(strings.NewReader("[global]\nsip_svr=127.0.0.1:5060\n[proxy]\non=1\nsip_account=1000\nsip_pwd=x\n[signaling]\napp_secret=0123456789abcdef\n"), "compose.conf")
	if err != nil {
		t.Fatal(err)
	}
	var rtcOrder, sipOrder []string
	_, err = gateway.New(cfg, gateway.WithLocalIP(netip.MustParseAddr("127.0.0.1")), gateway.WithLogger(slog.New(slog.DiscardHandler)),
		gateway.WithCDR(io.Discard),
		gateway.WithRTC(func(c *rtc.Config) {
			if !c.IncludeLoopback || c.IPFilter == nil {
				t.Error("the first WithRTC does not see the gateway's own settings (WithLocalIP)")
			}
			c.NACKMaxRetries = 3
			rtcOrder = append(rtcOrder, "first")
		}),
		gateway.WithRTC(nil), // ignored
		gateway.WithRTC(func(c *rtc.Config) {
			if c.NACKMaxRetries != 3 {
				t.Errorf("the second WithRTC sees NACKMaxRetries %d, want the first's 3", c.NACKMaxRetries)
			}
			rtcOrder = append(rtcOrder, "second")
		}),
		gateway.WithSIP(func(c *sipua.Config) { c.Port = 0; sipOrder = append(sipOrder, "first") }),
		gateway.WithSIP(func(c *sipua.Config) {
			if c.Port != 0 {
				t.Errorf("the second WithSIP sees port %d, want the first's 0", c.Port)
			}
			sipOrder = append(sipOrder, "second")
		}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rtcOrder, ",") != "first,second" || strings.Join(sipOrder, ",") != "first,second" {
		t.Errorf("WithRTC ran %v, WithSIP ran %v; want first,second each", rtcOrder, sipOrder)
	}
}
