// Package version holds the build's version and commit, set with -ldflags by the Makefile.
package version

import "runtime/debug"

// Version is the release this binary was built from ("dev" for local builds).
var Version = "dev"

// Commit is the git commit of the build, when known.
var Commit = ""

// String returns "VERSION (COMMIT)" with the commit taken from the build info when not set.
func String() string {
	c := Commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		return Version
	}
	if len(c) > 12 {
		c = c[:12]
	}
	return Version + " (" + c + ")"
}
