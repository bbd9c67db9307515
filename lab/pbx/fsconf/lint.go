package fsconf

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Lint rule ids (stable: scripts and CI may filter on them).
const (
	// RulePasswordWarningSleep: a sleep under the default_password warning condition.
	RulePasswordWarningSleep = "password-warning-sleep"
	// RuleDefaultPassword: default_password is FreeSWITCH's well-known 1234.
	RuleDefaultPassword = "default-password"
	// RuleExtensionCoverage: directory users no extension would bridge to (or a profile or
	// user naming a context that does not exist).
	RuleExtensionCoverage = "extension-coverage"
	// RuleProxyAccountMissing: a bridge to user/N@... with N absent from the directory.
	RuleProxyAccountMissing = "proxy-account-missing"
	// RuleACLNoLoopback: an ACL the lab's traffic must pass denies 127.0.0.1.
	RuleACLNoLoopback = "acl-no-loopback"
	// RuleESLDefaultPassword: the event socket password is ClueCon.
	RuleESLDefaultPassword = "esl-default-password"
	// RuleIPv6Profile: a sofia profile binds an IPv6 address.
	RuleIPv6Profile = "ipv6-profile"

	// Found while loading.

	// RuleUndefinedVar: $${name} of an undefined preprocessor variable (expands to nothing).
	RuleUndefinedVar = "undefined-preprocessor-var"
	// RuleCommentedPreprocess: a preprocessor line inside an XML comment (FreeSWITCH still
	// runs it, or drops the comment line).
	RuleCommentedPreprocess = "commented-preprocess"
	// RuleDuplicate: a second context, domain, user or profile of the same name.
	RuleDuplicate = "duplicate"
	// RuleInvalidBreak: a break value FreeSWITCH does not know (it uses on-false).
	RuleInvalidBreak = "invalid-break"
	// RuleUnknownField: a condition field that is neither a caller-profile field nor ${var}.
	RuleUnknownField = "unknown-field"
	// RuleACLEmptyList: an ACL list without nodes (FreeSWITCH does not register it).
	RuleACLEmptyList = "acl-empty-list"
	// RuleACLUnknownList: a profile or the event socket names an ACL list that does not
	// exist (FreeSWITCH then denies everything).
	RuleACLUnknownList = "acl-unknown-list"
)

// Finding is one lint result.
type Finding struct {
	Pos           Pos
	Rule, Message string
}

// String formats the finding as "dialplan/default.xml:42: rule: message".
func (f Finding) String() string {
	return f.Pos.String() + ": " + f.Rule + ": " + f.Message
}

