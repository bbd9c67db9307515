package astconf

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

// Dialplan translation (extensions.conf)
//
// Each FreeSWITCH context becomes an Asterisk context that includes one sub-context per
// extension, in document order: Asterisk searches includes in order, so the first FreeSWITCH
// extension whose conditions match wins, as mod_dialplan_xml hunts. Within an extension:
//
//   - a destination_number condition becomes extension patterns (Patterns: anchored regular
//     expressions of literals, classes, groups, alternation, counted repetition, trailing .*/.+),
//     and its captures $1..$9 become ${EXTEN:offset:length};
//   - a condition on ${variables} that are all preprocessor (global) variables is decided at
//     generation time, as FreeSWITCH would decide it for every call; a condition without field
//     always matches;
//   - actions: set/export/unset (Set, export as an inherited __variable), sip_h_NAME variables
//     (a header added to the B leg's INVITE by a pre-dial handler), bridge user/X@domain (Dial
//     of PJSIP/X with call_timeout, then originate_disposition from DIALSTATUS,
//     hangup_after_bridge and continue_on_fail honoured), hangup CAUSE (Q.850 code), answer,
//     pre_answer (Progress), ring_ready (Ringing), sleep (Wait), echo (Echo), log (Log), info
//     (DumpChan);
//   - continue="true" extensions that match statically run their actions before every later
//     extension (a prelude); one that matches on the number continues with a Goto to the
//     extensions after it.
//
// An extension using anything else (other condition fields, nested or regex="..." conditions,
// dynamic anti-actions, other applications) is not translated: Output.Notes says which and why,
// and the generated file carries the same comment.

var (
	varRef    = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)
	captureRe = regexp.MustCompile(`\$\{?([1-9])\}?`)
	varName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// causeCodes are FreeSWITCH's hangup cause names and their Q.850 codes, which Asterisk's Hangup
// takes.
var causeCodes = map[string]int{
	"UNALLOCATED_NUMBER": 1, "NO_ROUTE_TRANSIT_NET": 2, "NO_ROUTE_DESTINATION": 3,
	"NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18, "NO_ANSWER": 19,
	"SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21, "NUMBER_CHANGED": 22, "EXCHANGE_ROUTING_ERROR": 25,
	"DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "FACILITY_REJECTED": 29,
	"NORMAL_UNSPECIFIED": 31, "NORMAL_CIRCUIT_CONGESTION": 34, "NETWORK_OUT_OF_ORDER": 38,
	"NORMAL_TEMPORARY_FAILURE": 41, "SWITCH_CONGESTION": 42, "REQUESTED_CHAN_UNAVAIL": 44,
	"BEARERCAPABILITY_NOTAVAIL": 58, "SERVICE_UNAVAILABLE": 63, "INCOMPATIBLE_DESTINATION": 88,
	"RECOVERY_ON_TIMER_EXPIRE": 102, "INTERWORKING": 127,
	// FreeSWITCH's own causes, as their SIP responses map back to Q.850.
	"USER_NOT_REGISTERED": 20, "ORIGINATOR_CANCEL": 16, "MEDIA_TIMEOUT": 16,
}

// dialStatusCauses: Asterisk's DIALSTATUS after a failed Dial, as FreeSWITCH's
// originate_disposition (a Q.850 code here).
var dialStatusCauses = []struct {
	status string
	cause  int
}{
	{"BUSY", 17}, {"NOANSWER", 19}, {"CHANUNAVAIL", 20}, {"CONGESTION", 34}, {"CANCEL", 16}, {"INVALIDARGS", 28},
}

// calleeCauses are the Q.850 causes of a callee's own final response that Asterisk's Dial
// reports only as CHANUNAVAIL: 18 no user response (408), 21 call rejected (603), 22 number
// changed (410), 27 destination out of order (502), 88 incompatible destination (488).
var calleeCauses = []int{18, 21, 22, 27, 88}

