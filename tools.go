//go:build tools

// Package tools pins the command-line tools the Makefile runs (go run
// github.com/onsi/ginkgo/v2/ginkgo), so every machine uses the version in go.mod.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
)
