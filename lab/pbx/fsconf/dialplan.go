package fsconf

import (
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Dialplan is the dialplan section: XML contexts of extensions.
type Dialplan struct {
	Contexts map[string]*Context
	// Globals are the global variables ${var} falls back to after the channel (the
	// preprocessor variables: the same map as Config.Vars).
	Globals map[string]string

	mu    sync.Mutex
	cache map[string]*regexp.Regexp // expressions expanded at hunt time
}

// Context is one <context>.
type Context struct {
	Name       string
	Extensions []*Extension
	Pos        Pos
}

// Extension is one <extension>.
type Extension struct {
	Name       string
	Continue   bool
	Conditions []*Condition
	Pos        Pos
}

// Condition is one <condition>.
type Condition struct {
	Field, Expression    string
	Break                string // on-false (default), on-true, always, never
	Actions, AntiActions []Action
	Pos                  Pos

	// Additions.

	// Regex is the regex="any|all|xor" attribute; the tests are then in Regexes.
	Regex   string
	Regexes []*RegexTest
	// Conditions are nested conditions, run when this one matched; RequireNested (the
	// require-nested attribute, default true) makes their failure fail this one.
	Conditions    []*Condition
	RequireNested bool

	hasField bool
	re       *regexp.Regexp // compiled at load when the expression needs no expansion
}

// RegexTest is one <regex field= expression=> of a regex="any|all|xor" condition.
type RegexTest struct {
	Field, Expression string
	Pos               Pos

	hasField bool
	re       *regexp.Regexp
}

// Action is one <action> or <anti-action>.
type Action struct {
	App, Data string
	Inline    bool
	Pos       Pos
	// Loop is the loop attribute: how many times the action is queued. 0 means the attribute
	// is absent (once); -1 means it is zero or negative (never), as FreeSWITCH's atoi loop.
	Loop int
}

// Channel is what the dialplan reads while hunting: the caller-profile fields
// (destination_number, caller_id_number, caller_id_name, network_addr, username, context, ani,
// rdnis, source, chan_name, uuid...) and the channel variables.
type Channel interface {
	Var(name string) (string, bool)
}

// RoutedAction is one application the hunt queued for execution. Data has $1..$9 replaced by
// the captures of its condition; ${var} is not expanded (the executor expands at run time).
type RoutedAction struct {
	App, Data string
	Pos       Pos
	Extension string
}

// profileFields are the names switch_caller_get_field_by_name knows: a condition field
// without '$' reads one of these (any case); any other bare name reads as "".
var profileFields = map[string]bool{
	"dialplan": true, "username": true, "caller_id_name": true, "ani": true, "aniii": true,
	"caller_id_number": true, "network_addr": true, "rdnis": true, "destination_number": true,
	"uuid": true, "source": true, "transfer_source": true, "context": true, "chan_name": true,
	"profile_index": true, "orig_caller_id_name": true, "orig_caller_id_number": true,
	"callee_id_name": true, "callee_id_number": true, "caller_ton": true, "caller_numplan": true,
	"destination_number_ton": true, "destination_number_numplan": true, "ani_ton": true,
	"ani_numplan": true, "rdnis_ton": true, "rdnis_numplan": true,
}

// timeAttrs are switch_xml_std_datetime_check's attributes (time-of-day routing).
var timeAttrs = []string{"year", "yday", "mon", "mday", "week", "mweek", "wday", "hour",
	"minute", "minute-of-day", "time-of-day", "date-time"}

// inlineApps are the applications Route can run at hunt time (inline="true").
var inlineApps = map[string]bool{"set": true, "unset": true}

// maxRecur is mod_dialplan_xml's nesting limit.
const maxRecur = 100

func (c *Config) buildDialplan(sec *node, apps map[string]bool) (*Dialplan, error) {
	d := &Dialplan{Contexts: map[string]*Context{}, Globals: c.Vars, cache: map[string]*regexp.Regexp{}}
	b := &dpBuilder{c: c, apps: apps}
	for _, cn := range sec.all("context") {
		name, ok := cn.attr("name")
		if !ok || name == "" {
			return nil, errAt(cn.pos, ErrInvalid, "dialplan context without a name")
		}
		if prev, dup := d.Contexts[name]; dup {
			c.note(cn.pos, RuleDuplicate, "second context %q: FreeSWITCH only ever uses the first (%s); ignored", name, prev.Pos)
			continue
		}
		ctx := &Context{Name: name, Pos: cn.pos}
		for _, en := range cn.all("extension") {
			ext := &Extension{Name: en.attrSoft("name"), Continue: True(en.attrSoft("continue")), Pos: en.pos}
			if ext.Name == "" {
				ext.Name = "UNKNOWN"
			}
			for _, xc := range en.all("condition") {
				cond, err := b.condition(xc)
				if err != nil {
					return nil, err
				}
				ext.Conditions = append(ext.Conditions, cond)
			}
			ctx.Extensions = append(ctx.Extensions, ext)
		}
		d.Contexts[name] = ctx
	}
	return d, nil
}

type dpBuilder struct {
	c    *Config
	apps map[string]bool
}

func (b *dpBuilder) noTime(n *node) error {
	for _, a := range timeAttrs {
		if _, ok := n.attr(a); ok {
			return errAt(n.pos, ErrUnsupported, "time-of-day condition (%s=) is not supported by the embedded PBX", a)
		}
	}
	return nil
}

// expression is the <expression> child's text if there is one, else the attribute.
func expression(n *node) string {
	if x := n.child("expression"); x != nil {
		return x.text
	}
	return n.attrSoft("expression")
}

func (b *dpBuilder) field(n *node) (string, bool) {
	f, ok := n.attr("field")
	if ok && !strings.Contains(f, "$") && !profileFields[strings.ToLower(f)] {
		b.c.note(n.pos, RuleUnknownField, "field %q is neither a caller-profile field nor a ${variable}: FreeSWITCH matches it as empty (write ${%s} for a channel variable)", f, f)
	}
	return f, ok
}

func (b *dpBuilder) condition(n *node) (*Condition, error) {
	if err := b.noTime(n); err != nil {
		return nil, err
	}
	c := &Condition{Pos: n.pos, Break: "on-false", RequireNested: true}
	c.Field, c.hasField = b.field(n)
	c.Expression = expression(n)
	if v, ok := n.attr("break"); ok {
		switch lv := strings.ToLower(v); lv {
		case "on-true", "on-false", "always", "never":
			c.Break = lv
		default:
			b.c.note(n.pos, RuleInvalidBreak, "break=%q is not on-true, on-false, always or never: FreeSWITCH uses on-false", v)
		}
	}
	if v, ok := n.attr("require-nested"); ok {
		c.RequireNested = True(v)
	}
	if v, ok := n.attr("regex"); ok {
		c.Regex = v
		if c.Regex == "" {
			c.Regex = "any"
		}
		for _, rn := range n.all("regex") {
			if err := b.noTime(rn); err != nil {
				return nil, err
			}
			r := &RegexTest{Pos: rn.pos, Expression: expression(rn)}
			r.Field, r.hasField = b.field(rn)
			if r.hasField && !needsExpand(r.Expression) {
				re, err := compileFS(r.Expression)
				if err != nil {
					return nil, errAt(rn.pos, ErrRegex, "%v", err)
				}
				r.re = re
			}
			c.Regexes = append(c.Regexes, r)
		}
	} else if c.hasField && !needsExpand(c.Expression) {
		re, err := compileFS(c.Expression)
		if err != nil {
			return nil, errAt(n.pos, ErrRegex, "%v", err)
		}
		c.re = re
	}
	var err error
	if c.Actions, err = b.actions(n.all("action")); err != nil {
		return nil, err
	}
	if c.AntiActions, err = b.actions(n.all("anti-action")); err != nil {
		return nil, err
	}
	for _, nc := range n.all("condition") {
		sub, err := b.condition(nc)
		if err != nil {
			return nil, err
		}
		c.Conditions = append(c.Conditions, sub)
	}
	return c, nil
}

func (b *dpBuilder) actions(ns []*node) ([]Action, error) {
	var out []Action
	for _, an := range ns {
		app, ok := an.attr("application")
		if !ok || app == "" {
			return nil, errAt(an.pos, ErrInvalid, "<%s> without an application", an.name)
		}
		a := Action{App: app, Pos: an.pos, Inline: True(an.attrSoft("inline"))}
		if t := strings.TrimSpace(an.text); t != "" {
			a.Data = t
		} else {
			a.Data = an.attrSoft("data")
		}
		if l, ok := an.attr("loop"); ok {
			if a.Loop = atoi(l); a.Loop <= 0 {
				a.Loop = -1
			}
		}
		if b.apps != nil && !b.apps[app] {
			return nil, errAt(an.pos, ErrApplication, "dialplan application %q is not implemented by the embedded PBX (implemented: %s)", app, strings.Join(sortedKeys(b.apps), ", "))
		}
		if a.Inline && !inlineApps[app] {
			return nil, errAt(an.pos, ErrUnsupported, "inline=\"true\" %s: the embedded PBX runs only set and unset at hunt time", app)
		}
		out = append(out, a)
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, ok := range m {
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ContextNames lists the contexts, sorted.
func (d *Dialplan) ContextNames() []string {
	out := make([]string, 0, len(d.Contexts))
	for n := range d.Contexts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Route hunts the context as mod_dialplan_xml does and returns the queued applications.
//
// The rules (mod_dialplan_xml.c dialplan_hunt and parse_exten):
//   - a missing context falls back to a context named "global", else ErrUnknownContext; with
//     the channel variable auto_hunt true, hunting starts at the extension named like the
//     destination number;
//   - extensions are tried in order; one whose conditions "proceed" stops the hunt unless it
//     has continue="true";
//   - a condition with a field matches its expression (PCRE, run with Go's regexp) against the
//     field: a caller-profile field by name, or the field text with ${var} expanded when it
//     contains '$'; the expression is ${var}-expanded too. A condition without field always
//     matches. regex="any|all|xor" conditions test their <regex> children instead;
//   - a matching condition queues its actions, with $N / ${N} replaced by its own captures
//     (only when its expression contains '('); a failing one queues its anti-actions (data
//     as written);
//   - break: on-false (default) stops the extension when the condition fails, on-true when
//     it matches, always in both cases, never in neither;
//   - the extension proceeds according to its last evaluated condition: a match, or a failure
//     whose anti-actions ran; so a failing break="never" condition at the end makes the
//     hunt go on to the next extension even without continue="true";
//   - inline="true" set/unset run at hunt time: setInline is called (it may be nil) and later
//     conditions of this hunt see the variable.
//
// Not implemented: time-of-day attributes (rejected at load), the DP_MATCH and
// DP_REGEX_MATCH_N variables, and inline applications other than set and unset (rejected at
// load).
func (d *Dialplan) Route(context string, ch Channel, setInline func(name, value string)) ([]RoutedAction, error) {
	ctx := d.Contexts[context]
	if ctx == nil {
		ctx = d.Contexts["global"]
	}
	if ctx == nil {
		return nil, errAt(Pos{}, ErrUnknownContext, "dialplan context %q does not exist", context)
	}
	h := &hunt{d: d, ch: ch, setInline: setInline, local: map[string]string{}, unset: map[string]bool{}}
	exts := ctx.Extensions
	if v, _ := h.lookup("auto_hunt"); True(v) {
		dest := h.field("destination_number")
		for i, e := range exts {
			if strings.EqualFold(e.Name, dest) {
				exts = exts[i:]
				break
			}
		}
	}
	for _, e := range exts {
		h.ext = e.Name
		proceed, err := h.conditions(e.Conditions, 0, true)
		if err != nil {
			return h.out, err
		}
		if proceed && !e.Continue {
			break
		}
	}
	return h.out, nil
}

type hunt struct {
	d         *Dialplan
	ch        Channel
	setInline func(name, value string)
	local     map[string]string // inline sets of this hunt
	unset     map[string]bool
	ext       string
	out       []RoutedAction
}

func (h *hunt) lookup(name string) (string, bool) {
	if v, ok := h.local[name]; ok {
		return v, true
	}
	if h.ch != nil && !h.unset[name] {
		if v, ok := h.ch.Var(name); ok {
			return v, true
		}
	}
	v, ok := h.d.Globals[name]
	return v, ok
}

// field is the data a condition field designates.
func (h *hunt) field(f string) string {
	if strings.Contains(f, "$") {
		return Expand(f, h.lookup)
	}
	lf := strings.ToLower(f)
	if !profileFields[lf] || h.ch == nil {
		return ""
	}
	v, _ := h.ch.Var(lf)
	return v
}

// match runs one field/expression test. pre is the expression compiled at load, if any.
func (h *hunt) match(field, expr string, pre *regexp.Regexp, pos Pos) (groups []string, captures bool, err error) {
	re := pre
	if re == nil {
		expr = Expand(expr, h.lookup)
		if re, err = h.d.compile(expr); err != nil {
			return nil, false, errAt(pos, ErrRegex, "%v", err)
		}
	}
	return re.FindStringSubmatch(h.field(field)), strings.Contains(expr, "("), nil
}

func (d *Dialplan) compile(expr string) (*regexp.Regexp, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache == nil {
		d.cache = map[string]*regexp.Regexp{}
	}
	if re, ok := d.cache[expr]; ok {
		return re, nil
	}
	re, err := compileFS(expr)
	if err != nil {
		return nil, err
	}
	if len(d.cache) < 4096 {
		d.cache[expr] = re
	}
	return re, nil
}

func (h *hunt) emit(a Action, data string) {
	n := a.Loop
	if n == 0 {
		n = 1
	}
	for i := 0; i < n; i++ {
		if a.Inline {
			h.inline(a.App, data)
			continue
		}
		h.out = append(h.out, RoutedAction{App: a.App, Data: data, Pos: a.Pos, Extension: h.ext})
	}
}

func (h *hunt) inline(app, data string) {
	data = Expand(data, h.lookup)
	name, value, _ := strings.Cut(data, "=")
	if app == "unset" {
		name, value = data, ""
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return
	}
	if value == "" { // set with an empty value unsets, as mod_dptools
		delete(h.local, name)
		h.unset[name] = true
	} else {
		h.local[name] = value
		delete(h.unset, name)
	}
	if h.setInline != nil {
		h.setInline(name, value)
	}
}

// conditions is parse_exten: it returns whether the extension (or the nesting condition)
// proceeds.
func (h *hunt) conditions(conds []*Condition, recur int, requireNested bool) (bool, error) {
	if recur > maxRecur {
		return false, nil
	}
	proceed := false
	done := func() (bool, error) {
		if !requireNested {
			return true, nil
		}
		return proceed, nil
	}
	for _, c := range conds {
		var (
			matched bool
			groups  []string
			subst   bool
		)
		switch {
		case c.Regex != "":
			all := strings.EqualFold(c.Regex, "all")
			xor := strings.EqualFold(c.Regex, "xor")
			pass, fail := 0, 0
			var saved struct {
				ok      bool
				groups  []string
				proceed bool
			}
			broke, brokeCaptures := false, false
			var brokeGroups []string
			for _, r := range c.Regexes {
				if !r.hasField {
					pass++
					proceed = true
					if !all && !xor {
						broke = true
						break
					}
					continue
				}
				g, capt, err := h.match(r.Field, r.Expression, r.re, r.Pos)
				if err != nil {
					return false, err
				}
				proceed = g != nil
				if proceed {
					pass++
				} else {
					fail++
				}
				// mod_dialplan_xml breaks out before saving this test's captures.
				if (proceed && !all && !xor) || (!proceed && all && !xor) {
					broke, brokeCaptures, brokeGroups = true, capt, g
					break
				}
				if capt {
					saved.ok, saved.groups, saved.proceed = true, g, proceed
				}
			}
			if xor {
				matched = pass == 1
			} else {
				matched = (all && fail == 0) || (!all && pass > 0)
			}
			if saved.ok {
				subst, groups, proceed = true, saved.groups, saved.proceed
			} else if broke && brokeCaptures {
				subst, groups = true, brokeGroups
			}
		case c.hasField:
			g, capt, err := h.match(c.Field, c.Expression, c.re, c.Pos)
			if err != nil {
				return false, err
			}
			proceed = g != nil
			matched = proceed
			subst, groups = capt, g
		default:
			matched, proceed = true, true
		}

		if !matched {
			for _, a := range c.AntiActions {
				h.emit(a, a.Data)
				proceed = true
			}
		} else {
			for _, a := range c.Actions {
				data := a.Data
				if subst {
					data = substitute(data, groups)
				}
				h.emit(a, data)
			}
		}

		if (matched && c.Break == "on-true") || (!matched && c.Break == "on-false") || c.Break == "always" {
			break
		}
		if proceed && len(c.Conditions) > 0 {
			p, err := h.conditions(c.Conditions, recur+1, c.RequireNested)
			if err != nil {
				return false, err
			}
			if proceed = p; !proceed {
				if c.Break == "never" {
					continue
				}
				return done()
			}
		}
	}
	return done()
}

// substitute is switch_perform_substitution: $N and ${N} become capture N ("" when there is
// no such capture); any other '$' is kept.
func substitute(data string, groups []string) string {
	if !strings.Contains(data, "$") {
		return data
	}
	var b strings.Builder
	for i := 0; i < len(data); {
		if data[i] != '$' {
			b.WriteByte(data[i])
			i++
			continue
		}
		j := i + 1
		brace := j < len(data) && data[j] == '{'
		if brace {
			j++
		}
		k := j
		for k < len(data) && k-j < 9 && data[k] >= '0' && data[k] <= '9' {
			k++
		}
		if k == j { // not a capture reference
			b.WriteByte('$')
			i++
			continue
		}
		if brace && (k >= len(data) || data[k] != '}') {
			b.WriteString(data[i:k])
			i = k
			continue
		}
		if n := atoi(data[j:k]); n < len(groups) {
			b.WriteString(groups[n])
		}
		i = k
		if brace {
			i++
		}
	}
	return b.String()
}
