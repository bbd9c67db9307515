package pbx_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/pbx"
)

func TestParseSelection(t *testing.T) {
	all := []pbx.Backend{pbx.BackendEmbedded, pbx.BackendAsterisk, pbx.BackendFreeSWITCH}
	for in, want := range map[string][]pbx.Backend{
		"":                       all,
		"all":                    all,
		"ALL":                    all,
		"embedded":               {pbx.BackendEmbedded},
		"asterisk":               {pbx.BackendAsterisk},
		" freeswitch , embedded": {pbx.BackendEmbedded, pbx.BackendFreeSWITCH},
		"asterisk,asterisk":      {pbx.BackendAsterisk},
		"embedded,all":           all,
	} {
		got, err := pbx.ParseSelection(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseSelection(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yate", "embedded,kamailio", ","} {
		if got, err := pbx.ParseSelection(bad); err == nil {
			t.Errorf("ParseSelection(%q) = %v, want an error", bad, got)
		}
	}
	t.Setenv(pbx.EnvPBX, "asterisk")
	if got, err := pbx.Selected(); err != nil || !slices.Equal(got, []pbx.Backend{pbx.BackendAsterisk}) {
		t.Errorf("Selected with %s=asterisk: %v, %v", pbx.EnvPBX, got, err)
	}
	if pbx.Image(pbx.BackendEmbedded) != "" || pbx.Image(pbx.BackendAsterisk) != pbx.AsteriskImage() || !pbx.IsContainer(pbx.BackendFreeSWITCH) || pbx.IsContainer(pbx.BackendEmbedded) {
		t.Error("Image / IsContainer")
	}
}

// TestEmbeddedControl: the embedded PBX behind Controlled reports its registrations and calls,
// and HangupAll ends a call in progress.
func TestEmbeddedControl(t *testing.T) {
	ctx := context.Background()
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{ConfDir: confDir, SIPPort: pbx.AnyPort, Logger: labLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.Control()
	if c.Backend() != pbx.BackendEmbedded || c.Logs() != "" {
		t.Errorf("backend %q, logs %q", c.Backend(), c.Logs())
	}
	callee := registered(t, ctx, c, "1000")
	caller := registered(t, ctx, c, "1001")
	regs, err := c.Registrations(ctx)
	if err != nil || len(regs) != 2 {
		t.Fatalf("registrations %v, %v; want 2", regs, err)
	}
	call, err := caller.Call(ctx, "1000")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.ActiveCalls(ctx); err != nil || n != 1 {
		t.Fatalf("ActiveCalls = %d, %v; want 1", n, err)
	}
	if !eventually(5*time.Second, func() bool { return len(callee.Calls()) == 1 }) {
		t.Fatal("the callee has no call")
	}
	if err := c.HangupAll(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the caller's call did not end after HangupAll")
	}
	if !eventually(5*time.Second, func() bool { n, _ := c.ActiveCalls(ctx); return n == 0 }) {
		t.Fatal("calls left after HangupAll")
	}
}
