package fsconf

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// overlay is the repository's FreeSWITCH configuration.
const overlay = "../../../freeswitch/conf"

// leadApps are the applications the embedded PBX implements (lab/pbx apps.go).
var leadApps = map[string]bool{
	"set": true, "export": true, "unset": true, "log": true, "info": true, "ring_ready": true,
	"pre_answer": true, "answer": true, "sleep": true, "hangup": true, "echo": true, "bridge": true,
}

type chanVars map[string]string

func (c chanVars) Var(name string) (string, bool) {
	v, ok := c[name]
	return v, ok
}

func loadOverlay(t *testing.T, opts Options) *Config {
	t.Helper()
	if opts.Vars == nil {
		opts.Vars = map[string]string{"local_ip_v4": "10.77.0.1"}
	}
	c, err := Load(overlay, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", overlay, err)
	}
	return c
}

// show renders routed actions as "app data" lines for comparison.
func show(acts []RoutedAction) []string {
	out := []string{}
	for _, a := range acts {
		out = append(out, strings.TrimSpace(a.App+" "+a.Data))
	}
	return out
}

func TestOverlayLoads(t *testing.T) {
	c := loadOverlay(t, Options{Apps: leadApps})

	if got := c.Directory.DefaultDomain(); got != "10.77.0.1" {
		t.Fatalf("default domain %q, want the local_ip_v4 given, 10.77.0.1", got)
	}
	dom := c.Directory.Domains["10.77.0.1"]
	if len(dom.Users) != 1600 {
		t.Fatalf("%d users, want 1600 (1000..2599)", len(dom.Users))
	}
	for _, id := range []string{"1000", "2099", "2100", "2599"} {
		u, ok := c.Directory.Lookup(id, "10.77.0.1")
		if !ok {
			t.Fatalf("user %s missing", id)
		}
		if u.Params["password"] != "siprtc-lab-2026" || u.Params["vm-password"] != id {
			t.Errorf("user %s params %v", id, u.Params)
		}
		if u.Variables["user_context"] != "default" || u.Variables["accountcode"] != id {
			t.Errorf("user %s variables %v", id, u.Variables)
		}
		if _, ok := u.Variables["effective_caller_id_number"]; ok {
			t.Errorf("user %s overrides effective_caller_id_number", id)
		}
		if !strings.Contains(u.Params["dial-string"], "sofia_contact") {
			t.Errorf("user %s did not inherit the domain dial-string: %v", id, u.Params)
		}
		if u.Pos.File != "directory/default/"+id+".xml" || u.Pos.Line != 3 {
			t.Errorf("user %s at %s", id, u.Pos)
		}
	}
	if _, ok := c.Directory.Lookup("2600", ""); ok {
		t.Error("user 2600 exists")
	}

	if c.Vars["default_password"] == "1234" || c.Vars["default_password"] == "" {
		t.Errorf("default_password %q", c.Vars["default_password"])
	}
	if c.Vars["domain_name"] != "10.77.0.1" || c.Vars["global_codec_prefs"] != "OPUS,G722,PCMU,PCMA" {
		t.Errorf("vars: domain_name %q, codecs %q", c.Vars["domain_name"], c.Vars["global_codec_prefs"])
	}
	if got := c.VarPos["default_password"]; got.File != "vars.xml" || got.Line == 0 {
		t.Errorf("default_password set at %s", got)
	}

	if len(c.Profiles) != 1 {
		t.Fatalf("profiles %v, want only internal", c.ProfileNames())
	}
	p := c.Profiles["internal"]
	for name, want := range map[string]string{
		"sip-port": "5060", "sip-ip": "10.77.0.1", "rtp-ip": "10.77.0.1", "context": "default",
		"apply-inbound-acl": "domains", "apply-register-acl": "<unset>", "apply-candidate-acl": "lab",
		"ws-binding": ":5066", "wss-binding": ":7443", "nonce-ttl": "60", "auth-calls": "true",
		"force-register-domain": "10.77.0.1", "inbound-codec-prefs": "OPUS,G722,PCMU,PCMA",
	} {
		if got := p.Param(name, "<unset>"); got != want {
			t.Errorf("internal %s = %q, want %q", name, got, want)
		}
	}
	if !p.Bool("enable-100rel", false) || !p.Bool("auth-calls", false) || p.Bool("tls", true) {
		t.Error("internal: enable-100rel, auth-calls want true, tls false")
	}
	if pos := p.ParamPos["enable-100rel"]; pos.File != "sip_profiles/internal.xml" || pos.Line == 0 {
		t.Errorf("enable-100rel at %s", pos)
	}
	if got := p.Values("apply-inbound-acl"); !slices.Equal(got, []string{"domains"}) {
		t.Errorf("apply-inbound-acl values %v", got)
	}

	if c.Switch["rtp-start-port"] != "16384" || c.Switch["rtp-end-port"] != "32768" {
		t.Errorf("switch %v", c.Switch)
	}
	for k, want := range map[string]string{"listen-ip": "127.0.0.1", "listen-port": "8021",
		"password": "siprtc-esl-2026", "apply-inbound-acl": "loopback.auto"} {
		if c.EventSocket[k] != want {
			t.Errorf("event socket %s = %q, want %q", k, c.EventSocket[k], want)
		}
	}
	var mods []string
	for _, m := range c.Modules {
		mods = append(mods, m.Name)
	}
	for _, m := range []string{"mod_console", "mod_logfile", "mod_sofia", "mod_event_socket", "mod_commands",
		"mod_dptools", "mod_dialplan_xml", "mod_opus", "mod_spandsp", "mod_tone_stream", "mod_sndfile"} {
		if !slices.Contains(mods, m) {
			t.Errorf("module %s not loaded: %v", m, mods)
		}
	}
	if !slices.Equal(c.Dialplan.ContextNames(), []string{"default", "public"}) {
		t.Errorf("contexts %v", c.Dialplan.ContextNames())
	}
}

