package pbx

// Shared plumbing of the container backends (Asterisk, FreeSWITCH): availability checks,
// LAB_REQUIRE, free loopback ports, starting a host-networked container through
// testcontainers-go, readiness probes and log capture.
//
// The containers run with host networking (every socket of the PBX is on 127.0.0.1 of this
// machine; nothing is published or NATed), so testcontainers' port-mapping wait strategies do
// not apply: the backends probe SIP (an OPTIONS over UDP, any response counts) and the control
// socket (AMI or ESL login) themselves.
//
// Ryuk, testcontainers' reaper container, is disabled (TESTCONTAINERS_RYUK_DISABLED=true is set
// when the variable is unset): its image cannot be pulled on the lab's machines. The backends
// remove their containers in Close; a test process killed before Close leaves its container
// behind: `docker ps -a --filter label=org.siprtc.lab` lists them, `docker rm -f` removes them.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Environment variables of the container backends.
const (
	// EnvAsteriskImage names the Asterisk image (default DefaultAsteriskImage).
	EnvAsteriskImage = "LAB_ASTERISK_IMAGE"
	// EnvFreeSWITCHImage names the FreeSWITCH image (default DefaultFreeSWITCHImage).
	EnvFreeSWITCHImage = "LAB_FREESWITCH_IMAGE"
	// EnvRequire lists, comma-separated, what must be available: a test needing one of them
	// fails instead of skipping ("docker", "asterisk", "freeswitch").
	EnvRequire = "LAB_REQUIRE"
)

// Default images: built locally (make images; images/build-freeswitch), never pulled.
const (
	DefaultAsteriskImage   = "siprtc/asterisk:22"
	DefaultFreeSWITCHImage = "siprtc/freeswitch:1.10"
)

// LabelLab marks the lab's containers (value: the backend).
const LabelLab = "org.siprtc.lab"

var (
	// ErrDockerUnavailable: no Docker engine answers.
	ErrDockerUnavailable = errors.New("docker unavailable")
	// ErrImageMissing: the backend's image is not in the local Docker engine.
	ErrImageMissing = errors.New("image missing")
	// ErrNotReady: the container started but the PBX did not answer in time.
	ErrNotReady = errors.New("PBX not ready")
)

// AsteriskImage is the image the Asterisk backend runs: $LAB_ASTERISK_IMAGE or the default.
func AsteriskImage() string { return envOr(EnvAsteriskImage, DefaultAsteriskImage) }

// FreeSWITCHImage is the image the FreeSWITCH backend runs: $LAB_FREESWITCH_IMAGE or the
// default.
func FreeSWITCHImage() string { return envOr(EnvFreeSWITCHImage, DefaultFreeSWITCHImage) }

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// Required tells whether LAB_REQUIRE (comma-separated names) names what.
func Required(what string) bool {
	for _, n := range strings.Split(os.Getenv(EnvRequire), ",") {
		if strings.EqualFold(strings.TrimSpace(n), what) {
			return true
		}
	}
	return false
}

