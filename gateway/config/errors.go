package config

import (
	"errors"
	"strconv"
	"strings"
)

// Kinds of configuration errors. Every *Error unwraps to one of them: test with errors.Is.
var (
	// ErrSyntax: a line that is neither a comment, a [section] nor key=value.
	ErrSyntax = errors.New("syntax error")
	// ErrInvalid: a value of the wrong form or out of range.
	ErrInvalid = errors.New("invalid value")
	// ErrMissing: a required key is absent or empty.
	ErrMissing = errors.New("missing key")
	// ErrConflict: values that are valid alone but not together.
	ErrConflict = errors.New("conflicting settings")
	// ErrUnknownKey: a key siprtc does not know in one of siprtc's own sections (in SRProxy's
	// sections an unknown key is only a warning).
	ErrUnknownKey = errors.New("unknown key")
	// ErrAccRule: a malformed acc_rule; the error is an *AccRuleError naming the token.
	ErrAccRule = errors.New("malformed acc_rule")
)

// maxShownValue bounds how much of a value an error message quotes.
const maxShownValue = 120

// Error is one configuration error. Its message reads
//
//	rtx.conf:12: [global] sip_svr "10.0.0.1:abc": want IP:port
//
// Line is 0 when the problem is an absent key; Value is empty (and not shown) for absent
// keys and for secrets, whose values never appear in messages.
type Error struct {
	File    string
	Line    int
	Section string
	Key     string
	Value   string
	// ShowValue reports whether Value is part of the message.
	ShowValue bool
	// Msg says what is expected, usually "want ...".
	Msg string
	// Err is one of the Err* kinds, or an *AccRuleError (which unwraps to ErrAccRule).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if where := location(e.Section, e.Key); where != "" {
		b.WriteString(where)
		if e.ShowValue {
			b.WriteByte(' ')
			b.WriteString(quoteValue(e.Value))
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the error's kind.
func (e *Error) Unwrap() error { return e.Err }

// Warning is something Parse accepted but the operator should know: an unknown section or
// key, text ignored after a value, a generated secret, a setting that has no effect.
type Warning struct {
	File    string
	Line    int // 0 when the warning concerns the file as a whole or an absent key
	Section string
	Key     string
	Msg     string
}

// String formats the warning like an Error: "rtx.conf:7: [proxy] account: unknown key ...".
func (w Warning) String() string {
	var b strings.Builder
	b.WriteString(w.File)
	if w.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(w.Line))
	}
	b.WriteString(": ")
	if where := location(w.Section, w.Key); where != "" {
		b.WriteString(where)
		b.WriteString(": ")
	}
	b.WriteString(w.Msg)
	return b.String()
}

// AccRuleError is a malformed acc_rule token: Pos is its 1-based position among the
// ';'-separated tokens (0 when the rule as a whole is wrong, e.g. empty).
type AccRuleError struct {
	Token string
	Pos   int
	Msg   string
}

func (e *AccRuleError) Error() string {
	if e.Pos == 0 {
		return "acc_rule: " + e.Msg
	}
	return "acc_rule token " + strconv.Itoa(e.Pos) + " " + quoteValue(e.Token) + ": " + e.Msg
}

// Unwrap returns ErrAccRule.
func (e *AccRuleError) Unwrap() error { return ErrAccRule }

func location(section, key string) string {
	switch {
	case section == "" && key == "":
		return ""
	case section == "":
		return key
	case key == "":
		return "[" + section + "]"
	}
	return "[" + section + "] " + key
}

// quoteValue quotes a value for a message, escaping control characters and shortening
// very long values.
func quoteValue(v string) string {
	if len(v) > maxShownValue {
		return strconv.Quote(v[:maxShownValue]) + "..."
	}
	return strconv.Quote(v)
}
