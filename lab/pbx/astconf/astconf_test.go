package astconf_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/siprtc/siprtc/lab/pbx/astconf"
	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

const confDir = "../../../freeswitch/conf"

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func load(t *testing.T, dir string, overrides map[string]string) *fsconf.Config {
	t.Helper()
	conf, err := fsconf.Load(dir, fsconf.Options{Vars: map[string]string{"local_ip_v4": "127.0.0.1"}, Overrides: overrides})
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

var opts = astconf.Options{SIPPort: 5160, AMIPort: 5138, ICEHostAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.2")}}

// TestGolden compares every generated file but pjsip.conf's 1600 users with testdata/*.golden
// (go test -update rewrites them).
func TestGolden(t *testing.T) {
	out, err := astconf.Generate(load(t, confDir, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range out.Names() {
		got := out.Files[name]
		if name == "pjsip.conf" {
			// Up to the first user, and the last one.
			i := bytes.Index(got, []byte("\n[1001](siprtc-endpoint)"))
			j := bytes.LastIndex(got, []byte("\n[2599](siprtc-endpoint)"))
			if i < 0 || j < 0 {
				t.Fatalf("pjsip.conf lacks users 1001 or 2599")
			}
			got = append(append(got[:i+1:i+1], []byte("; ... users 1001..2598 ...\n")...), got[j+1:]...)
		}
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", name, path, firstDiff(string(want), string(got)))
		}
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, w, g)
		}
	}
	return ""
}

// TestEveryUserWithItsPassword: each directory user has an endpoint, an auth with its own
// password and an AOR, and nothing else is there.
func TestEveryUserWithItsPassword(t *testing.T) {
	conf := load(t, confDir, nil)
	out, err := astconf.Generate(conf, opts)
	if err != nil {
		t.Fatal(err)
	}
	pj := string(out.Files["pjsip.conf"])
	dom := conf.Directory.Domains[conf.Directory.DefaultDomain()]
	ids := dom.UserIDs()
	if len(ids) != 1600 || len(out.Users) != len(ids) {
		t.Fatalf("directory has %d users, the configuration %d; want 1600 (1000..2599)", len(ids), len(out.Users))
	}
	for _, id := range ids {
		pw := dom.Users[id].Params["password"]
		if pw == "" {
			t.Fatalf("user %s has no password in the directory", id)
		}
		for _, want := range []string{
			fmt.Sprintf("[%s](siprtc-endpoint)\nauth=%s\naors=%s\n", id, id, id),
			fmt.Sprintf("[%s](siprtc-auth)\nusername=%s\npassword=%s\n", id, id, pw),
			fmt.Sprintf("[%s](siprtc-aor)\n", id),
		} {
			if !strings.Contains(pj, want) {
				t.Fatalf("pjsip.conf lacks %q", want)
			}
		}
	}
	if n := strings.Count(pj, "(siprtc-auth)\n"); n != len(ids) {
		t.Fatalf("pjsip.conf has %d auths, want %d", n, len(ids))
	}
}

// TestPasswordOverrideAndEscaping: a default_password override reaches every auth, with ';'
// escaped (it starts a comment in Asterisk's files).
func TestPasswordOverrideAndEscaping(t *testing.T) {
	out, err := astconf.Generate(load(t, confDir, map[string]string{"default_password": "pa;ss"}), opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out.Files["pjsip.conf"]), "password=pa\\;ss\n"); n != 1600 {
		t.Fatalf("%d escaped passwords, want 1600", n)
	}
}