// Available tells whether a backend can run here: the embedded one always can; a container
// backend needs a Docker engine that answers and its image. reason says what is missing and the
// command that fixes it.
func Available(b Backend) (ok bool, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := checkAvailable(ctx, b, "")
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

// RequireBackend is for tests: it returns when backend b is available; otherwise it skips the
// test with the reason, or fails it when LAB_REQUIRE names the backend (or "docker", when Docker
// is what is missing).
func RequireBackend(tb testing.TB, b Backend) {
	tb.Helper()
	reason, required := Check(b)
	if reason == "" {
		return
	}
	if required {
		tb.Fatal(reason)
	}
	tb.Skip(reason)
}

// Check is RequireBackend's decision without a test (for Ginkgo specs, lab.UseBackend): it
// returns "" when backend b is available; otherwise the message to skip or fail with, and
// whether LAB_REQUIRE makes the absence a failure (it names the backend, or "docker" when
// Docker is what is missing).
func Check(b Backend) (message string, required bool) {
	ok, reason := Available(b)
	if ok {
		return "", false
	}
	if Required(string(b)) || Required("docker") && strings.Contains(reason, ErrDockerUnavailable.Error()) {
		return fmt.Sprintf("%s backend required (%s=%q) but unavailable: %s", b, EnvRequire, os.Getenv(EnvRequire), reason), true
	}
	return fmt.Sprintf("%s backend unavailable: %s (set %s=%s to make this a failure)", b, reason, EnvRequire, b), false
}

// fixHint is the command that provides a backend's image.
func fixHint(b Backend, image string) string {
	switch b {
	case BackendAsterisk:
		if image != DefaultAsteriskImage {
			return fmt.Sprintf("run `LAB_ASTERISK_IMAGE=%s make images` (as root) to build it", image)
		}
		return "run `make images` (as root) to build it (debootstrap of Debian sid's asterisk, then docker import; about 75 s)"
	case BackendFreeSWITCH:
		return "no FreeSWITCH image is built on this machine: build one with `images/build-freeswitch` " +
			"(docker build -f freeswitch/Dockerfile; it downloads Debian packages and FreeSWITCH's sources from GitHub, " +
			"network access the lab's CI machines do not have) or point " + EnvFreeSWITCHImage + " at a FreeSWITCH 1.10 image you have"
	}
	return ""
}

// ensureRyukDisabled sets TESTCONTAINERS_RYUK_DISABLED=true unless the variable is set: the
// reaper's image cannot be pulled here. testcontainers reads its configuration once per
// process, so this runs before any testcontainers call of the backends.
func ensureRyukDisabled() {
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

var dockerMu sync.Mutex // one docker client set-up at a time (testcontainers caches globals)

// dockerClient connects to the engine testcontainers would use.
func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	ensureRyukDisabled()
	dockerMu.Lock()
	defer dockerMu.Unlock()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: no Docker engine answers (testcontainers: %v): run `make docker` (images/docker-up: installs docker.io and starts dockerd, as root)", ErrDockerUnavailable, err)
	}
	return cli, nil
}

// checkAvailable checks the engine and the image (image "" means the backend's default).
func checkAvailable(ctx context.Context, b Backend, image string) error {
	switch b {
	case BackendEmbedded:
		return nil
	case BackendAsterisk:
		if image == "" {
			image = AsteriskImage()
		}
	case BackendFreeSWITCH:
		if image == "" {
			image = FreeSWITCHImage()
		}
	default:
		return fmt.Errorf("unknown PBX backend %q", b)
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "no such image") || strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("%w: %s backend: image %s is not in the local Docker engine: %s", ErrImageMissing, b, image, fixHint(b, image))
		}
		return fmt.Errorf("%w: inspecting image %s: %v", ErrDockerUnavailable, image, err)
	}
	return nil
}

// pingOptions and inspectOptions keep the moby client's option types out of the tests.
func pingOptions() client.PingOptions                { return client.PingOptions{} }
func inspectOptions() client.ContainerInspectOptions { return client.ContainerInspectOptions{} }

// freePort returns a port that is free on ip for the network ("udp" or "tcp") now. The PBX binds
// it a moment later: a race with another process is possible but unlikely, and shows up as a
// start-up failure with the PBX's log.
func freePort(network string, ip netip.Addr) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default:
		l, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
}

// freeSIPPort is a port free for both UDP and TCP (FreeSWITCH binds both).
func freeSIPPort(ip netip.Addr) (int, error) {
	for range 20 {
		p, err := freePort("udp", ip)
		if err != nil {
			return 0, err
		}
		l, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no port free for both UDP and TCP")
}

// containerSpec is what a backend asks of startContainer.
type containerSpec struct {
	backend Backend
	image   string
	name    string
	cmd     []string
	files   []testcontainers.ContainerFile
	binds   []string
	env     map[string]string
	logger  *slog.Logger
}

// pbxContainer is a running PBX container and its captured output.
type pbxContainer struct {
	backend Backend
	name    string
	c       testcontainers.Container

	mu       sync.Mutex
	final    []byte // the output at Close
	closed   bool
	closeErr error
}

// tcLogger sends testcontainers' own messages to slog at debug level.
type tcLogger struct{ l *slog.Logger }

func (t tcLogger) Printf(format string, v ...any) {
	t.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "from", "testcontainers")
}

var _ tclog.Logger = tcLogger{}

