package fsconf

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by this package, always wrapped with the file:line (or the path) they concern.
// Test them with errors.Is.
var (
	// ErrNoConfig: the directory holds no freeswitch.xml.
	ErrNoConfig = errors.New("no freeswitch.xml")
	// ErrXML: a file is not well-formed XML.
	ErrXML = errors.New("malformed XML")
	// ErrInclude: an include names a missing file, loops, or nests too deep.
	ErrInclude = errors.New("include failed")
	// ErrPreprocess: a preprocessor command the embedded PBX cannot run (exec, exec-set,
	// env-set, stun-set, unknown commands).
	ErrPreprocess = errors.New("preprocessor command not supported by the embedded PBX")
	// ErrUnsupported: a FreeSWITCH feature the embedded PBX does not implement (time-of-day
	// conditions, inline applications other than set/unset).
	ErrUnsupported = errors.New("not supported by the embedded PBX")
	// ErrApplication: a dialplan application outside Options.Apps.
	ErrApplication = errors.New("dialplan application not implemented")
	// ErrRegex: a dialplan expression Go's regexp cannot run (PCRE lookaround,
	// backreferences, possessive quantifiers...) or that does not compile.
	ErrRegex = errors.New("unsupported regular expression")
	// ErrInvalid: a value FreeSWITCH would reject or silently drop (bad CIDR, missing name).
	ErrInvalid = errors.New("invalid configuration")
	// ErrUnknownList: ACL.Check was asked for a list that does not exist.
	ErrUnknownList = errors.New("unknown ACL list")
	// ErrUnknownContext: Dialplan.Route was asked for a context that does not exist (and no
	// "global" context exists to fall back to, as FreeSWITCH does).
	ErrUnknownContext = errors.New("unknown dialplan context")
	// ErrGenerate: GenerateDirectory was given a bad range or could not write.
	ErrGenerate = errors.New("directory generation failed")
)

// Pos is a position in the configuration: a file relative to the conf dir and a 1-based line.
type Pos struct {
	File string
	Line int
}

// String formats the position as "dialplan/default.xml:42".
func (p Pos) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Error is a configuration error at a position. It unwraps to one of the Err* values.
type Error struct {
	Pos Pos
	Err error
	Msg string
}

func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Unwrap returns the package-level error value.
func (e *Error) Unwrap() error { return e.Err }

func errAt(pos Pos, kind error, format string, args ...any) error {
	return &Error{Pos: pos, Err: kind, Msg: fmt.Sprintf(format, args...)}
}