func TestOverlayRoute(t *testing.T) {
	c := loadOverlay(t, Options{Apps: leadApps})
	local := []string{
		"export dialed_extension=%s", "set call_timeout=30", "set hangup_after_bridge=true",
		"set continue_on_fail=true", "bridge user/${dialed_extension}@${domain_name}",
		"hangup ${originate_disposition}",
	}
	withID := func(id string) []string {
		out := slices.Clone(local)
		out[0] = strings.ReplaceAll(out[0], "%s", id)
		return out
	}
	for _, tc := range []struct {
		dest string
		ext  string
		want []string
	}{
		{"01234567", "group_dial_sip_proxy", []string{
			"set sip_h_X-Number=<sip:1234567@${domain_name}>", "bridge user/1000@${domain_name}"}},
		{"1000", "Local_Extension", withID("1000")},
		{"1001", "Local_Extension", withID("1001")},
		{"2099", "Local_Extension", withID("2099")},
		{"2100", "Pool_Extension", withID("2100")},
		{"2345", "Pool_Extension", withID("2345")},
		{"2599", "Pool_Extension", withID("2599")},
		{"9196", "echo", []string{"answer", "echo"}},
		{"9190", "busy", []string{"hangup USER_BUSY"}},
		{"2600", "", []string{}},
		{"9999", "", []string{}},
		{"999", "", []string{}},
	} {
		acts, err := c.Dialplan.Route("default", chanVars{"destination_number": tc.dest}, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.dest, err)
		}
		if got := show(acts); !slices.Equal(got, tc.want) {
			t.Errorf("%s routes to %q, want %q", tc.dest, got, tc.want)
		}
		for _, a := range acts {
			if a.Extension != tc.ext || a.Pos.File != "dialplan/default.xml" || a.Pos.Line == 0 {
				t.Errorf("%s: action %s from extension %q at %s, want %s", tc.dest, a.App, a.Extension, a.Pos, tc.ext)
			}
		}
	}

	// What the executor sees once it expands ${...}.
	acts, _ := c.Dialplan.Route("default", chanVars{"destination_number": "01234567"}, nil)
	look := c.Lookup(chanVars{})
	if got := Expand(acts[0].Data, look); got != "sip_h_X-Number=<sip:1234567@10.77.0.1>" {
		t.Errorf("expanded set %q", got)
	}
	if got := Expand(acts[1].Data, look); got != "user/1000@10.77.0.1" {
		t.Errorf("expanded bridge %q", got)
	}

	// The unloop extension ends a looped call.
	acts, _ = c.Dialplan.Route("default", chanVars{"destination_number": "1001", "sip_looped_call": "true"}, nil)
	if got := show(acts); !slices.Equal(got, []string{"hangup EXCHANGE_ROUTING_ERROR"}) {
		t.Errorf("looped call routes to %q", got)
	}
	// The public context refuses.
	acts, _ = c.Dialplan.Route("public", chanVars{"destination_number": "1001"}, nil)
	if got := show(acts); !slices.Equal(got, []string{"hangup NO_ROUTE_DESTINATION"}) {
		t.Errorf("public routes to %q", got)
	}
	if _, err := c.Dialplan.Route("nope", chanVars{}, nil); !errors.Is(err, ErrUnknownContext) {
		t.Errorf("unknown context: %v", err)
	}
}

