package netem

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

//go:generate go test -run=TestRFC8867TraceFixture -args -update

// A capacity trace is the capacity of a link over time, as a CSV file:
//
//	# RFC 8867 section 5.1: variable available capacity, single flow
//	time_seconds,capacity_bps
//	0,1000000
//	40,2500000
//
// Each row sets the capacity from its time (seconds since the network started, increasing) until
// the next row; the last row holds until the end. The header line is optional, lines starting
// with '#' and blank lines are ignored, capacities are bits per second (> 0).

// traceHeader is the one header line a capacity trace may have.
const traceHeader = "time_seconds,capacity_bps"

// TraceError is a problem at one line of a capacity trace.
type TraceError struct {
	File string
	Line int
	Msg  string
}

func (e *TraceError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// LoadCapacityTrace reads a capacity trace into schedule phases that set only Capacity.Rate:
// give them a queue (Capacity.QueueBytes or QueueDelay) before use, or the default 300 ms
// applies. A scenario's capacity_trace does that from its capacity: queue.
func LoadCapacityTrace(path string) ([]Phase, error) {
	rows, err := loadCapacityTrace(path)
	if err != nil {
		return nil, fmt.Errorf("netem: capacity trace: %w", err)
	}
	return traceRowsToPhases(rows), nil
}

// ParseCapacityTrace reads a capacity trace from r; errors name lines.
func ParseCapacityTrace(r io.Reader) ([]Phase, error) {
	rows, err := parseCapacityTrace(r, "")
	if err != nil {
		return nil, fmt.Errorf("netem: capacity trace: %w", err)
	}
	return traceRowsToPhases(rows), nil
}

func traceRowsToPhases(rows []traceRow) []Phase {
	phases := make([]Phase, len(rows))
	for i, r := range rows {
		phases[i] = Phase{At: r.at, Capacity: &CapacityModel{Rate: r.rate}}
	}
	return phases
}

// traceRow is one data row and its line, for the errors of the scenarios that use it.
type traceRow struct {
	at   time.Duration
	rate int64
	line int
}

func loadCapacityTrace(path string) ([]traceRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCapacityTrace(f, path)
}

func parseCapacityTrace(r io.Reader, file string) ([]traceRow, error) {
	var rows []traceRow
	sc := bufio.NewScanner(r)
	line, seenData := 0, false
	fail := func(format string, args ...any) error {
		return &TraceError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if !seenData {
			seenData = true
			if _, err := strconv.ParseFloat(fields[0], 64); err != nil {
				if strings.Join(fields, ",") != traceHeader {
					return nil, fail("header %q: must be %s (or no header)", text, traceHeader)
				}
				continue
			}
		}
		if len(fields) != 2 {
			return nil, fail("%q: want 2 fields (time_seconds,capacity_bps), got %d", text, len(fields))
		}
		sec, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(sec) || math.IsInf(sec, 0) {
			return nil, fail("time %q: must be a number of seconds", fields[0])
		}
		if sec < 0 {
			return nil, fail("time %s: must be >= 0", fields[0])
		}
		if sec > float64(math.MaxInt64/int64(time.Second)) {
			return nil, fail("time %s: too large", fields[0])
		}
		bps, err := strconv.ParseFloat(fields[1], 64)
		if err != nil || math.IsNaN(bps) || math.IsInf(bps, 0) {
			return nil, fail("capacity %q: must be a number of bits per second", fields[1])
		}
		if bps <= 0 {
			return nil, fail("capacity %s: must be > 0 (take a link down with an outage)", fields[1])
		}
		if bps > 1e12 {
			return nil, fail("capacity %s: must be at most 1e12 bit/s", fields[1])
		}
		at := time.Duration(math.Round(sec * float64(time.Second)))
		if n := len(rows); n > 0 && at <= rows[n-1].at {
			return nil, fail("time %s: must be after the previous row's %s (line %d)",
				fields[0], formatSeconds(rows[n-1].at), rows[n-1].line)
		}
		rows = append(rows, traceRow{at: at, rate: int64(math.Round(bps)), line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, fail("%v", err)
	}
	if len(rows) == 0 {
		return nil, &TraceError{File: file, Line: line, Msg: "no data rows"}
	}
	return rows, nil
}

var errTracePhase = errors.New("every phase of a capacity trace needs a Capacity with Rate > 0")

// WriteCapacityTrace writes phases as a capacity trace that LoadCapacityTrace reads back; each
// line of comment becomes a '#' line above the header.
func WriteCapacityTrace(w io.Writer, phases []Phase, comment string) error {
	bw := bufio.NewWriter(w)
	if comment != "" {
		for l := range strings.SplitSeq(comment, "\n") {
			fmt.Fprintf(bw, "# %s\n", l)
		}
	}
	fmt.Fprintln(bw, traceHeader)
	for i, ph := range phases {
		if ph.Capacity == nil || ph.Capacity.Rate <= 0 {
			return fmt.Errorf("netem: phase %d at %s: %w", i, ph.At, errTracePhase)
		}
		fmt.Fprintf(bw, "%s,%d\n", formatSeconds(ph.At), ph.Capacity.Rate)
	}
	return bw.Flush()
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