// TestDeploymentRules checks the SRProxy deployment's rules in the translation.
func TestDeploymentRules(t *testing.T) {
	out, err := astconf.Generate(load(t, confDir, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	ext := string(out.Files["extensions.conf"])
	for _, want := range []string{
		// 0 + number -> user 1000 with X-Number: <sip:NUMBER@DOMAIN>
		"exten => _0!,1,",
		"Dial(PJSIP/1000,60,b(siprtc-predial-default-fs03-group_dial_sip_proxy-1^s^1(<sip:${EXTEN:1}@${domain_name}>)))",
		"Set(PJSIP_HEADER(add,X-Number)=${ARG1})",
		"domain_name=127.0.0.1",
		// Local_Extension 1000..2099, Pool_Extension 2100..2599
		"exten => _1XXX,1,", "exten => _20XX,1,", "exten => _2[1-5]XX,1,",
		"Dial(PJSIP/${dialed_extension},30)",
		"exten => 9196,1,", "Echo()",
		"exten => 9190,1,", "Hangup(17) ; USER_BUSY",
	} {
		if !strings.Contains(ext, want) {
			t.Errorf("extensions.conf lacks %q", want)
		}
	}
	// Hunting order: the includes follow the FreeSWITCH document.
	inc := regexp.MustCompile(`include => default-fs\d\d-(\w+)`).FindAllStringSubmatch(ext, -1)
	var order []string
	for _, m := range inc {
		order = append(order, m[1])
	}
	if got := strings.Join(order, ","); got != "group_dial_sip_proxy,Local_Extension,Pool_Extension,echo,busy" {
		t.Errorf("include order %s", got)
	}
	pj := string(out.Files["pjsip.conf"])
	for _, want := range []string{
		"bind=127.0.0.1:5160", "100rel=yes", "direct_media=no", "rtp_symmetric=yes", "force_rport=yes",
		"media_address=127.0.0.1", "context=default", "allow=opus,g722,ulaw,alaw,vp8,h264", "dtmf_mode=auto_info",
		"[acl-domains]\ntype=acl\ndeny=0.0.0.0/0.0.0.0\npermit=127.0.0.0/8\npermit=10.77.0.0/16\n",
	} {
		if !strings.Contains(pj, want) {
			t.Errorf("pjsip.conf lacks %q", want)
		}
	}
	mods := string(out.Files["modules.conf"])
	if !strings.Contains(mods, "autoload=no\n") {
		t.Error("modules.conf does not say autoload=no")
	}
	for _, m := range []string{"chan_pjsip.so", "res_pjsip_pubsub.so", "res_pjsip_session.so", "pbx_config.so", "app_dial.so",
		"app_stack.so", "res_pjsip_header_funcs.so", "app_echo.so", "codec_ulaw.so", "res_rtp_asterisk.so", "res_sorcery_astdb.so",
		// the caller's number in From (else "anonymous"), INFO DTMF, the video formats
		"res_pjsip_caller_id.so", "res_pjsip_dtmf_info.so", "res_format_attr_vp8.so", "res_format_attr_h264.so"} {
		if !strings.Contains(mods, "load => "+m+"\n") {
			t.Errorf("modules.conf does not load %s", m)
		}
	}
	for _, m := range []string{"app_voicemail.so", "chan_iax2.so", "res_pjsip_options.so", "app_verbose.so"} {
		if strings.Contains(mods, m) {
			t.Errorf("modules.conf loads %s, which nothing uses", m)
		}
	}
	if got := out.Notes; len(got) != 3 || !strings.Contains(strings.Join(got, "\n"), `"unloop"`) || !strings.Contains(strings.Join(got, "\n"), "no vp8, h264") {
		t.Errorf("notes %q: want the apply-inbound-acl difference, the video formats and the untranslated unloop", got)
	}
	if !strings.Contains(string(out.Files["manager.conf"]), "bindaddr=127.0.0.1\nport=5138\n") {
		t.Error("manager.conf does not listen on 127.0.0.1:5138")
	}
	if !strings.Contains(string(out.Files["rtp.conf"]), "rtpstart=16384\nrtpend=32768\n") ||
		!strings.Contains(string(out.Files["rtp.conf"]), "192.0.2.2 => 127.0.0.1") {
		t.Errorf("rtp.conf:\n%s", out.Files["rtp.conf"])
	}
}

// TestUntranslatable: an extension with an application Asterisk has no translation for is left
// out with a note naming the file:line, the extension and the application, and the others stay.
func TestUntranslatable(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(confDir)); err != nil {
		t.Fatal(err)
	}
	dp := filepath.Join(dir, "dialplan", "default.xml")
	b, err := os.ReadFile(dp)
	if err != nil {
		t.Fatal(err)
	}
	ext := `<extension name="vm"><condition field="destination_number" expression="^4000$"><action application="voicemail" data="default 1000"/></condition></extension>
    <extension name="echo">`
	b = bytes.Replace(b, []byte(`<extension name="echo">`), []byte(ext), 1)
	if err := os.WriteFile(dp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := astconf.Generate(load(t, dir, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range out.Notes {
		if strings.Contains(n, "dialplan/default.xml:") && strings.Contains(n, `"vm"`) && strings.Contains(n, `"voicemail"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no note about extension vm and voicemail: %q", out.Notes)
	}
	e := string(out.Files["extensions.conf"])
	if strings.Contains(e, "include => default-fs06-vm") || !strings.Contains(e, "include => default-fs07-echo") {
		t.Errorf("the untranslated extension is included, or echo is gone:\n%s", e)
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := astconf.Generate(nil, opts); err == nil {
		t.Error("nil configuration: want an error")
	}
	o := opts
	o.Profile = "external"
	if _, err := astconf.Generate(load(t, confDir, nil), o); err == nil || !strings.Contains(err.Error(), `"external"`) {
		t.Errorf("missing profile: %v", err)
	}
	o = opts
	o.RTPStart, o.RTPEnd = 3000, 2000
	if _, err := astconf.Generate(load(t, confDir, nil), o); err == nil {
		t.Error("reversed RTP range: want an error")
	}
}

func TestWriteDir(t *testing.T) {
	out, err := astconf.Generate(load(t, confDir, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "asterisk")
	if err := out.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"pjsip.conf", "extensions.conf", "rtp.conf", "modules.conf", "manager.conf", "asterisk.conf", "logger.conf"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Error(err)
		}
	}
}
