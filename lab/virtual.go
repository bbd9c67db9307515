// Package lab is the suites' framework: the helpers that set up and tear down what specs
// measure, so specs stay short and read like the scenario. Its subpackages are the lab itself:
// netem (the emulated network), pbx (PBX backends) and peers (lab clients).
package lab

import (
	"fmt"
	"runtime/debug"
	"testing"
	"testing/synctest"
)

// Virtual runs measure in virtual time, inside a testing/synctest bubble, and returns what it
// returned: minutes of emulated network time cost milliseconds of wall time.
//
// t is the *testing.T of the test that runs the suite (Ginkgo specs have none of their own:
// keep the one TestXxx received in a package variable). Measure inside, assert outside: measure
// must not call Gomega or fail t, since a failure inside the bubble makes synctest.Test call
// t.FailNow on the spec's goroutine; return an error instead. A panic in measure comes back
// as an error.
//
// Every goroutine measure starts must end before it returns (close the network, then wait for
// the readers), or synctest panics with "blocked goroutines remain".
func Virtual[T any](t *testing.T, measure func() (T, error)) (T, error) {
	var (
		res T
		err error
	)
	synctest.Test(t, func(*testing.T) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("lab: panic in virtual time: %v\n%s", r, debug.Stack())
			}
		}()
		res, err = measure()
	})
	return res, err
}
