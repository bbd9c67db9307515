// Package tools pins, through tools.go (build tag "tools"), the command-line tools the Makefile
// runs and the modules later backends build on, so every machine uses the versions in go.mod.
package tools
