package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/siprtc/siprtc/internal/version"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc version", "siprtc version", stdout, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "siprtc %s %s/%s %s\n", version.String(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	return nil
}
