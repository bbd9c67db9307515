package fsconf

import (
	"errors"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{
		"a": "A", "b": "x", "a_x": "nested", "domain_name": "10.77.0.1", "num": "0123456789",
		"sofia_contact(*/1000@10.77.0.1)": "sip:1000@10.77.0.9:5060",
	}
	look := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"":                         "",
		"plain $1 text":            "plain $1 text",
		`^\d+$`:                    `^\d+$`, // no ${: untouched, backslashes too
		"${a}":                     "A",
		"pre-${a}-${missing}-post": "pre-A--post",
		"${a_${b}}":                "nested",
		"user/${a}@${domain_name}": "user/A@10.77.0.1",
		"${num:3}":                 "3456789",
		"${num:-3}":                "789",
		"${num:2:3}":               "234",
		"${num:20}":                "",
		`\${a} and ${a}`:           "${a} and A",
		`a\\b ${a}`:                `a\b A`,
		`it\'s`:                    "its",
		"${sofia_contact(*/1000@${domain_name})}": "sip:1000@10.77.0.9:5060",
		"${unknown_api(x)}":                       "",
		"$${a}":                                   "$A",
		"${a":                                     "A", // unterminated: the rest is the name
		"<sip:${a}@${domain_name}>":               "<sip:A@10.77.0.1>",
	} {
		if got := Expand(in, look); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Expand("${a}", nil); got != "" {
		t.Errorf("nil lookup: %q", got)
	}
}

func TestCompileFS(t *testing.T) {
	for _, tc := range []struct {
		expr  string
		match string
		want  bool
	}{
		{"^(1[0-9][0-9][0-9]|20[0-9][0-9])$", "2099", true},
		{"^(1[0-9][0-9][0-9]|20[0-9][0-9])$", "2100", false},
		{"_1NXX", "1299", true},
		{"_1NXX", "1199", false},
		{"_9.", "9", true},
		{"/^abc$/i", "ABC", true},
		{"/^a.c$/s", "a\nc", true},
		{`^end\Z`, "end\n", true},
		{`^[(?=]$`, "=", true}, // inside a class these are literals
		{`^a+?$`, "aaa", true},
		{"", "anything", true},
	} {
		re, err := compileFS(tc.expr)
		if err != nil {
			t.Errorf("compileFS(%q): %v", tc.expr, err)
			continue
		}
		if re.MatchString(tc.match) != tc.want {
			t.Errorf("%q on %q: %v", tc.expr, tc.match, !tc.want)
		}
	}
	for expr, why := range map[string]string{
		"^((?!6000)60\\d{2})$": "lookahead",
		"(?<=a)b":              "lookbehind",
		`(a)\1`:                "backreference",
		"a++":                  "possessive",
		"(?>a)":                "atomic",
		"/abc":                 "missing ending",
		"a{2,1}":               "does not compile",
	} {
		if _, err := compileFS(expr); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("compileFS(%q) = %v, want an error about %s", expr, err, why)
		}
	}
}

// FuzzExpand checks that the runtime and preprocessor expansions terminate, never panic, and
// leave strings without variables alone.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"${a}", "${a_${b}}", "${x:1:2}", `\${a}`, "${f(${a})}", "$${a}", "${", "}${{}", "${a:-9}"} {
		f.Add(s)
	}
	vars := map[string]string{"a": "A", "b": "${a}", "a_A": "deep"}
	look := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	f.Fuzz(func(t *testing.T, s string) {
		out := Expand(s, look)
		if !needsExpand(s) && out != s {
			t.Fatalf("Expand changed %q to %q", s, out)
		}
		p := newPreproc("/", map[string]string{"a": "A"}, nil)
		pe := p.expand(s, Pos{"f.xml", 1})
		if !strings.Contains(s, "$${") && pe != s {
			t.Fatalf("preprocessor changed %q to %q", s, pe)
		}
		if _, err := compileFS(s); err != nil && !strings.Contains(err.Error(), "expression") {
			t.Fatalf("compileFS error without context: %v", err)
		}
		_ = substitute(s, []string{"0", "1"})
		_ = bridgeTargets(s)
		var e *Error
		_ = errors.As(nil, &e)
	})
}
