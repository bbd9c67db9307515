package astconf

import (
	"fmt"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
)

// maxPatterns bounds the expansion of alternations and optional parts of one expression.
const maxPatterns = 64

// Pattern is one Asterisk extension pattern that matches exactly what a FreeSWITCH
// destination_number regular expression matches (for the subset it can express), with the
// Asterisk expression that yields each capture group ($1 -> Captures[1]).
type Pattern struct {
	Exten    string         // "9196", "_1XXX", "_0!"
	Captures map[int]string // group number -> "${EXTEN:1}", "${EXTEN}", "${EXTEN:0:2}"
	Regex    string         // the expression it comes from
	groups   map[int][2]int // group -> [start offset, length or -1 for the rest]
	elems    []patElem
}

// patElem is one position of a pattern: a set of characters, or the variable-length rest.
type patElem struct {
	chars []rune // sorted, the characters this position accepts
	rest  int    // 0: one position; 1: "." (one or more); 2: "!" (zero or more)
}

type seq struct {
	elems  []patElem
	groups map[int][2]int
	open   map[int]int // group -> start offset, while the group is open
	closed bool        // a rest element was added: nothing may follow it
}

func (s seq) clone() seq {
	c := seq{elems: append([]patElem(nil), s.elems...), groups: map[int][2]int{}, open: map[int]int{}, closed: s.closed}
	for k, v := range s.groups {
		c.groups[k] = v
	}
	for k, v := range s.open {
		c.open[k] = v
	}
	return c
}

// dialable are the characters a destination number is made of; "any character" positions
// become X-like sets over them.
var dialable = []rune("0123456789*#+")

// Patterns translates a FreeSWITCH (PCRE) destination_number expression to Asterisk extension
// patterns. It handles anchored expressions built from literals, character classes, groups,
// alternation, optional parts, counted repetition, and a trailing ".*" or ".+"; anything else is
// an error saying what is not expressible.
func Patterns(expr string) ([]Pattern, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	if len(subs) == 0 || (subs[0].Op != syntax.OpBeginText && subs[0].Op != syntax.OpBeginLine) {
		return nil, fmt.Errorf("expression %q is not anchored with ^: an Asterisk pattern matches the whole number", expr)
	}
	subs = subs[1:]
	anchoredEnd := false
	if n := len(subs); n > 0 && (subs[n-1].Op == syntax.OpEndText || subs[n-1].Op == syntax.OpEndLine) {
		anchoredEnd = true
		subs = subs[:n-1]
	}
	seqs := []seq{{groups: map[int][2]int{}, open: map[int]int{}}}
	for _, sub := range subs {
		seqs, err = expand(seqs, sub)
		if err != nil {
			return nil, fmt.Errorf("expression %q: %w", expr, err)
		}
	}
	if !anchoredEnd {
		// Without $ the expression matches any number that starts so: add "!" (zero or more).
		for i := range seqs {
			if !seqs[i].closed {
				seqs[i].elems = append(seqs[i].elems, patElem{rest: 2})
				seqs[i].closed = true
			}
		}
	}
	out := make([]Pattern, 0, len(seqs))
	seen := map[string]bool{}
	for _, s := range seqs {
		p := render(s, expr)
		if p.Exten == "" {
			return nil, fmt.Errorf("expression %q matches the empty number", expr)
		}
		if seen[p.Exten] {
			continue
		}
		seen[p.Exten] = true
		out = append(out, p)
	}
	return out, nil
}

func expand(in []seq, re *syntax.Regexp) ([]seq, error) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return in, nil
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			var err error
			for _, r := range re.Rune {
				set := []rune{r}
				if u, l := unicode.ToUpper(r), unicode.ToLower(r); u != l {
					set = []rune{u, l}
				}
				in, err = appendElem(in, patElem{chars: set})
				if err != nil {
					return nil, err
				}
			}
			return in, nil
		}
		var err error
		for _, r := range re.Rune {
			in, err = appendElem(in, patElem{chars: []rune{r}})
			if err != nil {
				return nil, err
			}
		}
		return in, nil
	case syntax.OpCharClass:
		var set []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo > 255 {
				// A negated class ([^...]) or a huge range: keep the dialable characters in it.
				for _, r := range dialable {
					if r >= lo && r <= hi {
						set = append(set, r)
					}
				}
				continue
			}
			for r := lo; r <= hi; r++ {
				set = append(set, r)
			}
		}
		if len(set) == 0 {
			return nil, fmt.Errorf("character class %s matches no dialable character", re)
		}
		return appendElem(in, patElem{chars: set})
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return appendElem(in, patElem{chars: dialable})
	case syntax.OpCapture:
		for i := range in {
			in[i].open[re.Cap] = len(in[i].elems)
		}
		out, err := expand(in, re.Sub[0])
		if err != nil {
			return nil, err
		}
		for i := range out {
			start := out[i].open[re.Cap]
			delete(out[i].open, re.Cap)
			length := len(out[i].elems) - start
			if out[i].closed {
				length = -1
			}
			out[i].groups[re.Cap] = [2]int{start, length}
		}
		return out, nil
	case syntax.OpConcat:
		var err error
		for _, sub := range re.Sub {
			in, err = expand(in, sub)
			if err != nil {
				return nil, err
			}
		}
		return in, nil
	case syntax.OpAlternate:
		var out []seq
		for _, sub := range re.Sub {
			branch := make([]seq, len(in))
			for i, s := range in {
				branch[i] = s.clone()
			}
			b, err := expand(branch, sub)
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
			if len(out) > maxPatterns {
				return nil, fmt.Errorf("more than %d patterns", maxPatterns)
			}
		}
		return out, nil
	case syntax.OpQuest:
		with := make([]seq, len(in))
		for i, s := range in {
			with[i] = s.clone()
		}
		w, err := expand(with, re.Sub[0])
		if err != nil {
			return nil, err
		}
		out := append(in, w...)
		if len(out) > maxPatterns {
			return nil, fmt.Errorf("more than %d patterns", maxPatterns)
		}
		return out, nil
	case syntax.OpRepeat:
		if re.Max == -1 {
			if re.Min <= 1 && isAny(re.Sub[0]) {
				return appendRest(in, re.Min)
			}
			return nil, fmt.Errorf("%s: open repetition is only expressible as a trailing .* or .+", re)
		}
		var out []seq
		for n := re.Min; n <= re.Max; n++ {
			branch := make([]seq, len(in))
			for i, s := range in {
				branch[i] = s.clone()
			}
			var err error
			for range n {
				branch, err = expand(branch, re.Sub[0])
				if err != nil {
					return nil, err
				}
			}
			out = append(out, branch...)
			if len(out) > maxPatterns {
				return nil, fmt.Errorf("more than %d patterns", maxPatterns)
			}
		}
		return out, nil
	case syntax.OpStar, syntax.OpPlus:
		if isAny(re.Sub[0]) {
			min := 0
			if re.Op == syntax.OpPlus {
				min = 1
			}
			return appendRest(in, min)
		}
		return nil, fmt.Errorf("%s: open repetition is only expressible as a trailing .* or .+", re)
	default:
		return nil, fmt.Errorf("%s is not expressible as an Asterisk pattern", re)
	}
}

