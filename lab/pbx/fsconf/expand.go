package fsconf

import (
	"fmt"
	"regexp"
	"strings"
)

// Expand is FreeSWITCH's runtime ${var} expansion (switch_channel_expand_variables):
//
//   - ${name} is replaced by lookup(name), "" when unknown; the name may itself hold ${...}
//     (nested: ${a_${b}} looks up "a_" + the value of b);
//   - ${name:offset} and ${name:offset:length} take a substring (a negative offset counts
//     from the end);
//   - ${api(args)} is FreeSWITCH's API call syntax: lookup receives "api(args)" with args
//     already expanded, so a caller may implement a few API functions; "" when unknown;
//   - \$ is a literal '$', \\ is '\', \' is removed; a '$' not followed by '{' is literal;
//   - a string without "${", "\$" or "\'" is returned unchanged (so regex backslashes stay).
func Expand(s string, lookup func(name string) (string, bool)) string {
	return expandDepth(s, lookup, 0)
}

const maxExpandDepth = 64

func needsExpand(s string) bool {
	return strings.Contains(s, "${") || strings.Contains(s, `\$`) || strings.Contains(s, `\'`)
}

func expandDepth(s string, lookup func(string) (string, bool), depth int) string {
	if !needsExpand(s) || depth > maxExpandDepth {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '$':
				b.WriteByte('$')
				i++
				continue
			case '\'':
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		if c != '$' || i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte(c)
			continue
		}
		start := i + 2
		end := len(s) // unterminated: the rest is the name, as FreeSWITCH
		depthB := 1
		for j := start; j < len(s); j++ {
			if s[j] == '}' {
				depthB--
				if depthB == 0 {
					end = j
					break
				}
			} else if s[j] == '{' && j != start {
				depthB++
			}
		}
		b.WriteString(expandVar(s[start:end], lookup, depth))
		i = end
	}
	return b.String()
}

func expandVar(inner string, lookup func(string) (string, bool), depth int) string {
	if lookup == nil {
		return ""
	}
	if k := strings.IndexByte(inner, '('); k >= 0 {
		name := strings.TrimRight(inner[:k], " ")
		args := inner[k+1:]
		lvl := 1
		for j := 0; j < len(args); j++ {
			switch args[j] {
			case '(':
				lvl++
			case ')':
				if lvl--; lvl == 0 {
					args = args[:j]
				}
			}
			if lvl == 0 {
				break
			}
		}
		name = expandDepth(name, lookup, depth+1)
		args = expandDepth(args, lookup, depth+1)
		v, _ := lookup(name + "(" + args + ")")
		return v
	}
	name := expandDepth(inner, lookup, depth+1)
	offset, length := 0, 0
	if k := strings.IndexByte(name, ':'); k >= 0 {
		rest := name[k+1:]
		name = name[:k]
		offset = atoi(rest)
		if k2 := strings.IndexByte(rest, ':'); k2 >= 0 {
			length = atoi(rest[k2+1:])
		}
	}
	v, ok := lookup(name)
	if !ok {
		return ""
	}
	if offset >= 0 {
		if offset > len(v) {
			v = ""
		} else {
			v = v[offset:]
		}
	} else if -offset <= len(v) {
		v = v[len(v)+offset:]
	}
	if length > 0 && length < len(v) {
		v = v[:length]
	}
	return v
}

