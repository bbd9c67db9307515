package fsconf

import (
	"errors"
	"slices"
	"testing"
)

const hangupExt = `<extension name="b"><condition><action application="hangup"/></condition></extension>`

func TestHunting(t *testing.T) {
	type call struct {
		vars chanVars
		want []string
	}
	for _, tc := range []struct {
		name  string
		body  string
		calls []call
	}{
		{
			name: "captures $N and ${N}, unknown ones empty, ${var} kept",
			body: `<extension name="a">
  <condition field="destination_number" expression="^(\d)(\d+)$">
    <action application="log" data="$1-${2}-$0-$3-$x-${domain_name}-${9"/>
  </condition>
</extension>`,
			calls: []call{{chanVars{"destination_number": "12345"}, []string{"log 1-2345-12345--$x-${domain_name}-${9"}}},
		},
		{
			name:  "a condition without field always matches; a match stops the hunt",
			body:  `<extension name="a"><condition><action application="answer"/></condition></extension>` + hangupExt,
			calls: []call{{chanVars{}, []string{"answer"}}},
		},
		{
			name:  "continue=true goes on after a match",
			body:  `<extension name="a" continue="true"><condition><action application="answer"/></condition></extension>` + hangupExt,
			calls: []call{{chanVars{}, []string{"answer", "hangup"}}},
		},
		{
			name: "anti-actions run on failure, unsubstituted, and count as a match",
			body: `<extension name="a">
  <condition field="destination_number" expression="^(9)$">
    <action application="log" data="yes $1"/>
    <anti-action application="log" data="no $1"/>
  </condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log no $1"}},
				{chanVars{"destination_number": "9"}, []string{"log yes 9"}},
			},
		},
		{
			name: "break on-false (default): a failure ends the extension, queued actions stay",
			body: `<extension name="a">
  <condition field="destination_number" expression="^5$"><action application="log" data="first"/></condition>
  <condition field="${x}" expression="^yes$"><action application="log" data="second"/></condition>
  <condition><action application="log" data="third"/></condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log first", "hangup"}},
				{chanVars{"destination_number": "5", "x": "yes"}, []string{"log first", "log second", "log third"}},
				{chanVars{"destination_number": "6", "x": "yes"}, []string{"hangup"}},
			},
		},
		{
			name: "break never: every condition runs; the last one decides whether the extension matched",
			body: `<extension name="a">
  <condition field="destination_number" expression="^5$" break="never"><action application="log" data="one"/></condition>
  <condition field="${x}" expression="^yes$" break="never"><action application="log" data="two"/></condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log one", "hangup"}},
				{chanVars{"destination_number": "6", "x": "yes"}, []string{"log two"}},
				{chanVars{"destination_number": "5", "x": "yes"}, []string{"log one", "log two"}},
			},
		},
		{
			name: "break on-true: a match ends the extension, a failure goes on",
			body: `<extension name="a">
  <condition field="destination_number" expression="^5$" break="on-true"><action application="log" data="one"/></condition>
  <condition><action application="log" data="two"/></condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log one"}},
				{chanVars{"destination_number": "6"}, []string{"log two"}},
			},
		},
		{
			name: "break always: the first condition decides",
			body: `<extension name="a">
  <condition field="destination_number" expression="^5$" break="always"><action application="log" data="one"/></condition>
  <condition><action application="log" data="two"/></condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log one"}},
				{chanVars{"destination_number": "6"}, []string{"hangup"}},
			},
		},
		{
			name: "captures belong to their own condition",
			body: `<extension name="a">
  <condition field="destination_number" expression="^(\d+)$"/>
  <condition field="${x}" expression="^yes$"><action application="log" data="$1"/></condition>
  <condition field="${x}" expression="^(y)es$"><action application="log" data="$1"/></condition>
</extension>`,
			calls: []call{{chanVars{"destination_number": "55", "x": "yes"}, []string{"log $1", "log y"}}},
		},
		{
			name: "inline set is seen by later conditions and extensions",
			body: `<extension name="a" continue="true">
  <condition field="destination_number" expression="^(\d+)$">
    <action application="set" data="who=$1" inline="true"/>
    <action application="set" data="queued=1"/>
  </condition>
  <condition field="${who}" expression="^42$"><action application="log" data="inline ${who}"/></condition>
</extension>
<extension name="b"><condition field="${who}" expression="^(4)2$"><action application="log" data="b $1"/></condition></extension>`,
			calls: []call{
				{chanVars{"destination_number": "42"}, []string{"set queued=1", "log inline ${who}", "log b 4"}},
				{chanVars{"destination_number": "43"}, []string{"set queued=1"}},
			},
		},
		{
			name: "expressions are ${var}-expanded at hunt time, fields by name or ${var}",
			body: `<extension name="a">
  <condition field="caller_id_number" expression="^${allowed}$"><action application="log" data="ok"/></condition>
</extension>
<extension name="c">
  <condition field="${caller_id_number}/${sip_h_X-Tag}" expression="^1002/lab$"><action application="log" data="tag"/></condition>
</extension>
<extension name="d">
  <condition field="foo" expression="^$"><action application="log" data="unknown fields read empty"/></condition>
</extension>`,
			calls: []call{
				{chanVars{"caller_id_number": "1001", "allowed": "1001"}, []string{"log ok"}},
				{chanVars{"caller_id_number": "1002", "allowed": "1001", "sip_h_X-Tag": "lab"}, []string{"log tag"}},
				{chanVars{"caller_id_number": "1003", "foo": "x"}, []string{"log unknown fields read empty"}},
			},
		},
		{
			name: "regex any: the first passing test ends the loop before its captures are saved",
			body: `<extension name="a">
  <condition regex="any">
    <regex field="caller_id_number" expression="^1001$"/>
    <regex field="destination_number" expression="^(9)(\d+)$"/>
    <action application="log" data="any $2"/>
    <anti-action application="log" data="none"/>
  </condition>
</extension>`,
			calls: []call{
				{chanVars{"caller_id_number": "1001", "destination_number": "5"}, []string{"log any $2"}},
				{chanVars{"caller_id_number": "2000", "destination_number": "95"}, []string{"log any 5"}},
				{chanVars{"caller_id_number": "2000", "destination_number": "5"}, []string{"log none"}},
			},
		},
		{
			name: "regex all",
			body: `<extension name="a">
  <condition regex="all">
    <regex field="caller_id_number" expression="^1001$"/>
    <regex field="destination_number" expression="^(9)(\d+)$"/>
    <action application="log" data="all $2"/>
    <anti-action application="log" data="none"/>
  </condition>
</extension>`,
			calls: []call{
				{chanVars{"caller_id_number": "1001", "destination_number": "95"}, []string{"log all 5"}},
				{chanVars{"caller_id_number": "1001", "destination_number": "5"}, []string{"log none"}},
			},
		},
		{
			name: "regex xor",
			body: `<extension name="a">
  <condition regex="xor">
    <regex field="caller_id_number" expression="^1001$"/>
    <regex field="destination_number" expression="^9"/>
    <action application="log" data="one"/>
    <anti-action application="log" data="not one"/>
  </condition>
</extension>`,
			calls: []call{
				{chanVars{"caller_id_number": "1001", "destination_number": "5"}, []string{"log one"}},
				{chanVars{"caller_id_number": "1001", "destination_number": "95"}, []string{"log not one"}},
				{chanVars{"caller_id_number": "2", "destination_number": "5"}, []string{"log not one"}},
			},
		},
		{
			name: "nested conditions, require-nested",
			body: `<extension name="a">
  <condition field="destination_number" expression="^5$">
    <action application="log" data="outer"/>
    <condition field="${x}" expression="^yes$"><action application="log" data="inner"/></condition>
  </condition>
</extension>
<extension name="n">
  <condition field="destination_number" expression="^6$" require-nested="false">
    <action application="log" data="outer6"/>
    <condition field="${x}" expression="^yes$"><action application="log" data="inner6"/></condition>
  </condition>
</extension>` + hangupExt,
			calls: []call{
				{chanVars{"destination_number": "5", "x": "yes"}, []string{"log outer", "log inner"}},
				{chanVars{"destination_number": "5"}, []string{"log outer", "hangup"}},
				{chanVars{"destination_number": "6"}, []string{"log outer6"}},
			},
		},
		{
			name: "asterisk patterns and /re/flags",
			body: `<extension name="a" continue="true">
  <condition field="destination_number" expression="_1NXX"><action application="log" data="ast"/></condition>
</extension>
<extension name="b">
  <condition field="caller_id_name" expression="/^abc$/i"><action application="log" data="caseless"/></condition>
</extension>`,
			calls: []call{
				{chanVars{"destination_number": "1234", "caller_id_name": "ABC"}, []string{"log ast", "log caseless"}},
				{chanVars{"destination_number": "1034", "caller_id_name": "abd"}, []string{}},
			},
		},
		{
			name: "loop attribute",
			body: `<extension name="a"><condition>
  <action application="log" data="x" loop="3"/>
  <action application="log" data="never" loop="0"/>
</condition></extension>`,
			calls: []call{{chanVars{}, []string{"log x", "log x", "log x"}}},
		},
		{
			name: "auto_hunt starts at the extension named like the destination",
			body: `<extension name="all"><condition><action application="log" data="first"/></condition></extension>
<extension name="5"><condition><action application="log" data="named"/></condition></extension>`,
			calls: []call{
				{chanVars{"destination_number": "5"}, []string{"log first"}},
				{chanVars{"destination_number": "5", "auto_hunt": "true"}, []string{"log named"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialplanConf(t, tc.body)
			for _, cl := range tc.calls {
				acts, err := c.Dialplan.Route("t", cl.vars, nil)
				if err != nil {
					t.Fatalf("%v: %v", cl.vars, err)
				}
				if got := show(acts); !slices.Equal(got, cl.want) {
					t.Errorf("%v: got %q, want %q", cl.vars, got, cl.want)
				}
			}
		})
	}
}

func TestRouteInlineCallback(t *testing.T) {
	c := dialplanConf(t, `<extension name="a">
  <condition field="destination_number" expression="^(\d+)$">
    <action application="set" data="who=${caller_id_number}-$1" inline="true"/>
    <action application="unset" data="gone" inline="true"/>
  </condition>
</extension>`)
	var got []string
	_, err := c.Dialplan.Route("t", chanVars{"destination_number": "42", "caller_id_number": "7", "gone": "x"},
		func(name, value string) { got = append(got, name+"="+value) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"who=7-42", "gone="}) {
		t.Errorf("setInline calls %q", got)
	}
}

func TestRouteContexts(t *testing.T) {
	c := dialplanConf(t, `<extension name="a"><condition><action application="log" data="t"/></condition></extension>
</context>
<context name="global">
<extension name="g"><condition><action application="log" data="global"/></condition></extension>`)
	acts, err := c.Dialplan.Route("missing", chanVars{}, nil)
	if err != nil || !slices.Equal(show(acts), []string{"log global"}) {
		t.Errorf("fallback to global: %q, %v", show(acts), err)
	}
	c = dialplanConf(t, `<extension name="a"><condition><action application="log" data="t"/></condition></extension>`)
	if _, err := c.Dialplan.Route("missing", chanVars{}, nil); !errors.Is(err, ErrUnknownContext) {
		t.Errorf("missing context: %v", err)
	}
	// A runtime-expanded expression that Go cannot compile is an error naming the condition.
	c = dialplanConf(t, `<extension name="a">
<condition field="destination_number" expression="^${re}$"><action application="log" data="x"/></condition>
</extension>`)
	_, err = c.Dialplan.Route("t", chanVars{"destination_number": "1", "re": "(?=1)"}, nil)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRegex) || e.Pos != (Pos{"dialplan/t.xml", 4}) {
		t.Errorf("runtime regex error: %v", err)
	}
}

func TestSubstitute(t *testing.T) {
	g := []string{"all", "a", "", "c"}
	for in, want := range map[string]string{
		"":             "",
		"plain":        "plain",
		"$1$2$3$4":     "ac",
		"${1}x${3}":    "axc",
		"$$1":          "$a",
		"${domain}$":   "${domain}$",
		"${12":         "${12",
		"$10":          "",
		"cost $ 5 $a1": "cost $ 5 $a1",
	} {
		if got := substitute(in, g); got != want {
			t.Errorf("substitute(%q) = %q, want %q", in, got, want)
		}
	}
}
