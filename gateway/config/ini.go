package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLineLen bounds one line of the file. SRProxy reads 4095 bytes per fgets and treats the
// rest as a new line; a longer line here is an error rather than two half lines.
const maxLineLen = 64 << 10

// entry is one key=value of the file.
type entry struct {
	value string
	line  int
	// ignored is the text after the value that SRProxy drops ("" or a # comment excluded).
	ignored string
}

type section struct {
	name    string
	line    int // first header line
	entries map[string]*entry
	keys    []string // in order of first appearance
}

// document is the file as SRProxy's ConfigSet would hold it: sections of key/value pairs,
// the last value of a repeated key winning.
type document struct {
	sections map[string]*section
	order    []string
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func skipBlanks(s string) string {
	i := 0
	for i < len(s) && isBlank(s[i]) {
		i++
	}
	return s[i:]
}

// readINI splits the file into sections and keys, reporting malformed lines to d and
// going on, so that all errors of the file surface at once. It fails only when r does.
func readINI(r io.Reader, d *decoder) (*document, error) {
	doc := &document{sections: map[string]*section{}}
	var cur *section
	orphanWarned := false

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		// SRProxy stops a line at CR (files edited on Windows, where it also runs).
		if i := strings.IndexByte(line, '\r'); i >= 0 {
			line = line[:i]
		}
		p := skipBlanks(line)
		if p == "" || p[0] == '#' {
			continue
		}
		if i := strings.IndexFunc(p, func(c rune) bool { return c < 0x20 && c != '\t' || c == 0x7f }); i >= 0 {
			d.errorAt(lineNo, sectionName(cur), "", ErrSyntax,
				fmt.Sprintf("want printable text, found control character %q at column %d", p[i], len(line)-len(p)+i+1))
			continue
		}

		if p[0] == '[' {
			name, ok := d.sectionHeader(lineNo, p)
			if !ok {
				continue
			}
			s := doc.sections[name]
			if s == nil {
				s = &section{name: name, line: lineNo, entries: map[string]*entry{}}
				doc.sections[name] = s
				doc.order = append(doc.order, name)
			}
			cur = s
			continue
		}

		key, e, ok := d.keyValue(lineNo, sectionName(cur), p)
		if !ok {
			continue
		}
		if cur == nil {
			// SRProxy files such keys under a "default" section nobody reads.
			if !orphanWarned {
				d.warnAt(lineNo, "", key, "key before the first [section], ignored (SRProxy files it under [default], which it never reads)")
				orphanWarned = true
			}
			continue
		}
		if prev := cur.entries[key]; prev != nil {
			d.warnAt(lineNo, cur.name, key, fmt.Sprintf("repeated: this value overrides line %d (the last one wins, as in SRProxy)", prev.line))
		} else {
			cur.keys = append(cur.keys, key)
		}
		cur.entries[key] = e
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			d.errorAt(lineNo+1, sectionName(cur), "", ErrSyntax, fmt.Sprintf("want lines shorter than %d KiB; reading stopped here", maxLineLen>>10))
			return doc, nil
		}
		return nil, err
	}
	return doc, nil
}

func sectionName(s *section) string {
	if s == nil {
		return ""
	}
	return s.name
}

// sectionHeader parses "[ name ]" as SRProxy does: one word between the brackets, blanks
// allowed around it, anything after ']' ignored.
func (d *decoder) sectionHeader(lineNo int, p string) (string, bool) {
	rest := skipBlanks(p[1:])
	end := strings.IndexAny(rest, "] \t")
	if end < 0 {
		d.errorAt(lineNo, "", "", ErrSyntax, fmt.Sprintf("section %s: want ']' to close the section name", quoteValue(p)))
		return "", false
	}
	name := rest[:end]
	after := rest[end:]
	if after[0] != ']' {
		after = skipBlanks(after)
		if after == "" || after[0] != ']' {
			d.errorAt(lineNo, "", "", ErrSyntax, fmt.Sprintf("section %s: want one word between '[' and ']'", quoteValue(p)))
			return "", false
		}
	}
	if name == "" {
		d.errorAt(lineNo, "", "", ErrSyntax, "section \"[]\": want a section name between '[' and ']'")
		return "", false
	}
	if trailing := skipBlanks(after[1:]); trailing != "" && trailing[0] != '#' {
		d.warnAt(lineNo, name, "", fmt.Sprintf("text after ']' ignored: %s", quoteValue(trailing)))
	}
	return name, true
}

// keyValue parses "key = value rest" as SRProxy does: the key ends at '=' or a blank, the
// value at the first blank unless it is quoted. Messages name the key but never repeat the
// value: the line may hold a password.
func (d *decoder) keyValue(lineNo int, sect, p string) (string, *entry, bool) {
	end := strings.IndexAny(p, "= \t")
	if end < 0 {
		d.errorAt(lineNo, sect, p, ErrSyntax, "want key=value, found no '='")
		return "", nil, false
	}
	key := p[:end]
	rest := p[end:]
	if rest[0] != '=' {
		rest = skipBlanks(rest)
		if rest == "" || rest[0] != '=' {
			d.errorAt(lineNo, sect, key, ErrSyntax, "want '=' after the key (a key has no blanks)")
			return "", nil, false
		}
	}
	if key == "" {
		d.errorAt(lineNo, sect, "", ErrSyntax, "want a key before '='")
		return "", nil, false
	}
	rest = skipBlanks(rest[1:])

	var value string
	if rest != "" && rest[0] == '"' {
		closeAt := strings.IndexByte(rest[1:], '"')
		if closeAt < 0 {
			d.errorAt(lineNo, sect, key, ErrSyntax, "want a closing '\"' on the same line")
			return "", nil, false
		}
		value = rest[1 : 1+closeAt]
		rest = rest[2+closeAt:]
	} else {
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		value = rest[:end]
		rest = rest[end:]
	}
	ignored := skipBlanks(rest)
	if ignored != "" && ignored[0] == '#' {
		ignored = ""
	}
	return key, &entry{value: value, line: lineNo, ignored: ignored}, true
}