// channelFields are FreeSWITCH channel fields read in action data, as Asterisk expressions.
var channelFields = map[string]string{
	"destination_number": "${EXTEN}",
	"caller_id_number":   "${CALLERID(num)}",
	"caller_id_name":     "${CALLERID(name)}",
	"ani":                "${CALLERID(ani)}",
	"uuid":               "${UNIQUEID}",
	"context":            "${CONTEXT}",
}

// untranslatable explains why an extension is not translated.
type untranslatable struct {
	pos    fsconf.Pos
	reason string
}

func (u *untranslatable) Error() string { return u.reason }

func skip(pos fsconf.Pos, format string, args ...any) *untranslatable {
	return &untranslatable{pos: pos, reason: fmt.Sprintf(format, args...)}
}

// dpGen holds the state of extensions.conf.
type dpGen struct {
	*gen
	b       bytes.Buffer
	globals map[string]bool
	predial int
	dispo   bool
	// needAfter: the "after" contexts a continue="true" extension jumps to.
	needAfter map[string]bool
}

func (g *gen) dialplan() error {
	d := &dpGen{gen: g, globals: map[string]bool{}}
	var body bytes.Buffer
	for _, name := range g.contexts {
		d.b.Reset()
		if err := d.context(name); err != nil {
			return err
		}
		body.Write(d.b.Bytes())
	}
	var b bytes.Buffer
	header(&b, g.conf, "extensions.conf: the FreeSWITCH XML dialplan, translated (lab/pbx/astconf/dialplan.go)")
	b.WriteString("[general]\nstatic=yes\nwriteprotect=yes\nautofallthrough=yes\nclearglobalvars=yes\n\n")
	b.WriteString("; FreeSWITCH preprocessor (global) variables the dialplan reads.\n[globals]\n")
	var gl []string
	for v := range d.globals {
		gl = append(gl, v)
	}
	sort.Strings(gl)
	for _, v := range gl {
		fmt.Fprintf(&b, "%s=%s\n", v, value(g.conf.Vars[v]))
	}
	b.WriteString("\n")
	b.Write(body.Bytes())
	if d.dispo {
		g.need("app_stack.so", "app_exec.so")
		b.WriteString("; originate_disposition after a Dial: FreeSWITCH's bridge failure cause, from DIALSTATUS.\n[siprtc-disposition]\nexten => s,1,Set(originate_disposition=16)\n")
		for _, dc := range dialStatusCauses {
			fmt.Fprintf(&b, " same => n,ExecIf($[\"${DIALSTATUS}\" = \"%s\"]?Set(originate_disposition=%d))\n", dc.status, dc.cause)
		}
		// A callee's own refusal (603, 408, ...) leaves CHANUNAVAIL, which says nothing of it; its
		// cause is in HANGUPCAUSE, which FreeSWITCH would give as the bridge's disposition. Only
		// those causes: an unregistered callee is CHANUNAVAIL too, with a cause (3) that would
		// turn FreeSWITCH's 480 into a 404.
		var conds []string
		for _, c := range calleeCauses {
			conds = append(conds, fmt.Sprintf("0${HANGUPCAUSE} = %d", c))
		}
		fmt.Fprintf(&b, " same => n,ExecIf($[\"${DIALSTATUS}\" = \"CHANUNAVAIL\" & (%s)]?Set(originate_disposition=${HANGUPCAUSE}))\n", strings.Join(conds, " | "))
		b.WriteString(" same => n,Return()\n\n")
	}
	g.out.Files["extensions.conf"] = b.Bytes()
	return nil
}

