package fsconf

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		apps  map[string]bool
		kind  error
		want  string // exact error text
	}{
		{
			name:  "missing include",
			files: map[string]string{"vars.xml": "<include>\n\n  <X-PRE-PROCESS cmd=\"include\" data=\"nope.xml\"/>\n</include>\n"},
			kind:  ErrInclude,
			want:  `vars.xml:3: include "nope.xml": file nope.xml does not exist`,
		},
		{
			name:  "unknown preprocessor command",
			files: map[string]string{"vars.xml": "<include>\n  <X-PRE-PROCESS cmd=\"frobnicate\" data=\"x=1\"/>\n</include>\n"},
			kind:  ErrPreprocess,
			want:  `vars.xml:2: unknown preprocessor command "frobnicate": the embedded PBX cannot run it (FreeSWITCH would ignore it silently)`,
		},
		{
			name:  "stun-set",
			files: map[string]string{"vars.xml": "<include>\n  <X-PRE-PROCESS cmd=\"stun-set\" data=\"external_rtp_ip=stun:stun.freeswitch.org\"/>\n</include>\n"},
			kind:  ErrPreprocess,
			want:  `vars.xml:2: preprocessor command "stun-set" (data "external_rtp_ip=stun:stun.freeswitch.org") is not supported by the embedded PBX: it runs no shell and no STUN lookup; use cmd="set" with a literal value`,
		},
		{
			name:  "malformed XML in an included file",
			files: map[string]string{"autoload_configs/acl.conf.xml": "<configuration name=\"acl.conf\">\n  <network-lists>\n  </lists>\n</configuration>\n"},
			kind:  ErrXML,
			want:  "autoload_configs/acl.conf.xml:3: malformed XML: element <network-lists> closed by </lists>",
		},
		{
			name: "unimplemented application",
			files: map[string]string{"dialplan/default.xml": `<include>
  <context name="default">
    <extension name="vm">
      <condition field="destination_number" expression="^4000$">
        <action application="answer"/>
        <action application="voicemail" data="check default ${domain_name}"/>
      </condition>
    </extension>
  </context>
</include>
`},
			apps: map[string]bool{"answer": true, "bridge": true},
			kind: ErrApplication,
			want: `dialplan/default.xml:6: dialplan application "voicemail" is not implemented by the embedded PBX (implemented: answer, bridge)`,
		},
		{
			name: "PCRE lookahead",
			files: map[string]string{"dialplan/default.xml": `<include><context name="default">
<extension name="valet_park">
  <condition field="destination_number" expression="^((?!6000)60\d{2})$">
    <action application="answer"/>
  </condition>
</extension>
</context></include>`},
			kind: ErrRegex,
			want: `dialplan/default.xml:3: expression "^((?!6000)60\\d{2})$": lookahead (?! is not supported by Go's regexp`,
		},
		{
			name: "time of day",
			files: map[string]string{"dialplan/default.xml": `<include><context name="default">
<extension name="tod_example" continue="true">
  <condition wday="2-6" hour="9-18"><action application="set" data="open=true"/></condition>
</extension>
</context></include>`},
			kind: ErrUnsupported,
			want: `dialplan/default.xml:3: time-of-day condition (wday=) is not supported by the embedded PBX`,
		},
		{
			name: "inline application",
			files: map[string]string{"dialplan/default.xml": `<include><context name="default">
<extension name="x"><condition><action application="log" data="x" inline="true"/></condition></extension>
</context></include>`},
			kind: ErrUnsupported,
			want: `dialplan/default.xml:2: inline="true" log: the embedded PBX runs only set and unset at hunt time`,
		},
		{
			name: "include loop",
			files: map[string]string{
				"vars.xml":  "<include>\n<X-PRE-PROCESS cmd=\"include\" data=\"sub/a.xml\"/>\n</include>\n",
				"sub/a.xml": "<include>\n<X-PRE-PROCESS cmd=\"include\" data=\"../vars.xml\"/>\n</include>\n",
			},
			kind: ErrInclude,
			want: "sub/a.xml:2: include loop: vars.xml includes itself",
		},
		{
			name:  "bad ACL cidr",
			files: map[string]string{"autoload_configs/acl.conf.xml": "<configuration name=\"acl.conf\"><network-lists>\n<list name=\"x\" default=\"deny\">\n<node type=\"allow\" cidr=\"10.0.0.0\"/>\n</list></network-lists></configuration>"},
			kind:  ErrInvalid,
			want:  `autoload_configs/acl.conf.xml:3: ACL list "x": bad cidr "10.0.0.0" (FreeSWITCH would drop this node)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConf(t, tc.files), Options{Apps: tc.apps})
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n %s\nwant\n %s", err, tc.want)
			}
		})
	}
	if _, err := Load(t.TempDir(), Options{}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("empty dir: %v", err)
	}
}

func TestPreprocessor(t *testing.T) {
	dir := writeConf(t, map[string]string{
		"vars.xml": `<include>
  <X-PRE-PROCESS cmd="set" data="early=$${late}"/>
  <X-PRE-PROCESS cmd="set" data=" late = L "/>
  <X-PRE-PROCESS cmd="set" data="domain=$${local_ip_v4}"/>
  <X-PRE-PROCESS cmd="set" data="both=$${domain}/$${late}"/>
  <X-PRE-PROCESS cmd="set" data="fixed=from-vars"/>
  <XX-PRE-PROCESS cmd="set" data="disabled=yes"/>
  <!--#set "hash=comment form"-->
  <!--#comment anything -->
  <!--
    <X-PRE-PROCESS cmd="set" data="commented=still runs"/>
  -->
  <X-PRE-PROCESS cmd="include" data="sub/*.xml"/>
</include>
`,
		// Included relative to the including file's directory (sub/), as FreeSWITCH.
		"sub/a.xml":  "<X-PRE-PROCESS cmd=\"include\" data=\"b.inc\"/>\n",
		"sub/b.inc":  "<include><X-PRE-PROCESS cmd=\"set\" data=\"nested=$${fixed}\"/></include>",
		"sub/c.xml":  "<X-PRE-PROCESS cmd=\"set\" data=\"order=c\"/>",
		"sub/b2.xml": "<X-PRE-PROCESS cmd=\"set\" data=\"order=b2\"/>",
		"directory/default.xml": `<include><domain name="$${domain}">
  <params><param name="password" value="domain-wide"/></params>
  <variables><variable name="v" value="$${undefined_thing}x"/></variables>
  <users><user id="u1" cidr="192.0.2.0/24"/></users>
  <groups><group name="g"><users>
    <user id="u2"><params><param name="password" value="own"/></params></user>
    <user id="u1" type="pointer"/>
  </users></group></groups>
</domain></include>`,
	})
	c, err := Load(dir, Options{
		Vars:      map[string]string{"local_ip_v4": "192.0.2.7"},
		Overrides: map[string]string{"fixed": "override"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"early": "", "late": "L ", "domain": "192.0.2.7", "both": "192.0.2.7/L ", "fixed": "override",
		"hash": "comment form", "commented": "still runs", "nested": "override", "order": "c",
		"local_ip_v4": "192.0.2.7", "local_mask_v4": "255.255.255.255",
	} {
		if got, ok := c.Vars[k]; !ok || got != want {
			t.Errorf("var %s = %q (%v), want %q", k, got, ok, want)
		}
	}
	if _, ok := c.Vars["disabled"]; ok {
		t.Error("XX-PRE-PROCESS ran")
	}
	if c.VarPos["nested"] != (Pos{"sub/b.inc", 1}) || c.VarPos["late"] != (Pos{"vars.xml", 3}) {
		t.Errorf("positions: nested %s, late %s", c.VarPos["nested"], c.VarPos["late"])
	}
	if c.Files != 7 {
		t.Errorf("read %d files", c.Files)
	}

	u1, _ := c.Directory.Lookup("u1", "192.0.2.7")
	u2, _ := c.Directory.Lookup("U2", "")
	if u1 == nil || u2 == nil || u1.Params["password"] != "domain-wide" || u2.Params["password"] != "own" ||
		u2.Group != "g" || u1.CIDR != "192.0.2.0/24" || u1.Variables["v"] != "x" {
		t.Errorf("users: %+v %+v", u1, u2)
	}
	if n := len(c.Directory.Domains["192.0.2.7"].Users); n != 2 {
		t.Errorf("%d users (pointer counted?)", n)
	}

	rules := map[string][]string{}
	for _, f := range c.Lint() {
		rules[f.Rule] = append(rules[f.Rule], f.Pos.String())
	}
	if got := strings.Join(rules[RuleUndefinedVar], " "); got != "directory/default.xml:3 vars.xml:2" {
		t.Errorf("undefined vars reported at %q", got)
	}
	if got := strings.Join(rules[RuleCommentedPreprocess], " "); got != "vars.xml:11" {
		t.Errorf("commented set reported at %q", got)
	}
}

func TestTrue(t *testing.T) {
	for s, want := range map[string]bool{"true": true, "TRUE": true, "yes": true, "on": true, "1": true,
		"enabled": true, "allow": true, "t": true, "active": true, "-2": true, "12abc": false,
		"false": false, "no": false, "0": false, "": false, "deny": false, " true": false, "0.5": false} {
		if True(s) != want {
			t.Errorf("True(%q) = %v", s, !want)
		}
	}
}
