//go:build tools

// Package tools pins what the Makefile runs and what later backends build on, so every machine
// uses the versions in go.mod: the ginkgo CLI (go run github.com/onsi/ginkgo/v2/ginkgo) and
// testcontainers-go, which the container PBX backends (FreeSWITCH, Asterisk) use.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "github.com/testcontainers/testcontainers-go"
)
