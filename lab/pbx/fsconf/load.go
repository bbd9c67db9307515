package fsconf

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Options tunes Load.
type Options struct {
	// Vars are preprocessor variables the host provides before vars.xml runs, as FreeSWITCH
	// computes local_ip_v4, hostname, conf_dir and the directories itself. Load fills in
	// defaults for the ones missing (see HostVars).
	Vars map[string]string
	// Overrides are applied after everything: they win over vars.xml (a set command cannot
	// change them), and $${var} sees them from the first line on.
	Overrides map[string]string
	// Apps, if non-nil, is the set of dialplan applications the executor implements; any
	// other application in an action or anti-action is a load error.
	Apps map[string]bool
}

// Config is a loaded FreeSWITCH configuration directory.
type Config struct {
	Dir         string            // absolute conf dir
	Vars        map[string]string // final preprocessor (global) variables
	Directory   *Directory
	Dialplan    *Dialplan
	ACL         *ACL
	Profiles    map[string]*Profile // sofia profiles by name
	EventSocket map[string]string   // event_socket.conf.xml settings
	Modules     []Module            // modules.conf.xml, in load order
	Switch      map[string]string   // switch.conf.xml settings (rtp-start-port...)

	// Additions to the brief's API.

	// VarPos is where each preprocessor variable got its final value ("(host)" and
	// "(overrides)" for Options).
	VarPos map[string]Pos
	// EventSocketPos is where each event socket setting is.
	EventSocketPos map[string]Pos
	// SofiaGlobal are sofia.conf.xml's global_settings.
	SofiaGlobal map[string]string
	// Files is the number of files read.
	Files int

	findings []Finding // noticed while loading; reported by Lint
}

// Module is one <load module=.../> of modules.conf.xml.
type Module struct {
	Name string
	Pos  Pos
}

// Profile is a sofia SIP profile.
type Profile struct {
	Name     string
	Params   map[string]string // last value of each param
	ParamPos map[string]Pos
	Pos      Pos
	// ParamList keeps every param in order: sofia accumulates repeated ACL params
	// (apply-inbound-acl, apply-register-acl, apply-candidate-acl...).
	ParamList []Param
}

// Param is one <param name value/>.
type Param struct {
	Name, Value string
	Pos         Pos

	raw string // the value as written, before $${var} expansion
}

// Param returns the value of the named param, or def.
func (p *Profile) Param(name, def string) string {
	if v, ok := p.Params[name]; ok {
		return v
	}
	return def
}

// Bool returns the named param with FreeSWITCH truthiness (switch_true), or def.
func (p *Profile) Bool(name string, def bool) bool {
	v, ok := p.Params[name]
	if !ok {
		return def
	}
	return True(v)
}

// Values returns every value given to a repeatable param, in order.
func (p *Profile) Values(name string) []string {
	var out []string
	for _, pr := range p.ParamList {
		if pr.Name == name {
			out = append(out, pr.Value)
		}
	}
	return out
}

// True is FreeSWITCH's switch_true: yes, on, true, t, enabled, active or allow (any case), or
// a number (digits, '.', a leading sign) whose integer part is not zero.
func True(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "on", "true", "t", "enabled", "active", "allow":
		return true
	}
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || i == 0 && (c == '-' || c == '+')) {
			return false
		}
	}
	return atoi(s) != 0
}

// atoi is C's atoi: optional spaces and sign, then digits; anything else ends the number.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<40 {
			n = n*10 + int(s[i]-'0')
		}
	}
	if neg {
		return -n
	}
	return n
}

