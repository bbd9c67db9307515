package fsconf

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// node is one element of the preprocessed document. Every element keeps the file (relative to
// the conf dir) and the line where it starts.
type node struct {
	name     string
	attrs    []attr
	children []*node
	text     string
	pos      Pos
}

type attr struct {
	name  string
	value string // after $${var} expansion
	raw   string // as written
}

func (n *node) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.name == name {
			return a.value, true
		}
	}
	return "", false
}

func (n *node) attrSoft(name string) string {
	v, _ := n.attr(name)
	return v
}

func (n *node) rawAttr(name string) string {
	for _, a := range n.attrs {
		if a.name == name {
			return a.raw
		}
	}
	return ""
}

// child is the first child element named name (switch_xml_child).
func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// all are the child elements named name, in document order.
func (n *node) all(name string) []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// maxIncludeDepth is FreeSWITCH's preprocessor recursion limit (rlevel > 100).
const maxIncludeDepth = 100

// preproc is FreeSWITCH's configuration preprocessor (switch_xml.c preprocess()) on top of an
// encoding/xml token stream; Load documents its rules.
type preproc struct {
	root      string // absolute conf dir
	vars      map[string]string
	varPos    map[string]Pos
	fixed     map[string]bool // Options.Overrides: set commands cannot change these
	findings  []Finding
	stack     []string // absolute paths of the files being read
	fileCount int
}

func newPreproc(root string, vars, overrides map[string]string) *preproc {
	p := &preproc{
		root:   root,
		vars:   map[string]string{},
		varPos: map[string]Pos{},
		fixed:  map[string]bool{},
	}
	for k, v := range vars {
		p.vars[k] = v
		p.varPos[k] = Pos{File: "(host)"}
	}
	for k, v := range overrides {
		p.vars[k] = v
		p.varPos[k] = Pos{File: "(overrides)"}
		p.fixed[k] = true
	}
	return p
}

func (p *preproc) note(pos Pos, rule, format string, args ...any) {
	p.findings = append(p.findings, newFinding(pos, rule, format, args...))
}

// expand replaces $${name} as switch_xml.c expand_vars does: the name runs to the matching
// brace, an undefined variable expands to nothing, an unterminated one is kept literally.
func (p *preproc) expand(s string, pos Pos) string {
	if !strings.Contains(s, "$${") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			end := matchBrace(s, i+2)
			if end < 0 {
				b.WriteString(s[i:])
				break
			}
			name := s[i+3 : end]
			if v, ok := p.vars[name]; ok {
				b.WriteString(v)
			} else {
				p.note(pos, RuleUndefinedVar, "$${%s} is not defined: FreeSWITCH replaces it with nothing", name)
			}
			i = end + 1
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// matchBrace returns the index of the '}' closing the '{' at s[open], or -1.
func matchBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// set runs cmd="set": data is name=value.
func (p *preproc) set(data string, pos Pos) {
	name, value, ok := strings.Cut(data, "=")
	if !ok {
		return // FreeSWITCH ignores a set without '='
	}
	name = strings.TrimRight(strings.TrimLeft(name, " "), " ")
	value = strings.TrimLeft(value, " ")
	if p.fixed[name] {
		return
	}
	p.vars[name] = value
	p.varPos[name] = pos
}

func (p *preproc) rel(abs string) string {
	r, err := filepath.Rel(p.root, abs)
	if err != nil {
		return filepath.ToSlash(abs)
	}
	return filepath.ToSlash(r)
}

// include runs cmd="include" for a file in dir, appending the included elements to parent.
func (p *preproc) include(pattern, dir string, pos Pos, parent *node) error {
	if pattern == "" {
		return errAt(pos, ErrInclude, "include with empty data")
	}
	full := pattern
	if !filepath.IsAbs(pattern) {
		full = filepath.Join(dir, pattern)
	}
	if !strings.ContainsAny(pattern, "*?[") {
		st, err := os.Stat(full)
		if err != nil {
			return errAt(pos, ErrInclude, "include %q: file %s does not exist", pattern, p.rel(full))
		}
		if st.IsDir() {
			return errAt(pos, ErrInclude, "include %q: %s is a directory", pattern, p.rel(full))
		}
		return p.parseFile(full, pos, parent)
	}
	matches, err := filepath.Glob(full)
	if err != nil {
		return errAt(pos, ErrInclude, "include %q: bad pattern: %v", pattern, err)
	}
	for _, m := range matches { // sorted, as glob(3)
		if st, err := os.Stat(m); err != nil || st.IsDir() {
			continue
		}
		if err := p.parseFile(m, pos, parent); err != nil {
			return err
		}
	}
	return nil
}

// command runs one preprocessor command found at pos in the file whose directory is dir.
func (p *preproc) command(cmd, data, dir string, pos Pos, parent *node) error {
	switch strings.ToLower(cmd) {
	case "set":
		p.set(data, pos)
		return nil
	case "include":
		return p.include(data, dir, pos, parent)
	case "exec", "exec-set", "env-set", "stun-set":
		return errAt(pos, ErrPreprocess, "preprocessor command %q (data %q) is not supported by the embedded PBX: it runs no shell and no STUN lookup; use cmd=\"set\" with a literal value", cmd, data)
	default:
		return errAt(pos, ErrPreprocess, "unknown preprocessor command %q: the embedded PBX cannot run it (FreeSWITCH would ignore it silently)", cmd)
	}
}

// parseFile reads one file and appends its elements to parent. from is the position of the
// include that pulled it in (zero for freeswitch.xml).
func (p *preproc) parseFile(abs string, from Pos, parent *node) error {
	for _, f := range p.stack {
		if f == abs {
			return errAt(from, ErrInclude, "include loop: %s includes itself", p.rel(abs))
		}
	}
	if len(p.stack) > maxIncludeDepth {
		return errAt(from, ErrInclude, "includes nest deeper than %d levels", maxIncludeDepth)
	}
	f, err := os.Open(abs)
	if err != nil {
		return errAt(from, ErrInclude, "open %s: %v", p.rel(abs), err)
	}
	defer f.Close()
	p.stack = append(p.stack, abs)
	defer func() { p.stack = p.stack[:len(p.stack)-1] }()
	p.fileCount++

	rel := p.rel(abs)
	dir := filepath.Dir(abs)
	dec := xml.NewDecoder(f)
	dec.Strict = true
	stack := []*node{parent}
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return errAt(Pos{rel, se.Line}, ErrXML, "malformed XML: %s", se.Msg)
			}
			return errAt(Pos{rel, line}, ErrXML, "malformed XML: %v", err)
		}
		pos := Pos{rel, line}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			switch {
			case strings.EqualFold(name, "X-PRE-PROCESS"):
				var cmd, data string
				for _, a := range t.Attr {
					switch strings.ToLower(a.Name.Local) {
					case "cmd":
						cmd = p.expand(a.Value, pos)
					case "data":
						data = p.expand(a.Value, pos)
					}
				}
				if err := dec.Skip(); err != nil {
					return errAt(pos, ErrXML, "malformed XML: %v", err)
				}
				if err := p.command(cmd, data, dir, pos, top); err != nil {
					return err
				}
			case strings.Contains(strings.ToLower(name), "x-pre-process"):
				// FreeSWITCH drops any line naming the tag without a '<' right before it
				// (XX-PRE-PROCESS is the usual way to disable one).
				if err := dec.Skip(); err != nil {
					return errAt(pos, ErrXML, "malformed XML: %v", err)
				}
			case name == "include":
				stack = append(stack, top) // transparent
			default:
				n := &node{name: name, pos: pos}
				for _, a := range t.Attr {
					an := a.Name.Local
					if a.Name.Space != "" {
						an = a.Name.Space + ":" + an
					}
					n.attrs = append(n.attrs, attr{name: an, value: p.expand(a.Value, pos), raw: a.Value})
				}
				top.children = append(top.children, n)
				stack = append(stack, n)
			}
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 1 {
				top.text += p.expand(string(t), pos)
			}
		case xml.Comment:
			if err := p.comment(string(t), dir, pos, top); err != nil {
				return err
			}
		}
	}
	return nil
}