// startContainer creates and starts a host-networked container.
func startContainer(ctx context.Context, s containerSpec) (*pbxContainer, error) {
	if err := checkAvailable(ctx, s.backend, s.image); err != nil {
		return nil, err
	}
	if s.name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		s.name = fmt.Sprintf("siprtc-%s-%s", s.backend, hex.EncodeToString(b[:]))
	}
	binds := s.binds
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:  s.image,
			Name:   s.name,
			Cmd:    s.cmd,
			Env:    s.env,
			Files:  s.files,
			Labels: map[string]string{LabelLab: string(s.backend)},
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
				hc.Binds = append(hc.Binds, binds...)
			},
			// With host networking the container joins no network: testcontainers would attach
			// it to its default network when the engine has no "bridge" one (dockerd
			// --bridge=none), which fails.
			EndpointSettingsModifier: func(m map[string]*network.EndpointSettings) {
				clear(m)
			},
		},
		Started: true,
		Logger:  tcLogger{s.logger},
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	pc := &pbxContainer{backend: s.backend, name: s.name, c: c}
	if err != nil {
		if c != nil {
			logs := pc.fetchLogs()
			_ = pc.close()
			return nil, fmt.Errorf("%s container %s (%s): %w%s", s.backend, s.name, s.image, err, logTail(logs, 30))
		}
		return nil, fmt.Errorf("%s container %s (%s): %w", s.backend, s.name, s.image, err)
	}
	return pc, nil
}

// running tells whether the container still runs; when it does not, why.
func (pc *pbxContainer) running(ctx context.Context) (bool, string) {
	st, err := pc.c.State(ctx)
	if err != nil {
		return false, err.Error()
	}
	if st.Running {
		return true, ""
	}
	return false, fmt.Sprintf("container exited (status %s, exit code %d)", st.Status, st.ExitCode)
}

// fetchLogs reads the container's output so far (stdout and stderr).
func (pc *pbxContainer) fetchLogs() []byte {
	if pc.c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := pc.c.Logs(ctx)
	if err != nil {
		return []byte(fmt.Sprintf("(container logs unavailable: %v)\n", err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		b = append(b, fmt.Sprintf("\n(container logs cut: %v)\n", err)...)
	}
	return b
}

// Logs returns the container's output: live while it runs, as it was at Close afterwards.
func (pc *pbxContainer) Logs() string {
	pc.mu.Lock()
	if pc.closed {
		defer pc.mu.Unlock()
		return string(pc.final)
	}
	pc.mu.Unlock()
	return string(pc.fetchLogs())
}

// close keeps the final output, then stops and removes the container (idempotent).
func (pc *pbxContainer) close() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return pc.closeErr
	}
	pc.closed = true
	if pc.c == nil {
		return nil
	}
	pc.final = pc.fetchLogs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	timeout := 5 * time.Second
	if err := pc.c.Terminate(ctx, testcontainers.StopTimeout(timeout)); err != nil {
		pc.closeErr = fmt.Errorf("%s container %s: terminate: %w", pc.backend, pc.name, err)
	}
	return pc.closeErr
}

// logTail formats the last n lines of a log for an error message.
func logTail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return "\n(the container printed nothing)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\nlast lines of the container's output:\n  " + strings.Join(lines, "\n  ")
}

// probeSIP sends one OPTIONS over UDP to addr from an ephemeral loopback port and waits up to
// wait for any SIP response: its status code (a 401 proves the SIP stack runs as well as a 200).
func probeSIP(ctx context.Context, addr netip.AddrPort, wait time.Duration) (int, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr.Addr(), 0)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	msg := fmt.Sprintf("OPTIONS sip:%[1]s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-%[3]s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:siprtc-probe@%[2]s>;tag=%[3]s\r\n"+
		"To: <sip:%[1]s>\r\n"+
		"Call-ID: %[3]s@siprtc-probe\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"User-Agent: siprtc-lab-probe\r\n"+
		"Content-Length: 0\r\n\r\n", addr, local, id)
	if _, err := c.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetReadDeadline(deadline)
	buf := make([]byte, 8192)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, err
		}
		line, _, _ := bytes.Cut(buf[:n], []byte("\r\n"))
		f := strings.Fields(string(line))
		if len(f) >= 2 && f[0] == "SIP/2.0" && bytes.Contains(buf[:n], []byte(id)) {
			var code int
			if _, err := fmt.Sscanf(f[1], "%d", &code); err == nil {
				return code, nil
			}
		}
	}
}

// waitReady polls check every interval until it succeeds, the container exits, or timeout.
func (pc *pbxContainer) waitReady(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		if ok, why := pc.running(context.WithoutCancel(ctx)); !ok {
			return fmt.Errorf("%w: %s: %s (last check: %v)", ErrNotReady, what, why, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s did not answer within %v: %v", ErrNotReady, what, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