// HostVars returns the preprocessor variables FreeSWITCH computes at start-up, as the embedded
// PBX defaults them when Options.Vars does not give them: local_ip_v4 127.0.0.1 (the lab keeps
// real sockets on loopback), local_mask_v4 255.0.0.0 for it (255.255.255.255 for any other
// given address), local_ip_v6 ::1, hostname from the OS, conf_dir the absolute conf dir,
// base_dir its parent, and the usual directories under base_dir.
func HostVars(confDir string, given map[string]string) map[string]string {
	abs, err := filepath.Abs(confDir)
	if err != nil {
		abs = confDir
	}
	v := map[string]string{}
	for k, val := range given {
		v[k] = val
	}
	def := func(k, val string) {
		if _, ok := v[k]; !ok {
			v[k] = val
		}
	}
	if _, ok := v["local_ip_v4"]; !ok {
		v["local_ip_v4"] = "127.0.0.1"
		def("local_mask_v4", "255.0.0.0")
	}
	def("local_mask_v4", "255.255.255.255")
	def("local_ip_v6", "::1")
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	def("hostname", host)
	def("conf_dir", abs)
	base := filepath.Dir(abs)
	def("base_dir", base)
	for _, d := range []struct{ name, sub string }{
		{"log_dir", "log"}, {"run_dir", "run"}, {"db_dir", "db"}, {"mod_dir", "mod"},
		{"htdocs_dir", "htdocs"}, {"script_dir", "scripts"}, {"temp_dir", "tmp"},
		{"grammar_dir", "grammar"}, {"certs_dir", "certs"}, {"storage_dir", "storage"},
		{"cache_dir", "cache"}, {"recordings_dir", "recordings"}, {"sounds_dir", "sounds"},
		{"images_dir", "images"}, {"fonts_dir", "fonts"}, {"data_dir", "data"},
	} {
		def(d.name, filepath.Join(base, d.sub))
	}
	return v
}

// Load reads dir/freeswitch.xml and everything it includes, as FreeSWITCH 1.10 does, and
// builds the parts the embedded PBX uses.
//
// The preprocessor follows switch_xml.c preprocess():
//
//   - <X-PRE-PROCESS cmd="set" data="name=value"/> sets a preprocessor variable, in document
//     order (spaces around name and value are trimmed, as FreeSWITCH does);
//   - <X-PRE-PROCESS cmd="include" data="glob"/> splices the matching files, sorted, at that
//     point; a relative pattern is relative to the directory of the including file (the top
//     file's directory is the conf dir), which is why vanilla's sofia.conf.xml includes
//     "../sip_profiles/*.xml". Included files may wrap their content in <include>, which is
//     dropped wherever it appears, as FreeSWITCH drops every <include> line;
//   - $${name} in attribute values and text is replaced by the variable's value at that point
//     of the document. FreeSWITCH replaces an undefined $${name} with nothing; so does this
//     package, and it records the use so Lint reports it;
//   - the comment forms <!--#set "name=value"--> and <!--#include "file"--> work as well;
//   - FreeSWITCH preprocesses line by line, so an X-PRE-PROCESS line inside an ordinary XML
//     comment is still executed. A "set" there is applied too (and reported by Lint); other
//     commands inside comments are errors.
//
// Differences, on purpose: exec, exec-set, env-set, stun-set and unknown commands are errors
// (the embedded PBX runs no shell and no STUN; FreeSWITCH ignores unknown ones); an include of
// a missing file that is not a glob is an error (FreeSWITCH logs it at INFO and goes on); an
// include loop is an error (FreeSWITCH recurses 100 levels deep).
func Load(dir string, opts Options) (*Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoConfig, dir, err)
	}
	top := filepath.Join(abs, "freeswitch.xml")
	if st, err := os.Stat(top); err != nil || st.IsDir() {
		return nil, fmt.Errorf("%w in %s", ErrNoConfig, dir)
	}
	p := newPreproc(abs, HostVars(abs, opts.Vars), opts.Overrides)
	doc := &node{name: "#document"}
	if err := p.parseFile(top, Pos{}, doc); err != nil {
		return nil, err
	}
	root := doc.child("document")
	if root == nil {
		return nil, errAt(Pos{File: "freeswitch.xml"}, ErrInvalid, "no <document> element")
	}
	c := &Config{
		Dir:            abs,
		Vars:           p.vars,
		VarPos:         p.varPos,
		Profiles:       map[string]*Profile{},
		EventSocket:    map[string]string{},
		EventSocketPos: map[string]Pos{},
		Switch:         map[string]string{},
		SofiaGlobal:    map[string]string{},
		Files:          p.fileCount,
		findings:       p.findings,
	}

	// Sections: the first of each name, as switch_xml_find_child.
	sections := map[string]*node{}
	for _, s := range root.all("section") {
		name := s.attrSoft("name")
		if _, dup := sections[name]; !dup {
			sections[name] = s
		}
	}
	if c.Directory, err = c.buildDirectory(sections["directory"]); err != nil {
		return nil, err
	}
	configs := map[string]*node{}
	for _, cf := range sections["configuration"].all("configuration") {
		name := cf.attrSoft("name")
		if _, dup := configs[name]; !dup {
			configs[name] = cf
		}
	}
	if c.ACL, err = c.buildACL(configs["acl.conf"]); err != nil {
		return nil, err
	}
	if err := c.buildSofia(configs["sofia.conf"]); err != nil {
		return nil, err
	}
	for _, prm := range configs["event_socket.conf"].child("settings").all("param") {
		name := prm.attrSoft("name")
		c.EventSocket[name] = prm.attrSoft("value")
		c.EventSocketPos[name] = prm.pos
	}
	for _, prm := range configs["switch.conf"].child("settings").all("param") {
		c.Switch[prm.attrSoft("name")] = prm.attrSoft("value")
	}
	for _, m := range configs["modules.conf"].child("modules").all("load") {
		c.Modules = append(c.Modules, Module{Name: m.attrSoft("module"), Pos: m.pos})
	}
	if c.Dialplan, err = c.buildDialplan(sections["dialplan"], opts.Apps); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) note(pos Pos, rule, format string, args ...any) {
	c.findings = append(c.findings, newFinding(pos, rule, format, args...))
}