// compileFS compiles a dialplan expression as switch_regex_perform does: a leading '_' makes
// it an Asterisk-style pattern (N [2-9], X [0-9], Z [1-9], '.' any, anchored), "/re/flags"
// takes the flags i and s; then PCRE syntax is checked for what Go's regexp (RE2) lacks.
func compileFS(expr string) (*regexp.Regexp, error) {
	e := expr
	if strings.HasPrefix(e, "_") {
		e = ast2regex(e[1:])
	}
	flags := ""
	if strings.HasPrefix(e, "/") {
		rest := e[1:]
		k := strings.LastIndexByte(rest, '/')
		if k < 0 {
			return nil, fmt.Errorf("expression %q: missing ending '/' delimiter (FreeSWITCH never matches it)", expr)
		}
		opts := rest[k+1:]
		e = rest[:k]
		if strings.Contains(opts, "i") {
			flags += "i"
		}
		if strings.Contains(opts, "s") {
			flags += "s"
		}
	}
	t, err := pcreToGo(e)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %v", expr, err)
	}
	if flags != "" {
		t = "(?" + flags + ")" + t
	}
	re, err := regexp.Compile(t)
	if err != nil {
		return nil, fmt.Errorf("expression %q does not compile with Go's regexp: %v", expr, err)
	}
	return re, nil
}

func ast2regex(p string) string {
	var b strings.Builder
	b.WriteByte('^')
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case 'N':
			b.WriteString("[2-9]")
		case 'X':
			b.WriteString("[0-9]")
		case 'Z':
			b.WriteString("[1-9]")
		case '.':
			b.WriteString(".*")
		default:
			b.WriteByte(p[i])
		}
	}
	b.WriteByte('$')
	return b.String()
}

// pcreToGo rejects the PCRE constructs RE2 cannot run, with a name for each, and rewrites \Z
// (end, or before a final newline) for Go. Everything else is left to regexp.Compile.
// Known difference kept: PCRE's '$' also matches before a final newline; Go's only at the end.
func pcreToGo(e string) (string, error) {
	var b strings.Builder
	inClass := false
	prevQuant := false
	for i := 0; i < len(e); i++ {
		c := e[i]
		if c == '\\' && i+1 < len(e) {
			n := e[i+1]
			if !inClass {
				switch {
				case n >= '1' && n <= '9':
					return "", fmt.Errorf("backreference \\%c is not supported by Go's regexp", n)
				case n == 'Z':
					b.WriteString(`(?:\n?\z)`)
					i++
					prevQuant = false
					continue
				case strings.IndexByte("GKRXhHvVgk", n) >= 0:
					return "", fmt.Errorf("PCRE escape \\%c is not supported by Go's regexp", n)
				}
			}
			b.WriteByte(c)
			b.WriteByte(n)
			i++
			prevQuant = false
			continue
		}
		if inClass {
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
			continue
		}
		switch c {
		case '[':
			inClass = true
			b.WriteByte(c)
			if i+1 < len(e) && e[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(e) && e[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			prevQuant = false
			continue
		case '(':
			if i+2 < len(e) && e[i+1] == '?' {
				switch n := e[i+2]; {
				case n == '=' || n == '!':
					return "", fmt.Errorf("lookahead (?%c is not supported by Go's regexp", n)
				case n == '<' && i+3 < len(e) && (e[i+3] == '=' || e[i+3] == '!'):
					return "", fmt.Errorf("lookbehind (?<%c is not supported by Go's regexp", e[i+3])
				case n == '>':
					return "", fmt.Errorf("atomic group (?> is not supported by Go's regexp")
				case n == '|':
					return "", fmt.Errorf("branch reset group (?| is not supported by Go's regexp")
				case n == 'R' || n == '&' || n == '+' || (n >= '0' && n <= '9'):
					return "", fmt.Errorf("recursion (?%c is not supported by Go's regexp", n)
				case n == '#':
					return "", fmt.Errorf("comment group (?# is not supported by Go's regexp")
				}
			}
		case '+':
			if prevQuant {
				return "", fmt.Errorf("possessive quantifier at offset %d is not supported by Go's regexp", i)
			}
		}
		b.WriteByte(c)
		switch c {
		case '*', '+', '}':
			prevQuant = true
		case '?':
			prevQuant = !prevQuant // after a quantifier it is the lazy modifier
		default:
			prevQuant = false
		}
	}
	return b.String(), nil
}