func TestOverlayPasswordWarning(t *testing.T) {
	c := loadOverlay(t, Options{})
	acts, _ := c.Dialplan.Route("default", chanVars{"destination_number": "1001"}, nil)
	for _, a := range acts {
		if a.App == "log" || a.App == "sleep" {
			t.Fatalf("password warning fires with a non-default password: %v", show(acts))
		}
	}

	c = loadOverlay(t, Options{Overrides: map[string]string{"default_password": "1234"}})
	if u, _ := c.Directory.Lookup("1001", ""); u.Params["password"] != "1234" {
		t.Fatalf("override did not reach the directory: %v", u.Params)
	}
	acts, _ = c.Dialplan.Route("default", chanVars{"destination_number": "1001"}, nil)
	got := show(acts)
	if len(got) != 4+6 {
		t.Fatalf("routes to %q, want 4 warnings then Local_Extension", got)
	}
	for i, a := range acts[:4] {
		if a.App != "log" || !strings.HasPrefix(a.Data, "CRIT ") || a.Extension != "global" {
			t.Errorf("action %d: %+v", i, a)
		}
	}
	if !strings.Contains(acts[1].Data, c.Dir+"/vars.xml") {
		t.Errorf("$${conf_dir} not expanded at load: %q", acts[1].Data)
	}
	if acts[4].Extension != "Local_Extension" {
		t.Errorf("after the warning: %+v", acts[4])
	}
	// break="never" + continue="true": an unknown number still gets the warning, then nothing.
	acts, _ = c.Dialplan.Route("default", chanVars{"destination_number": "9999"}, nil)
	if len(acts) != 4 {
		t.Errorf("9999 with the default password routes to %q", show(acts))
	}
}

func TestOverlayACL(t *testing.T) {
	c := loadOverlay(t, Options{})
	for _, tc := range []struct {
		list, ip string
		want     bool
	}{
		{"domains", "127.0.0.1", true},
		{"domains", "10.77.1.2", true},
		{"domains", "10.78.1.2", false},
		{"domains", "192.0.2.1", false},
		{"lab", "10.77.200.3", true},
		{"lab", "192.168.1.1", false},
		{"loopback.auto", "127.0.0.1", true},
		{"loopback.auto", "10.77.1.2", false},
		{"wan.auto", "10.77.1.2", false}, // why apply-candidate-acl is needed
	} {
		got, err := c.ACL.Check(tc.list, netip.MustParseAddr(tc.ip), c.Directory)
		if err != nil || got != tc.want {
			t.Errorf("Check(%s, %s) = %v, %v; want %v", tc.list, tc.ip, got, err, tc.want)
		}
	}
	if _, err := c.ACL.Check("nope", netip.MustParseAddr("127.0.0.1"), c.Directory); !errors.Is(err, ErrUnknownList) {
		t.Errorf("unknown list: %v", err)
	}
	ok, _, err := c.CheckACLs(c.Profiles["internal"].Values("apply-register-acl"), netip.MustParseAddr("10.77.3.4"))
	if !ok || err != nil {
		t.Errorf("CheckACLs register: %v %v", ok, err)
	}
}

