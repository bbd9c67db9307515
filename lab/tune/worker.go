package tune

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The worker protocol. Virtual time (testing/synctest) needs a *testing.T, and only
// testing.Main makes one outside `go test`; testing.Main exits the process when the tests are
// over. So the command re-executes its own binary with WorkerEnv set to a directory holding
// JobFile; the child calls [Worker], which runs the job through testing.Main (one test,
// "sweep", one parallel subtest per run, -test.parallel bounding them), appends each result to
// ResultsFile as a JSON line, writes a ProgressPrefix line to stderr after each, and exits.
// The parent ([Spawn]) reads the progress, captures everything else the child prints
// (testing's PASS/FAIL, panics) to show on failure only, and reads the results.
const (
	// WorkerEnv is the environment variable that makes the command a worker: the job's
	// directory.
	WorkerEnv = "SIPRTC_TUNE_WORKER"
	// JobFile holds a WorkerJob (JSON), ResultsFile the RunResults (JSON lines).
	JobFile     = "job.json"
	ResultsFile = "results.jsonl"
	// ProgressPrefix starts the worker's progress lines: "siprtc-tune-progress <run id>".
	ProgressPrefix = "siprtc-tune-progress "
)

// WorkerJob is what a worker runs: the job and how many runs at once.
type WorkerJob struct {
	Job      Job `json:"job"`
	Parallel int `json:"parallel"`
}

// IsWorker says whether this process was started as a worker (WorkerEnv is set).
func IsWorker() bool { return os.Getenv(WorkerEnv) != "" }

// Worker runs the job in WorkerEnv's directory and exits the process (testing.Main does):
// status 0 when every run ended (a run's own error is in its result), non-zero when the job
// could not be read or the tests failed.
func Worker() {
	dir := os.Getenv(WorkerEnv)
	var wj WorkerJob
	b, err := os.ReadFile(filepath.Join(dir, JobFile))
	if err == nil {
		err = json.Unmarshal(b, &wj)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tune worker: job: %v\n", err)
		os.Exit(3)
	}
	out, err := os.OpenFile(filepath.Join(dir, ResultsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tune worker: %v\n", err)
		os.Exit(3)
	}
	enc := json.NewEncoder(out)
	emit := func(r RunResult) {
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(os.Stderr, "tune worker: result %d: %v\n", r.Spec.ID, err)
		}
		fmt.Fprintf(os.Stderr, "%s%d\n", ProgressPrefix, r.Spec.ID)
	}
	os.Args = []string{os.Args[0], "-test.run=^sweep$", "-test.parallel=" + strconv.Itoa(max(wj.Parallel, 1))}
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) },
		[]testing.InternalTest{{Name: "sweep", F: func(t *testing.T) { RunAll(t, wj.Job, emit) }}}, nil, nil)
}

// SpawnOptions configure Spawn.
type SpawnOptions struct {
	// Exe is the binary to run as the worker (os.Executable when empty); Args its arguments
	// (the worker ignores them but a test binary needs none).
	Exe  string
	Args []string
	// Parallel is how many runs at once (at least 1).
	Parallel int
	// Progress, if set, is called with the runs done so far after each one (from one
	// goroutine).
	Progress func(done, total int)
	// Dir is the directory for the job's files (a temporary directory, removed after, when
	// empty).
	Dir string
}

// WorkerError is a worker that failed: how it ended, what it printed, and the runs it left
// without a result.
type WorkerError struct {
	Err     error
	Output  []byte
	Missing []int
}

func (e *WorkerError) Error() string {
	msg := fmt.Sprintf("tune worker: %v", e.Err)
	if len(e.Missing) > 0 {
		msg += fmt.Sprintf(" (%d runs without a result)", len(e.Missing))
	}
	return msg
}

func (e *WorkerError) Unwrap() error { return e.Err }

// Tail is the last n lines of the worker's output.
func (e *WorkerError) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(string(e.Output), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Spawn runs j in a worker process and returns its results in run order. When the worker
// fails it returns the results it got and a *WorkerError.
func Spawn(ctx context.Context, j Job, opts SpawnOptions) ([]RunResult, error) {
	exe := opts.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "siprtc-tune-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	b, err := json.Marshal(WorkerJob{Job: j, Parallel: max(opts.Parallel, 1)})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, JobFile), b, 0o644); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(dir, ResultsFile))

	cmd := exec.CommandContext(ctx, exe, opts.Args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"="+dir)
	var output lockedBuffer
	cmd.Stdout = &output
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	total, done := len(j.Runs()), 0
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ProgressPrefix) {
			done++
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
			continue
		}
		output.Write([]byte(line + "\n"))
	}
	_, _ = io.Copy(&output, stderr)
	waitErr := cmd.Wait()

	results, readErr := readResults(filepath.Join(dir, ResultsFile))
	var missing []int
	have := map[int]bool{}
	for _, r := range results {
		have[r.Spec.ID] = true
	}
	for _, r := range j.Runs() {
		if !have[r.ID] {
			missing = append(missing, r.ID)
		}
	}
	switch {
	case waitErr != nil:
		return results, &WorkerError{Err: waitErr, Output: output.Bytes(), Missing: missing}
	case readErr != nil:
		return results, &WorkerError{Err: readErr, Output: output.Bytes(), Missing: missing}
	case len(missing) > 0:
		return results, &WorkerError{Err: errors.New("the worker ended without every result"), Output: output.Bytes(), Missing: missing}
	}
	return results, nil
}

// readResults reads a results file (a torn last line, from a worker that died writing it, is
// left out).
func readResults(path string) ([]RunResult, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []RunResult
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r RunResult
		if err := json.Unmarshal(line, &r); err != nil {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RunResult) int { return a.Spec.ID - b.Spec.ID })
	return out, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.b.Bytes())
}