func (d *dpGen) context(name string) error {
	ctx := d.conf.Dialplan.Contexts[name]
	if ctx == nil {
		return fmt.Errorf("%w: dialplan context %q (used by the sofia profile or a user_context) does not exist", ErrGenerate, name)
	}
	if !sectionName.MatchString(name) {
		return fmt.Errorf("%w: dialplan context %q is not a valid Asterisk context name", ErrGenerate, name)
	}
	type sub struct {
		name  string
		lines []string
	}
	var subs []sub
	var prelude []string
	for i, e := range ctx.Extensions {
		subName := fmt.Sprintf("%s-fs%02d-%s", name, i+1, sanitize(e.Name))
		lines, pre, err := d.extension(name, subName, ctx, i, e)
		if err != nil {
			u, ok := err.(*untranslatable)
			if !ok {
				return err
			}
			d.note(u.pos, "extension %q of context %q not translated: %s", e.Name, name, u.reason)
			subs = append(subs, sub{subName, []string{fmt.Sprintf("; extension %q (%s) not translated: %s", e.Name, e.Pos, u.reason)}})
			continue
		}
		if pre != nil {
			prelude = append(prelude, pre...)
			subs = append(subs, sub{subName, []string{fmt.Sprintf("; extension %q (%s) matches at generation time and continues: its actions run first in every later extension", e.Name, e.Pos)}})
			continue
		}
		if lines == nil {
			subs = append(subs, sub{subName, []string{fmt.Sprintf("; extension %q (%s) never matches (decided at generation time)", e.Name, e.Pos)}})
			continue
		}
		if len(prelude) > 0 {
			lines = withPrelude(lines, prelude)
		}
		subs = append(subs, sub{subName, lines})
	}
	fmt.Fprintf(&d.b, "; FreeSWITCH context %q (%s): its extensions in hunting order.\n[%s]\n", name, ctx.Pos, name)
	for _, s := range subs {
		if len(s.lines) == 1 && strings.HasPrefix(s.lines[0], ";") {
			continue
		}
		fmt.Fprintf(&d.b, "include => %s\n", s.name)
	}
	d.b.WriteString("\n")
	for _, s := range subs {
		if len(s.lines) == 1 && strings.HasPrefix(s.lines[0], ";") {
			d.b.WriteString(s.lines[0] + "\n\n")
			continue
		}
		fmt.Fprintf(&d.b, "[%s]\n", s.name)
		for _, l := range s.lines {
			d.b.WriteString(l + "\n")
		}
		d.b.WriteString("\n")
	}
	// "after" contexts for extensions that continue on a number match.
	for i := range subs {
		if !d.needAfter[afterName(name, i)] {
			continue
		}
		fmt.Fprintf(&d.b, "; the extensions after #%d, for a matching extension with continue=\"true\"\n[%s]\n", i+1, afterName(name, i))
		for _, s := range subs[i+1:] {
			if len(s.lines) == 1 && strings.HasPrefix(s.lines[0], ";") {
				continue
			}
			fmt.Fprintf(&d.b, "include => %s\n", s.name)
		}
		d.b.WriteString("\n")
	}
	return nil
}

func afterName(ctx string, i int) string { return fmt.Sprintf("%s-after%02d", ctx, i+1) }

// withPrelude inserts the prelude's priorities after each "exten => PATTERN,1,NoOp(...)" line.
func withPrelude(lines, prelude []string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l)
		if strings.HasPrefix(l, "exten => ") && strings.Contains(l, ",1,NoOp(") {
			out = append(out, prelude...)
		}
	}
	return out
}