// comment handles <!--#cmd arg--> directives and X-PRE-PROCESS lines inside comments.
func (p *preproc) comment(text, dir string, pos Pos, parent *node) error {
	if rest, ok := strings.CutPrefix(text, "#"); ok {
		rest = p.expand(rest, pos)
		if i := strings.IndexAny(rest, "\r\n"); i >= 0 {
			rest = rest[:i]
		}
		cmd, arg, ok := strings.Cut(rest, " ")
		if !ok {
			return nil
		}
		if q := strings.IndexByte(arg, '"'); q >= 0 {
			if qq := strings.IndexByte(arg[q+1:], '"'); qq >= 0 {
				arg = arg[q+1 : q+1+qq]
			}
		}
		switch strings.ToLower(cmd) {
		case "set", "include", "exec", "exec-set", "stun-set", "env-set":
			return p.command(cmd, arg, dir, pos, parent)
		}
		return nil // #comment and the like
	}
	lower := strings.ToLower(text)
	if !strings.Contains(lower, "x-pre-process") {
		return nil
	}
	for i, ln := range strings.Split(text, "\n") {
		idx := strings.Index(strings.ToLower(ln), "x-pre-process")
		if idx < 0 {
			continue
		}
		lpos := Pos{pos.File, pos.Line + i}
		if idx == 0 || ln[idx-1] != '<' {
			p.note(lpos, RuleCommentedPreprocess, "FreeSWITCH preprocesses line by line and drops this comment line because it names the preprocessor tag; reword the comment")
			continue
		}
		cmd, data := looseDirective(p.expand(ln[idx:], lpos))
		if strings.EqualFold(cmd, "set") {
			p.set(data, lpos)
			p.note(lpos, RuleCommentedPreprocess, "this commented-out set of %q still runs: FreeSWITCH preprocesses line by line, ignoring XML comments; delete the line instead", data)
			continue
		}
		return errAt(lpos, ErrPreprocess, "preprocessor command %q inside an XML comment: FreeSWITCH still runs it (it preprocesses line by line); delete the line", cmd)
	}
	return nil
}

// looseDirective extracts cmd="..." and data="..." from a line as switch_xml.c does.
func looseDirective(s string) (cmd, data string) {
	lower := strings.ToLower(s)
	quoted := func(from int) (string, int) {
		eq := strings.IndexByte(s[from:], '=')
		if eq < 0 {
			return "", -1
		}
		q := strings.IndexByte(s[from+eq:], '"')
		if q < 0 {
			return "", -1
		}
		start := from + eq + q + 1
		end := strings.IndexByte(s[start:], '"')
		if end < 0 {
			return s[start:], len(s)
		}
		return s[start : start+end], start + end + 1
	}
	i := strings.Index(lower, "cmd")
	if i < 0 {
		return "", ""
	}
	cmd, next := quoted(i)
	if next < 0 {
		return "", ""
	}
	j := strings.Index(lower[next:], "data")
	if j < 0 {
		return cmd, ""
	}
	data, _ = quoted(next + j)
	return cmd, data
}