func newFinding(pos Pos, rule, format string, args ...any) Finding {
	return Finding{Pos: pos, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Lint loads dir and reports the known traps of the SRProxy/FreeSWITCH deployment (and what
// the loader noticed), sorted by file then line. A configuration that does not load is an
// error, not a finding.
func Lint(dir string, opts Options) ([]Finding, error) {
	c, err := Load(dir, opts)
	if err != nil {
		return nil, err
	}
	return c.Lint(), nil
}

// Lint reports the findings of a loaded configuration (see the Rule* constants).
func (c *Config) Lint() []Finding {
	out := append([]Finding(nil), c.findings...)
	out = append(out, c.lintPasswordSleep()...)
	if c.Vars["default_password"] == "1234" {
		out = append(out, newFinding(c.VarPos["default_password"], RuleDefaultPassword,
			"default_password is 1234, FreeSWITCH's well-known default: every directory user's password; set another value in vars.xml"))
	}
	out = append(out, c.lintCoverage()...)
	out = append(out, c.lintProxyAccounts()...)
	out = append(out, c.lintACLs()...)
	if c.EventSocket["password"] == "ClueCon" {
		out = append(out, newFinding(c.EventSocketPos["password"], RuleESLDefaultPassword,
			"the event socket password is ClueCon, FreeSWITCH's well-known default: anyone who reaches port %s controls the switch; use a vars.xml variable", c.EventSocket["listen-port"]))
	}
	out = append(out, c.lintIPv6()...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Message < b.Message
	})
	dedup := out[:0]
	for i, f := range out {
		if i > 0 && f == out[i-1] {
			continue
		}
		dedup = append(dedup, f)
	}
	return dedup
}

// walkConditions visits every condition of every context, nested ones included.
func (c *Config) walkConditions(fn func(ctx *Context, ext *Extension, cond *Condition)) {
	if c.Dialplan == nil {
		return
	}
	var walk func(ctx *Context, ext *Extension, conds []*Condition)
	walk = func(ctx *Context, ext *Extension, conds []*Condition) {
		for _, cond := range conds {
			fn(ctx, ext, cond)
			walk(ctx, ext, cond.Conditions)
		}
	}
	for _, name := range c.Dialplan.ContextNames() {
		ctx := c.Dialplan.Contexts[name]
		for _, ext := range ctx.Extensions {
			walk(ctx, ext, ext.Conditions)
		}
	}
}

func (c *Config) lintPasswordSleep() []Finding {
	var out []Finding
	c.walkConditions(func(_ *Context, ext *Extension, cond *Condition) {
		on := strings.Contains(cond.Field, "default_password")
		for _, r := range cond.Regexes {
			on = on || strings.Contains(r.Field, "default_password")
		}
		if !on {
			return
		}
		for _, a := range append(append([]Action(nil), cond.Actions...), cond.AntiActions...) {
			if a.App == "sleep" {
				out = append(out, newFinding(a.Pos, RulePasswordWarningSleep,
					"sleep %s under the default_password warning (extension %s) stalls every call; remove it", a.Data, ext.Name))
			}
		}
	})
	return out
}

type simChannel map[string]string

func (s simChannel) Var(name string) (string, bool) {
	v, ok := s[name]
	return v, ok
}

func (c *Config) lintCoverage() []Finding {
	if c.Dialplan == nil || c.Directory == nil {
		return nil
	}
	dom := c.Directory.domain("")
	if dom == nil {
		return nil
	}
	type ref struct {
		pos Pos
		by  string
	}
	refs := map[string]ref{}
	for _, name := range c.ProfileNames() {
		p := c.Profiles[name]
		ctx := p.Param("context", "default")
		pos, ok := p.ParamPos["context"]
		if !ok {
			pos = p.Pos
		}
		if _, seen := refs[ctx]; !seen {
			refs[ctx] = ref{pos, "sofia profile " + name}
		}
	}
	for _, id := range dom.order {
		u := dom.Users[id]
		if ctx := u.Variables["user_context"]; ctx != "" {
			if _, seen := refs[ctx]; !seen {
				refs[ctx] = ref{u.Pos, "user_context of " + id + "@" + dom.Name}
			}
		}
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Finding
	for _, name := range names {
		cx := c.Dialplan.Contexts[name]
		if cx == nil {
			out = append(out, newFinding(refs[name].pos, RuleExtensionCoverage,
				"context %q (%s) does not exist: FreeSWITCH refuses every call routed to it", name, refs[name].by))
			continue
		}
		var missing []string
		for _, id := range dom.order {
			acts, err := c.Dialplan.Route(name, simChannel{"destination_number": id, "context": name}, nil)
			bridged := false
			for _, a := range acts {
				bridged = bridged || a.App == "bridge"
			}
			if err != nil || !bridged {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if len(missing) == 1 {
			out = append(out, newFinding(cx.Pos, RuleExtensionCoverage,
				"user %s of domain %s is not reachable: no extension in context %s matches it", missing[0], dom.Name, name))
		} else {
			out = append(out, newFinding(cx.Pos, RuleExtensionCoverage,
				"users %s of domain %s are not reachable: no extension in context %s matches them", compactIDs(missing), dom.Name, name))
		}
	}
	return out
}

// compactIDs writes ids as ranges: "1500, 2100..2599".
func compactIDs(ids []string) string {
	var nums []int
	var other []string
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil && strconv.Itoa(n) == id {
			nums = append(nums, n)
		} else {
			other = append(other, id)
		}
	}
	sort.Ints(nums)
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(nums[i]))
		} else {
			parts = append(parts, strconv.Itoa(nums[i])+".."+strconv.Itoa(nums[j]))
		}
		i = j + 1
	}
	sort.Strings(other)
	return strings.Join(append(parts, other...), ", ")
}

// bridgeTargets splits bridge data into its endpoints: {vars} and <vars> prefixes dropped,
// endpoints separated by ',' '|' or ":_:", [vars] prefixes dropped.
func bridgeTargets(data string) []string {
	s := strings.TrimSpace(data)
	for len(s) > 0 && (s[0] == '{' || s[0] == '<') {
		end := closing(s, 0)
		if end < 0 {
			return nil
		}
		s = strings.TrimSpace(s[end+1:])
	}
	s = strings.ReplaceAll(s, ":_:", ",")
	var out []string
	depth, start := 0, 0
	flush := func(e int) {
		t := strings.TrimSpace(s[start:e])
		for len(t) > 0 && t[0] == '[' {
			end := closing(t, 0)
			if end < 0 {
				break
			}
			t = strings.TrimSpace(t[end+1:])
		}
		if t != "" {
			out = append(out, t)
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
		case ',', '|':
			if depth == 0 {
				flush(i)
				start = i + 1
			}
		}
	}
	flush(len(s))
	return out
}

func closing(s string, open int) int {
	pairs := map[byte]byte{'{': '}', '<': '>', '[': ']'}
	o, cl := s[open], pairs[s[open]]
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			depth++
		case cl:
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func (c *Config) lintProxyAccounts() []Finding {
	var out []Finding
	globals := func(n string) (string, bool) { v, ok := c.Vars[n]; return v, ok }
	c.walkConditions(func(_ *Context, ext *Extension, cond *Condition) {
		for _, a := range append(append([]Action(nil), cond.Actions...), cond.AntiActions...) {
			if a.App != "bridge" {
				continue
			}
			for _, t := range bridgeTargets(a.Data) {
				rest, ok := strings.CutPrefix(t, "user/")
				if !ok {
					continue
				}
				id, domain, _ := strings.Cut(rest, "@")
				if id == "" || strings.Contains(id, "$") {
					continue
				}
				dom := Expand(domain, globals)
				if strings.Contains(dom, "$") {
					dom = ""
				}
				if _, found := c.Directory.Lookup(id, dom); !found {
					shown := dom
					if shown == "" {
						shown = c.Directory.DefaultDomain()
					}
					out = append(out, newFinding(a.Pos, RuleProxyAccountMissing,
						"bridge to %s (extension %s): user %s is not in the directory of domain %s", t, ext.Name, id, shown))
				}
			}
		}
	})
	return out
}

var aclParams = map[string]bool{
	"apply-inbound-acl": true, "apply-register-acl": true, "apply-candidate-acl": true,
	"apply-nat-acl": true, "local-network-acl": true, "apply-proxy-acl": true,
}

func (c *Config) lintACLs() []Finding {
	var out []Finding
	loop := netip.MustParseAddr("127.0.0.1")
	check := func(list, what string, pos Pos, needLoopback bool) {
		ok, _, err := c.ACL.CheckToken(list, loop, c.Directory)
		switch {
		case errors.Is(err, ErrUnknownList):
			out = append(out, newFinding(pos, RuleACLUnknownList, "%s names ACL list %q, which does not exist: FreeSWITCH denies everything", what, list))
		case err != nil:
			out = append(out, newFinding(pos, RuleACLUnknownList, "%s: %v", what, err))
		case !ok && needLoopback:
			out = append(out, newFinding(pos, RuleACLNoLoopback, "ACL list %q (%s) denies 127.0.0.1: the lab reaches FreeSWITCH over loopback (host networking)", list, what))
		}
	}
	for _, name := range c.ProfileNames() {
		for _, p := range c.Profiles[name].ParamList {
			if aclParams[p.Name] {
				check(p.Value, p.Name+" of sofia profile "+name, p.Pos,
					p.Name == "apply-inbound-acl" || p.Name == "apply-register-acl")
			}
		}
	}
	if l, ok := c.EventSocket["apply-inbound-acl"]; ok {
		check(l, "apply-inbound-acl of the event socket", c.EventSocketPos["apply-inbound-acl"], true)
	}
	return out
}

func (c *Config) lintIPv6() []Finding {
	var out []Finding
	for _, name := range c.ProfileNames() {
		p := c.Profiles[name]
		for _, prm := range p.ParamList {
			if prm.Name != "sip-ip" && prm.Name != "rtp-ip" {
				continue
			}
			ip, err := netip.ParseAddr(prm.Value)
			if (err == nil && ip.Is6() && !ip.Is4In6()) || strings.Contains(prm.raw, "local_ip_v6") {
				out = append(out, newFinding(prm.Pos, RuleIPv6Profile,
					"sofia profile %s binds IPv6 (%s=%s): the SRProxy deployment removes the IPv6 profiles and the lab has no IPv6", name, prm.Name, prm.Value))
			}
		}
	}
	return out
}
