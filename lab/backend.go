package lab

import (
	"fmt"
	"sync"

	"github.com/onsi/ginkgo/v2"

	"github.com/siprtc/siprtc/lab/pbx"
)

// Backends returns the PBX backends the suites run against: $LAB_PBX (pbx.EnvPBX: embedded,
// asterisk, freeswitch, a comma-separated list, or all; unset means all). Suites call it while
// Ginkgo builds their tree, to make one set of specs per backend; a container backend's specs
// then call UseBackend, which skips them, saying why, where the backend is unavailable. An
// invalid LAB_PBX panics (Ginkgo reports it as the suite's failure).
func Backends() []pbx.Backend {
	bs, err := pbx.Selected()
	if err != nil {
		panic(err)
	}
	return bs
}

// Selected tells whether $LAB_PBX selects backend b.
func Selected(b pbx.Backend) bool {
	for _, s := range Backends() {
		if s == b {
			return true
		}
	}
	return false
}

// availability is pbx.Check's answer for a backend.
type availability struct {
	message  string // "" when available
	required bool
}

var (
	checkMu sync.Mutex
	checked = map[pbx.Backend]availability{}
)

// UseBackend is for Ginkgo specs, as pbx.RequireBackend is for tests: it returns when backend b
// can run here (the embedded one always can); otherwise it skips the spec with the reason and
// the command that fixes it (visible in the report), or fails it when LAB_REQUIRE names the
// backend (or "docker", when Docker is what is missing). Availability is checked once per
// process and backend.
func UseBackend(b pbx.Backend) {
	if b == "" || b == pbx.BackendEmbedded {
		return
	}
	checkMu.Lock()
	a, ok := checked[b]
	if !ok {
		a.message, a.required = pbx.Check(b)
		checked[b] = a
	}
	checkMu.Unlock()
	switch {
	case a.message == "":
	case a.required:
		ginkgo.Fail(a.message, 1)
	default:
		ginkgo.Skip(a.message, 1)
	}
}

// PBXLogsEntry names the report entries that carry a container PBX's output.
const PBXLogsEntry = "pbx logs"

// KeepPBXLogs returns what a world calls with its container PBX's output when it closes
// (scenario.Config.PBXLogs), for the running spec (or, called in a BeforeAll, the ordered
// container's specs): when the spec has failed by its end, every output kept is attached to
// its report as a "pbx logs" entry (printed with the failure, and in the JSON report), so a
// failing CI run shows what the PBX did. A passing spec's outputs are dropped.
func KeepPBXLogs() func(b pbx.Backend, logs string) {
	var (
		mu   sync.Mutex
		kept []string
	)
	ginkgo.DeferCleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if !ginkgo.CurrentSpecReport().Failed() {
			return
		}
		for _, l := range kept {
			ginkgo.AddReportEntry(PBXLogsEntry, l, ginkgo.ReportEntryVisibilityFailureOrVerbose)
		}
	})
	return func(b pbx.Backend, logs string) {
		mu.Lock()
		defer mu.Unlock()
		if logs == "" {
			logs = "(the container printed nothing)"
		}
		kept = append(kept, fmt.Sprintf("%s PBX (%s):\n%s", b, pbx.Image(b), logs))
	}
}

// BackendParams are the params every measurement records about its PBX: the image a container
// backend ran ("image"); the embedded PBX runs in the test process ("in-process"). Record sets
// Measurement.Backend from the caller's field.
func BackendParams(b pbx.Backend, params map[string]string) map[string]string {
	if params == nil {
		params = map[string]string{}
	}
	if img := pbx.Image(b); img != "" {
		params["image"] = img
	} else {
		params["image"] = "in-process"
	}
	return params
}
