package reports

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the readable summary: the verdict, each suite, every measured value next
// to its bound (a value past its bound is marked), then the failures with their messages.
func (r *Run) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	verdict := "PASSED"
	if !r.Passed() {
		verdict = "FAILED"
	}
	var specs, failed, skipped int
	for _, s := range r.Suites {
		specs, failed, skipped = specs+s.Specs, failed+s.Failed, skipped+s.Skipped
	}
	ew.printf("siprtc lab run: %s\n", verdict)
	ew.printf("%s, %s %s, started %s, %s wall, backends: %s\n", r.Env.Version, r.Env.GoVersion, r.Env.Platform,
		r.Env.Started.UTC().Format(time.RFC3339), seconds(r.Env.WallSeconds), strings.Join(r.Env.Backends, ", "))
	ew.printf("%d suites, %d specs: %d passed, %d failed, %d skipped; %d measurements\n\n",
		len(r.Suites), specs, specs-failed-skipped, failed, skipped, len(r.Measurements))

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tSPECS\tFAILED\tSKIPPED\tWALL\t")
	for _, s := range r.Suites {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t\n", s.Name, s.Specs, s.Failed, s.Skipped, seconds(s.WallSeconds))
	}
	_ = tw.Flush()

	bySuite := map[string][]Measurement{}
	for _, m := range r.Measurements {
		bySuite[m.Suite] = append(bySuite[m.Suite], m)
	}
	for _, suite := range slices.Sorted(maps.Keys(bySuite)) {
		ew.printf("\n== %s ==\n", suite)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CASE\tBACKEND\tVALUE\tMEASURED\tBOUND\t")
		for _, m := range bySuite[suite] {
			name := m.Case
			for _, k := range slices.Sorted(maps.Keys(m.Values)) {
				v := m.Values[k]
				bound, mark := "", ""
				if b, ok := m.Bounds[k]; ok {
					bound = formatValue(b)
					if Exceeds(k, v, b) {
						mark = "  << past its bound"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Backend, k, formatValue(v), bound, mark)
				name = ""
			}
		}
		_ = tw.Flush()
	}

	first := true
	for _, s := range r.Specs {
		if s.State == "passed" || s.State == "skipped" || s.State == "pending" {
			continue
		}
		if first {
			ew.printf("\n== failures ==\n")
			first = false
		}
		ew.printf("%s: %s [%s]\n  %s\n", s.Suite, s.Name, s.State, strings.ReplaceAll(strings.TrimSpace(s.Failure), "\n", "\n  "))
		if s.Location != "" {
			ew.printf("  at %s\n", s.Location)
		}
	}
	return ew.err
}

// Exceeds says whether v is past bound: above it, or below it for a name ending in "_min".
func Exceeds(name string, v, bound float64) bool {
	if strings.HasSuffix(name, "_min") {
		return v < bound
	}
	return v > bound
}

// WriteTextFile writes the summary to path.
func (r *Run) WriteTextFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteText(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func formatValue(v float64) string { return fmt.Sprintf("%.4g", v) }

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
