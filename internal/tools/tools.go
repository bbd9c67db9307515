//go:build tools

// The ginkgo CLI runs with "go run github.com/onsi/ginkgo/v2/ginkgo"; testcontainers-go is
// used by the container PBX backends (FreeSWITCH, Asterisk).

package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "github.com/testcontainers/testcontainers-go"
)