// isAny: the repeated part accepts any dialable character (., \d is not enough: "!" and "."
// accept everything).
func isAny(re *syntax.Regexp) bool {
	return re.Op == syntax.OpAnyChar || re.Op == syntax.OpAnyCharNotNL
}

func appendElem(in []seq, e patElem) ([]seq, error) {
	for i := range in {
		if in[i].closed {
			return nil, fmt.Errorf("nothing may follow a .* or .+ in an Asterisk pattern")
		}
		in[i].elems = append(in[i].elems, e)
	}
	return in, nil
}

func appendRest(in []seq, min int) ([]seq, error) {
	for i := range in {
		if in[i].closed {
			return nil, fmt.Errorf("nothing may follow a .* or .+ in an Asterisk pattern")
		}
		kind := 2
		if min == 1 {
			kind = 1
		}
		in[i].elems = append(in[i].elems, patElem{rest: kind})
		in[i].closed = true
	}
	return in, nil
}

func render(s seq, expr string) Pattern {
	var b strings.Builder
	special := false
	for _, e := range s.elems {
		switch {
		case e.rest == 1:
			b.WriteByte('.')
			special = true
		case e.rest == 2:
			b.WriteByte('!')
			special = true
		case len(e.chars) == 1:
			r := e.chars[0]
			if strings.ContainsRune("XZNxzn.![]-_", r) {
				fmt.Fprintf(&b, "[%c]", r)
				special = true
			} else {
				b.WriteRune(r)
			}
		default:
			b.WriteString(classString(e.chars))
			special = true
		}
	}
	exten := b.String()
	if special {
		exten = "_" + exten
	}
	p := Pattern{Exten: exten, Regex: expr, Captures: map[int]string{}, groups: s.groups, elems: s.elems}
	fixed := 0
	for _, e := range s.elems {
		if e.rest == 0 {
			fixed++
		}
	}
	for g, span := range s.groups {
		switch {
		case span[0] == 0 && (span[1] == -1 || span[1] == fixed && !s.closed):
			p.Captures[g] = "${EXTEN}"
		case span[1] == -1:
			p.Captures[g] = "${EXTEN:" + strconv.Itoa(span[0]) + "}"
		default:
			p.Captures[g] = "${EXTEN:" + strconv.Itoa(span[0]) + ":" + strconv.Itoa(span[1]) + "}"
		}
	}
	return p
}

// classString writes a character set as Asterisk writes it: X (0-9), Z (1-9), N (2-9), or a
// bracket class with ranges.
func classString(set []rune) string {
	m := map[rune]bool{}
	for _, r := range set {
		m[r] = true
	}
	digits := func(lo rune) bool {
		if len(m) != int('9'-lo+1) {
			return false
		}
		for r := lo; r <= '9'; r++ {
			if !m[r] {
				return false
			}
		}
		return true
	}
	switch {
	case digits('0'):
		return "X"
	case digits('1'):
		return "Z"
	case digits('2'):
		return "N"
	}
	rs := make([]rune, 0, len(m))
	for r := range m {
		rs = append(rs, r)
	}
	sortRunes(rs)
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1] == rs[j]+1 {
			j++
		}
		if j-i >= 2 {
			fmt.Fprintf(&b, "%c-%c", rs[i], rs[j])
		} else {
			for k := i; k <= j; k++ {
				b.WriteRune(rs[k])
			}
		}
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}

func sortRunes(rs []rune) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j] < rs[j-1]; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// Match tells whether number matches the pattern, as Asterisk matches a complete number (used by
// the tests to check a translation against the regular expression).
func (p Pattern) Match(number string) bool {
	rs := []rune(number)
	i := 0
	for _, e := range p.elems {
		switch e.rest {
		case 1:
			return len(rs)-i >= 1
		case 2:
			return true
		}
		if i >= len(rs) {
			return false
		}
		ok := false
		for _, c := range e.chars {
			if c == rs[i] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
		i++
	}
	return i == len(rs)
}