func TestOverlayLintClean(t *testing.T) {
	for _, vars := range []map[string]string{nil, {"local_ip_v4": "127.0.0.1"}} {
		fs, err := Lint(overlay, Options{Vars: vars, Apps: leadApps})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Errorf("finding on the overlay: %s", f)
		}
	}
}

// copyOverlay copies the overlay into a temporary directory. The 1600 generated users are
// linked, not copied (creating files is slow on CI disks).
func copyOverlay(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	users, err := filepath.Abs(filepath.Join(overlay, "directory", "default"))
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(overlay, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(overlay, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() && rel == filepath.Join("directory", "default") {
			if err := os.Symlink(users, target); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// edit replaces old (which must occur exactly once) in a file of dir.
func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	path := filepath.Join(dir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%s: %q occurs %d times", file, old, n)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineOf is the 1-based line of the first occurrence of s in a file of dir.
func lineOf(t *testing.T, dir, file, s string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(s))
	if i < 0 {
		t.Fatalf("%s: no %q", file, s)
	}
	return bytes.Count(b[:i], []byte("\n")) + 1
}

func lintRules(t *testing.T, dir string) []Finding {
	t.Helper()
	fs, err := Lint(dir, Options{Vars: map[string]string{"local_ip_v4": "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLintSleepPutBack(t *testing.T) {
	dir := copyOverlay(t)
	last := `data="CRIT Once changed type 'reloadxml' at the console."/>`
	edit(t, dir, "dialplan/default.xml", last, last+"\n        <action application=\"sleep\" data=\"10000\"/>")
	want := Pos{"dialplan/default.xml", lineOf(t, dir, "dialplan/default.xml", `application="sleep"`)}
	fs := lintRules(t, dir)
	if len(fs) != 1 || fs[0].Rule != RulePasswordWarningSleep || fs[0].Pos != want {
		t.Fatalf("findings %v, want one %s at %s", fs, RulePasswordWarningSleep, want)
	}
	if s := fs[0].String(); !strings.HasPrefix(s, want.String()+": password-warning-sleep: sleep 10000 ") ||
		!strings.Contains(s, "stalls every call; remove it") {
		t.Errorf("finding text %q", s)
	}
}

func TestLintDefaultPassword(t *testing.T) {
	dir := copyOverlay(t)
	edit(t, dir, "vars.xml", "default_password=siprtc-lab-2026", "default_password=1234")
	want := Pos{"vars.xml", lineOf(t, dir, "vars.xml", "default_password=1234")}
	fs := lintRules(t, dir)
	if len(fs) != 1 || fs[0].Rule != RuleDefaultPassword || fs[0].Pos != want {
		t.Fatalf("findings %v, want one %s at %s", fs, RuleDefaultPassword, want)
	}
}

func TestLintCoverageTrap(t *testing.T) {
	dir := copyOverlay(t)
	// The SRProxy document as written: no Pool_Extension.
	edit(t, dir, "dialplan/default.xml", `expression="^(2[1-5][0-9][0-9])$"`, `expression="^(2[1-5][0-9][0-9])-never$"`)
	fs := lintRules(t, dir)
	want := "users 2100..2599 of domain 127.0.0.1 are not reachable: no extension in context default matches them"
	if len(fs) != 1 || fs[0].Rule != RuleExtensionCoverage || fs[0].Message != want {
		t.Fatalf("findings %v, want %q", fs, want)
	}
	if fs[0].Pos != (Pos{"dialplan/default.xml", lineOf(t, dir, "dialplan/default.xml", `<context name="default">`)}) {
		t.Errorf("at %s", fs[0].Pos)
	}
}

func TestLintOtherRules(t *testing.T) {
	dir := copyOverlay(t)
	edit(t, dir, "autoload_configs/event_socket.conf.xml", `value="$${event_socket_password}"`, `value="ClueCon"`)
	edit(t, dir, "dialplan/default.xml", `data="user/1000@${domain_name}"`, `data="{ignore_early_media=true}user/0999@${domain_name}"`)
	edit(t, dir, "autoload_configs/acl.conf.xml", `<node type="allow" cidr="127.0.0.0/8"/>
      <node type="allow" cidr="10.77.0.0/16"/>
      <!--`, `<node type="deny" cidr="127.0.0.0/8"/>
      <node type="allow" cidr="10.77.0.0/16"/>
      <!--`)
	edit(t, dir, "autoload_configs/event_socket.conf.xml", `value="loopback.auto"`, `value="esl"`)
	ipv6 := `<profile name="internal-ipv6">
  <settings>
    <param name="sip-ip" value="$${local_ip_v6}"/>
    <param name="context" value="public"/>
  </settings>
</profile>
`
	if err := os.WriteFile(filepath.Join(dir, "sip_profiles/internal-ipv6.xml"), []byte(ipv6), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string][]Pos{}
	for _, f := range lintRules(t, dir) {
		got[f.Rule] = append(got[f.Rule], f.Pos)
		t.Log(f)
	}
	want := map[string][]Pos{
		RuleESLDefaultPassword:  {{"autoload_configs/event_socket.conf.xml", lineOf(t, dir, "autoload_configs/event_socket.conf.xml", `value="ClueCon"`)}},
		RuleACLUnknownList:      {{"autoload_configs/event_socket.conf.xml", lineOf(t, dir, "autoload_configs/event_socket.conf.xml", `value="esl"`)}},
		RuleProxyAccountMissing: {{"dialplan/default.xml", lineOf(t, dir, "dialplan/default.xml", "user/0999")}},
		RuleACLNoLoopback: {
			{"sip_profiles/internal.xml", lineOf(t, dir, "sip_profiles/internal.xml", `"apply-inbound-acl"`)},
		},
		RuleIPv6Profile: {{"sip_profiles/internal-ipv6.xml", 3}},
		// The public context does not bridge to anyone.
		RuleExtensionCoverage: {{"dialplan/public.xml", lineOf(t, dir, "dialplan/public.xml", `<context name="public">`)}},
	}
	for rule, pos := range want {
		if !slices.Equal(got[rule], pos) {
			t.Errorf("%s at %v, want %v", rule, got[rule], pos)
		}
	}
	for rule := range got {
		if _, ok := want[rule]; !ok {
			t.Errorf("unexpected %s at %v", rule, got[rule])
		}
	}
}

func TestCommittedDirectoryIsGenerated(t *testing.T) {
	gen := t.TempDir()
	if err := os.WriteFile(filepath.Join(gen, "freeswitch.xml"), []byte("<document/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := GenerateDirectory(gen, 1000, 2599)
	if err != nil || n != 1600 {
		t.Fatalf("GenerateDirectory: %d, %v", n, err)
	}
	want, _ := os.ReadDir(filepath.Join(gen, "directory/default"))
	have, err := os.ReadDir(filepath.Join(overlay, "directory/default"))
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != len(want) {
		t.Fatalf("committed directory has %d files, generator writes %d: run siprtc pbx gen-directory --conf freeswitch/conf --from 1000 --to 2599", len(have), len(want))
	}
	for _, e := range want {
		a, _ := os.ReadFile(filepath.Join(gen, "directory/default", e.Name()))
		b, err := os.ReadFile(filepath.Join(overlay, "directory/default", e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("directory/default/%s differs from the generator output (%v): regenerate it", e.Name(), err)
		}
	}
}

func TestOverlaySiteOverride(t *testing.T) {
	dir := copyOverlay(t)
	if err := os.MkdirAll(filepath.Join(dir, "vars.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	lab := "<include>\n  <X-PRE-PROCESS cmd=\"set\" data=\"local_ip_v4=127.0.0.1\"/>\n</include>\n"
	if err := os.WriteFile(filepath.Join(dir, "vars.d/lab.xml"), []byte(lab), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir, Options{Vars: map[string]string{"local_ip_v4": "10.77.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Directory.DefaultDomain(); d != "127.0.0.1" || c.Profiles["internal"].Param("sip-ip", "") != "127.0.0.1" {
		t.Errorf("vars.d/lab.xml did not pin local_ip_v4: domain %s", d)
	}
	if p := c.VarPos["local_ip_v4"]; p != (Pos{"vars.d/lab.xml", 2}) {
		t.Errorf("local_ip_v4 set at %s", p)
	}
}