func (c *Config) buildSofia(cf *node) error {
	for _, prm := range cf.child("global_settings").all("param") {
		c.SofiaGlobal[prm.attrSoft("name")] = prm.attrSoft("value")
	}
	for _, pn := range cf.child("profiles").all("profile") {
		name, ok := pn.attr("name")
		if !ok || name == "" {
			return errAt(pn.pos, ErrInvalid, "sofia profile without a name")
		}
		if _, dup := c.Profiles[name]; dup {
			c.note(pn.pos, RuleDuplicate, "second sofia profile %q: FreeSWITCH cannot start it (same name); ignored", name)
			continue
		}
		pr := &Profile{Name: name, Params: map[string]string{}, ParamPos: map[string]Pos{}, Pos: pn.pos}
		for _, prm := range pn.child("settings").all("param") {
			n, v := prm.attrSoft("name"), prm.attrSoft("value")
			pr.Params[n] = v
			pr.ParamPos[n] = prm.pos
			pr.ParamList = append(pr.ParamList, Param{Name: n, Value: v, Pos: prm.pos, raw: prm.rawAttr("value")})
		}
		c.Profiles[name] = pr
	}
	return nil
}

// ProfileNames are the sofia profile names, sorted.
func (c *Config) ProfileNames() []string {
	out := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns a variable lookup for Expand: the channel first, then the global
// (preprocessor) variables, as FreeSWITCH's ${var} expansion does.
func (c *Config) Lookup(ch Channel) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if ch != nil {
			if v, ok := ch.Var(name); ok {
				return v, true
			}
		}
		v, ok := c.Vars[name]
		return v, ok
	}
}

// CheckACLs applies several ACL lists as sofia applies a repeated apply-*-acl param: the
// address must pass every list. token is the user@domain of a matching domain= node (sofia
// then treats the request as that user), or "".
func (c *Config) CheckACLs(lists []string, ip netip.Addr) (allowed bool, token string, err error) {
	if len(lists) == 0 {
		return true, "", nil
	}
	for _, l := range lists {
		ok, tok, err := c.ACL.CheckToken(l, ip, c.Directory)
		if err != nil {
			return false, "", err
		}
		if !ok {
			return false, "", nil
		}
		if tok != "" {
			token = tok
		}
	}
	return true, token, nil
}