// extension translates one extension. It returns the sub-context's lines; or prelude lines for a
// continue="true" extension decided at generation time; or nil, nil when it never matches.
func (d *dpGen) extension(ctxName, subName string, ctx *fsconf.Context, idx int, e *fsconf.Extension) (lines, prelude []string, err error) {
	var dyn *fsconf.Condition
	var actions []fsconf.Action
	proceed := false
	for _, c := range e.Conditions {
		if len(c.Conditions) > 0 {
			return nil, nil, skip(c.Pos, "nested conditions are not translated")
		}
		if c.Regex != "" {
			return nil, nil, skip(c.Pos, "regex=%q conditions are not translated", c.Regex)
		}
		var matched bool
		switch {
		case c.Field == "" && c.Expression == "":
			matched = true
		case strings.EqualFold(c.Field, "destination_number"):
			if dyn != nil {
				return nil, nil, skip(c.Pos, "a second destination_number condition")
			}
			if len(c.AntiActions) > 0 {
				return nil, nil, skip(c.Pos, "anti-actions of a destination_number condition")
			}
			if c.Break == "on-true" || c.Break == "always" {
				return nil, nil, skip(c.Pos, "break=%q on a destination_number condition", c.Break)
			}
			dyn = c
			matched = true // the patterns decide; the actions apply where they match
		case strings.Contains(c.Field, "$"):
			field, ok := d.static(c.Field)
			if !ok {
				return nil, nil, skip(c.Pos, "condition on %s: a channel variable Asterisk does not have, not decidable at generation time", c.Field)
			}
			expr, ok := d.static(c.Expression)
			if !ok {
				return nil, nil, skip(c.Pos, "expression %q reads channel variables", c.Expression)
			}
			re, rerr := regexp.Compile(expr)
			if rerr != nil {
				return nil, nil, skip(c.Pos, "expression %q: %v", expr, rerr)
			}
			matched = re.MatchString(field)
		default:
			return nil, nil, skip(c.Pos, "condition on the field %q is not translated (destination_number and ${global variables} are)", c.Field)
		}
		if matched {
			actions = append(actions, c.Actions...)
			proceed = true
			if c.Break == "on-true" || c.Break == "always" {
				break
			}
		} else {
			actions = append(actions, c.AntiActions...)
			proceed = len(c.AntiActions) > 0
			if c.Break == "on-false" || c.Break == "always" {
				break
			}
		}
	}
	if !proceed {
		return nil, nil, nil
	}
	if dyn == nil {
		// Decided now: every call gets these actions.
		if e.Continue {
			body, _, terr := d.actions(subName, actions, nil)
			if terr != nil {
				return nil, nil, terr
			}
			if body == nil {
				body = []string{" same => n,NoOp()"}
			}
			return nil, body, nil
		}
		pats := []Pattern{{Exten: "_[0-9*#+]"}, {Exten: "_[0-9*#+]."}}
		return d.render(e, pats, actions, subName, ctxName, idx)
	}
	expr, ok := d.static(dyn.Expression)
	if !ok {
		return nil, nil, skip(dyn.Pos, "expression %q reads channel variables", dyn.Expression)
	}
	pats, perr := Patterns(expr)
	if perr != nil {
		return nil, nil, skip(dyn.Pos, "%v", perr)
	}
	return d.render(e, pats, actions, subName, ctxName, idx)
}

func (d *dpGen) render(e *fsconf.Extension, pats []Pattern, actions []fsconf.Action, subName, ctxName string, idx int) ([]string, []string, error) {
	var lines []string
	for _, p := range pats {
		body, _, err := d.actions(subName, actions, &p)
		if err != nil {
			return nil, nil, err
		}
		comment := fmt.Sprintf("FreeSWITCH %s %s", e.Name, e.Pos)
		lines = append(lines, fmt.Sprintf("exten => %s,1,NoOp(%s)", p.Exten, comment))
		if p.Regex != "" {
			lines[len(lines)-1] += " ; destination_number =~ " + p.Regex
		}
		lines = append(lines, body...)
		if e.Continue {
			if d.needAfter == nil {
				d.needAfter = map[string]bool{}
			}
			d.needAfter[afterName(ctxName, idx)] = true
			lines = append(lines, fmt.Sprintf(" same => n,Goto(%s,${EXTEN},1)", afterName(ctxName, idx)))
		}
	}
	return lines, nil, nil
}

// static expands ${vars} with the preprocessor variables only; false if any other is read.
func (d *dpGen) static(s string) (string, bool) {
	ok := true
	out := fsconf.Expand(s, func(name string) (string, bool) {
		v, found := d.conf.Vars[name]
		if !found {
			ok = false
		}
		return v, found
	})
	return out, ok
}

