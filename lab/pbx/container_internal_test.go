package pbx

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

const testConfDir = "../../freeswitch/conf"

func TestRequired(t *testing.T) {
	t.Setenv(EnvRequire, "chromium, Asterisk ,procfs")
	if !Required("asterisk") || !Required("procfs") || Required("docker") || Required("freeswitch") {
		t.Fatal("Required does not read LAB_REQUIRE as a comma-separated, case-insensitive list")
	}
	t.Setenv(EnvRequire, "")
	if Required("asterisk") {
		t.Fatal("empty LAB_REQUIRE requires something")
	}
}

func TestImageNames(t *testing.T) {
	t.Setenv(EnvAsteriskImage, "")
	t.Setenv(EnvFreeSWITCHImage, "")
	if AsteriskImage() != DefaultAsteriskImage || FreeSWITCHImage() != DefaultFreeSWITCHImage {
		t.Fatal("default image names")
	}
	t.Setenv(EnvAsteriskImage, "mine/asterisk:1")
	if AsteriskImage() != "mine/asterisk:1" {
		t.Fatal("LAB_ASTERISK_IMAGE is not used")
	}
}

// requireDocker skips (or fails, with LAB_REQUIRE=docker) without a Docker engine.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := dockerClient(ctx)
	if err == nil {
		_, err = cli.Ping(ctx, pingOptions())
		cli.Close()
	}
	if err != nil {
		if Required("docker") {
			t.Fatalf("Docker required (LAB_REQUIRE) but unavailable: %v", err)
		}
		t.Skipf("Docker unavailable: %v (set LAB_REQUIRE=docker to make this a failure)", err)
	}
}

// TestMissingImage: the error names the image and the command that builds it.
func TestMissingImage(t *testing.T) {
	requireDocker(t)
	t.Setenv(EnvAsteriskImage, "siprtc/asterisk:no-such-tag")
	ok, reason := Available(BackendAsterisk)
	if ok || !strings.Contains(reason, "siprtc/asterisk:no-such-tag") || !strings.Contains(reason, "make images") {
		t.Fatalf("Available = %v, %q: want false, naming the image and `make images`", ok, reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := StartAsterisk(ctx, AsteriskConfig{ConfDir: testConfDir})
	if !errors.Is(err, ErrImageMissing) || !strings.Contains(err.Error(), "make images") {
		t.Fatalf("StartAsterisk without the image: %v", err)
	}
	t.Setenv(EnvFreeSWITCHImage, "siprtc/freeswitch:no-such-tag")
	_, err = StartFreeSWITCH(ctx, FreeSWITCHConfig{ConfDir: testConfDir})
	if !errors.Is(err, ErrImageMissing) || !strings.Contains(err.Error(), "images/build-freeswitch") {
		t.Fatalf("StartFreeSWITCH without the image: %v", err)
	}
	if ok, _ := Available(BackendEmbedded); !ok {
		t.Fatal("the embedded backend is always available")
	}
}

// TestCloseRemovesContainer: Close stops and removes the container, is idempotent, and the log
// stays readable after it.
func TestCloseRemovesContainer(t *testing.T) {
	RequireBackend(t, BackendAsterisk)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := StartAsterisk(ctx, AsteriskConfig{ConfDir: testConfDir})
	if err != nil {
		t.Fatal(err)
	}
	name := a.ContainerName()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !strings.Contains(a.Logs(), "Asterisk Ready") {
		t.Fatalf("the log after Close lacks \"Asterisk Ready\":\n%s", a.Logs())
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.ContainerInspect(ctx, name, inspectOptions()); err == nil {
		t.Fatalf("container %s still exists after Close", name)
	}
	// The ports are free again.
	if _, err := probeSIP(ctx, a.SIPAddr(), 300*time.Millisecond); err == nil {
		t.Fatal("SIP still answers after Close")
	}
}

// TestBadStart: configuration errors come before any container.
func TestBadStart(t *testing.T) {
	ctx := context.Background()
	if _, err := StartAsterisk(ctx, AsteriskConfig{ConfDir: "testdata/does-not-exist"}); err == nil {
		t.Fatal("missing conf dir: want an error")
	}
}

// TestPrepareFreeSWITCHConf: the container's copy of the configuration has the lab's address
// and ports, and the FreeSWITCH configuration loader reads them so.
func TestPrepareFreeSWITCHConf(t *testing.T) {
	dir := t.TempDir()
	f := &FreeSWITCH{confDir: dir, cfg: FreeSWITCHConfig{
		ConfDir: testConfDir, IP: netip.MustParseAddr("127.0.0.1"), SIPPort: 15060, ESLPort: 18021,
		RTPPortMin: 40000, RTPPortMax: 40999, Vars: map[string]string{"default_password": "p&w", "lab_extra": "x"},
	}}
	if err := f.prepareConf(); err != nil {
		t.Fatal(err)
	}
	conf, err := fsconf.Load(dir, fsconf.Options{Vars: map[string]string{"local_ip_v4": "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	prof := conf.Profiles["internal"]
	for name, want := range map[string]string{
		"sip-port": "15060", "sip-ip": "127.0.0.1", "ws-binding": "127.0.0.1:", "wss-binding": "127.0.0.1:",
	} {
		if got := prof.Param(name, ""); !strings.HasPrefix(got, want) {
			t.Errorf("profile %s = %q, want %q", name, got, want)
		}
	}
	if conf.EventSocket["listen-port"] != "18021" || conf.EventSocket["listen-ip"] != "127.0.0.1" {
		t.Errorf("event socket %v", conf.EventSocket)
	}
	if conf.Switch["rtp-start-port"] != "40000" || conf.Switch["rtp-end-port"] != "40999" {
		t.Errorf("switch %v", conf.Switch)
	}
	if u, _ := conf.Directory.Lookup("1000", ""); u == nil || u.Params["password"] != "p&w" {
		t.Errorf("user 1000: %+v", u)
	}
	if conf.Vars["lab_extra"] != "x" || conf.Directory.DefaultDomain() != "127.0.0.1" {
		t.Errorf("vars: lab_extra %q, domain %q", conf.Vars["lab_extra"], conf.Directory.DefaultDomain())
	}
	b, err := os.ReadFile(filepath.Join(dir, "vars.d", "lab.xml"))
	if err != nil || !strings.Contains(string(b), `data="local_ip_v4=127.0.0.1"`) {
		t.Errorf("vars.d/lab.xml: %s %v", b, err)
	}
	// The original is untouched.
	orig, _ := os.ReadFile(filepath.Join(testConfDir, "vars.xml"))
	if !strings.Contains(string(orig), `data="internal_sip_port=5060"`) {
		t.Error("the original vars.xml was changed")
	}
}
