package browser_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"time"
)

// browserProcess is a browser started for one spec: its command, its throw-away profile and
// what it printed on stderr. Chromium (CDP) and Firefox (WebDriver BiDi) both start this way.
type browserProcess struct {
	cmd    *exec.Cmd
	dir    string
	stderr *lineBuffer
}

// startBrowser starts cmd, whose profile is dir, copies its stderr into a buffer and returns the
// first remote-control WebSocket URL urlRE finds there. On failure the process is stopped and
// dir removed.
func startBrowser(cmd *exec.Cmd, dir string, urlRE *regexp.Regexp, what string) (*browserProcess, string, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	p := &browserProcess{cmd: cmd, dir: dir, stderr: &lineBuffer{}}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if m := urlRE.FindStringSubmatch(line); m != nil && !sent {
				urlCh <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case u := <-urlCh:
		return p, u, nil
	case <-time.After(20 * time.Second):
		p.kill()
		return nil, "", fmt.Errorf("%s printed no remote-control URL in 20 s; stderr:\n%s", what, p.stderr.String())
	}
}

// kill waits up to 3 s for the browser to exit, kills it otherwise, and removes its profile.
func (p *browserProcess) kill() error {
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	return os.RemoveAll(p.dir)
}