// exprData turns FreeSWITCH action data into Asterisk's: captures, channel fields, globals.
func (d *dpGen) exprData(data string, p *Pattern) string {
	if p != nil {
		data = captureRe.ReplaceAllStringFunc(data, func(m string) string {
			n, _ := strconv.Atoi(captureRe.FindStringSubmatch(m)[1])
			return p.Captures[n]
		})
	}
	return varRef.ReplaceAllStringFunc(data, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		if f, ok := channelFields[name]; ok {
			return f
		}
		if _, ok := d.conf.Vars[name]; ok {
			d.globals[name] = true
		}
		return m
	})
}

type extState struct {
	headers           [][2]string
	callTimeout       string
	hangupAfterBridge bool
	continueOnFail    bool
}

// actions translates the applications of one extension to " same => n,..." lines.
func (d *dpGen) actions(subName string, acts []fsconf.Action, p *Pattern) ([]string, *extState, error) {
	st := &extState{}
	var out []string
	add := func(app string) { out = append(out, " same => n,"+app) }
	for _, a := range acts {
		if a.Loop < 0 {
			continue
		}
		n := 1
		if a.Loop > 1 {
			n = a.Loop
		}
		for range n {
			if err := d.action(subName, a, p, st, add); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, st, nil
}

func (d *dpGen) action(subName string, a fsconf.Action, p *Pattern, st *extState, add func(string)) error {
	data := d.exprData(a.Data, p)
	switch a.App {
	case "set", "export":
		name, val, ok := strings.Cut(data, "=")
		if !ok {
			return skip(a.Pos, "%s %q has no '='", a.App, a.Data)
		}
		name = strings.TrimPrefix(name, "nolocal:")
		if h, ok := strings.CutPrefix(name, "sip_h_"); ok {
			if strings.ContainsAny(val, "^,()") {
				return skip(a.Pos, "header %s value %q has a character a pre-dial handler argument cannot carry", h, val)
			}
			st.headers = append(st.headers, [2]string{h, val})
			return nil
		}
		if !varName.MatchString(name) {
			return skip(a.Pos, "variable name %q is not an Asterisk variable name", name)
		}
		switch name {
		case "call_timeout":
			st.callTimeout = val
		case "hangup_after_bridge":
			st.hangupAfterBridge = fsconf.True(val)
		case "continue_on_fail":
			st.continueOnFail = fsconf.True(val)
		case "effective_caller_id_number":
			add("Set(CALLERID(num)=" + val + ")")
			return nil
		case "effective_caller_id_name":
			add("Set(CALLERID(name)=" + val + ")")
			return nil
		}
		if a.App == "export" {
			add("Set(__" + name + "=" + val + ")")
		} else {
			add("Set(" + name + "=" + val + ")")
		}
	case "unset":
		if !varName.MatchString(data) {
			return skip(a.Pos, "variable name %q is not an Asterisk variable name", data)
		}
		add("Set(" + data + "=)")
	case "log":
		level, msg, _ := strings.Cut(strings.TrimSpace(data), " ")
		lv := map[string]string{"CONSOLE": "NOTICE", "ALERT": "ERROR", "CRIT": "ERROR", "ERR": "ERROR",
			"ERROR": "ERROR", "WARNING": "WARNING", "NOTICE": "NOTICE", "INFO": "NOTICE", "DEBUG": "DEBUG"}[strings.ToUpper(level)]
		if lv == "" {
			lv, msg = "NOTICE", data
		}
		d.need("app_verbose.so")
		add("Log(" + lv + "," + strings.ReplaceAll(msg, ",", `\,`) + ")")
	case "info":
		d.need("app_dumpchan.so")
		add("DumpChan()")
	case "ring_ready":
		add("Ringing()")
	case "pre_answer":
		add("Progress()")
	case "answer":
		add("Answer()")
	case "sleep":
		ms, err := strconv.Atoi(strings.TrimSpace(data))
		if err != nil {
			return skip(a.Pos, "sleep %q is not milliseconds", a.Data)
		}
		add("Wait(" + strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + ")")
	case "echo":
		d.need("app_echo.so")
		add("Echo()")
	case "hangup":
		cause := strings.TrimSpace(data)
		switch {
		case cause == "":
			add("Hangup()")
		case cause == "${originate_disposition}":
			add("Hangup(${originate_disposition})")
		default:
			if code, ok := causeCodes[strings.ToUpper(cause)]; ok {
				add(fmt.Sprintf("Hangup(%d) ; %s", code, cause))
			} else {
				add("Hangup(" + cause + ")")
			}
		}
	case "bridge":
		return d.bridge(subName, a, data, st, add)
	default:
		return skip(a.Pos, "dialplan application %q has no translation", a.App)
	}
	return nil
}

// bridge translates bridge user/X@domain[,user/Y@domain] into Dial.
func (d *dpGen) bridge(subName string, a fsconf.Action, data string, st *extState, add func(string)) error {
	if strings.HasPrefix(data, "{") || strings.HasPrefix(data, "[") || strings.HasPrefix(data, "<") {
		return skip(a.Pos, "bridge with channel variables %q is not translated", a.Data)
	}
	if strings.Contains(data, "|") {
		return skip(a.Pos, "sequential bridge targets (|) are not translated")
	}
	var targets []string
	for _, t := range strings.Split(data, ",") {
		t = strings.TrimSpace(t)
		rest, ok := strings.CutPrefix(t, "user/")
		if !ok {
			return skip(a.Pos, "bridge target %q: only user/NUMBER@DOMAIN (the directory) is translated", t)
		}
		user, dom, _ := strings.Cut(rest, "@")
		if dom != "" {
			// The domain is the directory's: a global, or the value of one.
			dv := dom
			if m := varRef.FindStringSubmatch(dom); m != nil && m[0] == dom {
				dv = d.conf.Vars[m[1]]
			}
			if !strings.EqualFold(dv, d.out.Domain) {
				return skip(a.Pos, "bridge target %q is not in the directory domain %q", t, d.out.Domain)
			}
		}
		targets = append(targets, "PJSIP/"+user)
	}
	timeout := "60" // FreeSWITCH's default call_timeout
	if st.callTimeout != "" {
		if _, err := strconv.Atoi(st.callTimeout); err != nil {
			return skip(a.Pos, "call_timeout %q is not a number of seconds", st.callTimeout)
		}
		timeout = st.callTimeout
	}
	d.need("app_dial.so")
	opts := ""
	if len(st.headers) > 0 {
		d.predial++
		name := fmt.Sprintf("siprtc-predial-%s-%d", subName, d.predial)
		var args []string
		var b strings.Builder
		fmt.Fprintf(&b, "; sip_h_ variables of %s: headers of the B leg's INVITE (pre-dial handler)\n[%s]\n", a.Pos, name)
		for i, h := range st.headers {
			prio := "n"
			if i == 0 {
				prio = "1"
			}
			if i == 0 {
				fmt.Fprintf(&b, "exten => s,%s,Set(PJSIP_HEADER(add,%s)=${ARG%d})\n", prio, h[0], i+1)
			} else {
				fmt.Fprintf(&b, " same => n,Set(PJSIP_HEADER(add,%s)=${ARG%d})\n", h[0], i+1)
			}
			args = append(args, h[1])
		}
		b.WriteString(" same => n,Return()\n\n")
		d.b.WriteString(b.String())
		d.need("app_stack.so", "res_pjsip_header_funcs.so")
		opts = fmt.Sprintf("b(%s^s^1(%s))", name, strings.Join(args, "^"))
	}
	if opts != "" {
		opts = "," + opts
	}
	add(fmt.Sprintf("Dial(%s,%s%s)", strings.Join(targets, "&"), timeout, opts))
	d.dispo = true
	add("Gosub(siprtc-disposition,s,1)")
	if st.hangupAfterBridge {
		d.need("app_exec.so")
		add(`ExecIf($["${DIALSTATUS}" = "ANSWER"]?Hangup())`)
	}
	if !st.continueOnFail {
		d.need("app_exec.so")
		add(`ExecIf($["${DIALSTATUS}" != "ANSWER"]?Hangup(${originate_disposition}))`)
	}
	return nil
}
