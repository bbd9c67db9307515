package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/siprtc/siprtc/lab/pbx/esl"
	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

// FreeSWITCHConfig says which configuration the FreeSWITCH container runs and where it listens.
type FreeSWITCHConfig struct {
	// ConfDir is the FreeSWITCH conf directory (freeswitch/conf). The container gets a copy of
	// it as /etc/freeswitch, with the lab's address and ports set (see StartFreeSWITCH).
	ConfDir string
	// Image is the FreeSWITCH 1.10 image (default $LAB_FREESWITCH_IMAGE, else
	// siprtc/freeswitch:1.10, built from freeswitch/Dockerfile by images/build-freeswitch).
	Image string
	// Cmd overrides the image's command (the siprtc image runs FreeSWITCH in the foreground
	// with its log on the container's output).
	Cmd []string
	// IP is FreeSWITCH's $${local_ip_v4}: the SIP, RTP and event socket address and the SIP
	// domain (default 127.0.0.1).
	IP netip.Addr
	// SIPPort is the internal profile's port ($${internal_sip_port}); 0 picks a free one.
	SIPPort int
	// ESLPort is the event socket's port (event_socket.conf.xml listen-port, 8021 in the
	// configuration); 0 picks a free one.
	ESLPort int
	// RTPPortMin and RTPPortMax override $${rtp_start_port} and $${rtp_end_port} when set.
	RTPPortMin, RTPPortMax int
	// Vars override preprocessor variables (default_password...).
	Vars map[string]string
	// StartTimeout bounds the wait for SIP and the event socket (default 90 s).
	StartTimeout time.Duration
	// Logger receives the backend's own log (default: discard).
	Logger *slog.Logger
}

// FreeSWITCH is a FreeSWITCH 1.10 container running the lab's configuration with host
// networking on loopback. Status and control go through the event socket.
type FreeSWITCH struct {
	cfg     FreeSWITCHConfig
	conf    *fsconf.Config
	confDir string // the container's copy
	domain  string
	profile string
	sip     netip.AddrPort
	eslAt   netip.AddrPort
	eslPW   string
	log     *slog.Logger
	ctr     *pbxContainer

	mu  sync.Mutex
	esl *esl.Client
}

var _ PBX = (*FreeSWITCH)(nil)

// ContainerPBX is what the container backends (Asterisk, FreeSWITCH) report beyond PBX, through
// their control sockets (AMI, the event socket): Controlled, which the embedded PBX also
// offers (Embedded.Control).
type ContainerPBX = Controlled

var (
	_ ContainerPBX = (*Asterisk)(nil)
	_ ContainerPBX = (*FreeSWITCH)(nil)
)

// StartFreeSWITCH copies cfg.ConfDir to a temporary directory, sets the lab's address and ports
// in the copy (vars.d/lab.xml sets local_ip_v4; internal_sip_port, rtp_start_port/rtp_end_port
// and cfg.Vars are set in vars.xml, whose own set lines would otherwise win; the event socket's
// listen-ip/listen-port and the profiles' ws-binding/wss-binding are set to the address and free
// ports), mounts it as /etc/freeswitch of the container and returns once SIP answers an OPTIONS
// and the event socket accepts the password.
//
// No FreeSWITCH image can be pulled or built on the lab's CI machines: without one the error
// says so and what to do (images/build-freeswitch where the network allows it, or
// LAB_FREESWITCH_IMAGE).
func StartFreeSWITCH(ctx context.Context, cfg FreeSWITCHConfig) (*FreeSWITCH, error) {
	if cfg.Image == "" {
		cfg.Image = FreeSWITCHImage()
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 90 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("pbx", "freeswitch")
	// Fail early, before copying 1600 files, when the image is not there.
	if err := checkAvailable(ctx, BackendFreeSWITCH, cfg.Image); err != nil {
		return nil, fmt.Errorf("freeswitch PBX: %w", err)
	}
	var err error
	if cfg.SIPPort == 0 {
		if cfg.SIPPort, err = freeSIPPort(cfg.IP); err != nil {
			return nil, fmt.Errorf("freeswitch PBX: SIP port: %w", err)
		}
	}
	if cfg.ESLPort == 0 {
		if cfg.ESLPort, err = freePort("tcp", cfg.IP); err != nil {
			return nil, fmt.Errorf("freeswitch PBX: event socket port: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "siprtc-freeswitch-")
	if err != nil {
		return nil, fmt.Errorf("freeswitch PBX: %w", err)
	}
	f := &FreeSWITCH{cfg: cfg, confDir: dir, log: log, profile: "internal"}
	if err := f.prepareConf(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("freeswitch PBX: %w", err)
	}
	host, _ := os.Hostname()
	conf, err := fsconf.Load(dir, fsconf.Options{Vars: map[string]string{
		"local_ip_v4": cfg.IP.String(), "hostname": host, "conf_dir": "/etc/freeswitch",
	}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("freeswitch PBX: the prepared configuration: %w", err)
	}
	f.conf = conf
	f.domain = conf.Directory.DefaultDomain()
	f.sip = netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort))
	f.eslAt = netip.AddrPortFrom(cfg.IP, uint16(cfg.ESLPort))
	f.eslPW = conf.EventSocket["password"]

	start := time.Now()
	ctr, err := startContainer(ctx, containerSpec{
		backend: BackendFreeSWITCH, image: cfg.Image,
		name:   fmt.Sprintf("siprtc-freeswitch-%d", cfg.SIPPort),
		cmd:    cfg.Cmd,
		binds:  []string{dir + ":/etc/freeswitch"},
		logger: log,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("freeswitch PBX: %w", err)
	}
	f.ctr = ctr
	if err := ctr.waitReady(ctx, cfg.StartTimeout, "SIP on "+f.sip.String(), func(ctx context.Context) error {
		_, err := probeSIP(ctx, f.sip, 500*time.Millisecond)
		return err
	}); err != nil {
		logs := ctr.fetchLogs()
		_ = f.Close()
		return nil, fmt.Errorf("freeswitch PBX: %w%s", err, logTail(logs, 40))
	}
	if err := ctr.waitReady(ctx, cfg.StartTimeout, "event socket on "+f.eslAt.String(), func(ctx context.Context) error {
		_, err := f.socket(ctx)
		return err
	}); err != nil {
		logs := ctr.fetchLogs()
		_ = f.Close()
		return nil, fmt.Errorf("freeswitch PBX: %w%s", err, logTail(logs, 40))
	}
	log.Info("freeswitch PBX ready", "container", ctr.name, "image", cfg.Image, "sip", f.sip, "esl", f.eslAt,
		"domain", f.domain, "startup", time.Since(start).Round(time.Millisecond))
	return f, nil
}

var (
	setLine  = `(<X-PRE-PROCESS\s+cmd="set"\s+data="%s=)[^"]*(")`
	paramRe  = `(<param\s+name="%s"\s+value=")[^"]*(")`
	errNoVar = errors.New("not set in the file")
)

// replaceOnce replaces the value captured by the pattern, or reports that nothing matched.
func replaceIn(path, pattern, value string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	re := regexp.MustCompile(pattern)
	if !re.Match(b) {
		return errNoVar
	}
	b = re.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		return []byte(string(sub[1]) + value + string(sub[2]))
	})
	return os.WriteFile(path, b, 0o644)
}

// prepareConf copies the configuration and sets the lab's address and ports in the copy.
func (f *FreeSWITCH) prepareConf() error {
	cfg := f.cfg
	if err := os.CopyFS(f.confDir, os.DirFS(cfg.ConfDir)); err != nil {
		return fmt.Errorf("copying %s: %w", cfg.ConfDir, err)
	}
	// FreeSWITCH reads its conf dir as another user, maybe: everything readable.
	_ = filepath.WalkDir(f.confDir, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
	sets := map[string]string{"internal_sip_port": fmt.Sprint(cfg.SIPPort)}
	if cfg.RTPPortMin > 0 {
		sets["rtp_start_port"] = fmt.Sprint(cfg.RTPPortMin)
	}
	if cfg.RTPPortMax > 0 {
		sets["rtp_end_port"] = fmt.Sprint(cfg.RTPPortMax)
	}
	for k, v := range cfg.Vars {
		sets[k] = v
	}
	extra := map[string]string{"local_ip_v4": cfg.IP.String()}
	names := make([]string, 0, len(sets))
	for k := range sets {
		names = append(names, k)
	}
	sort.Strings(names)
	vars := filepath.Join(f.confDir, "vars.xml")
	for _, k := range names {
		err := replaceIn(vars, fmt.Sprintf(setLine, regexp.QuoteMeta(k)), xmlAttr(sets[k]))
		if errors.Is(err, errNoVar) {
			extra[k] = sets[k]
			continue
		}
		if err != nil {
			return err
		}
	}
	var b strings.Builder
	b.WriteString("<!-- Written by the lab's FreeSWITCH backend (lab/pbx/freeswitch.go): the lab's address. -->\n<include>\n")
	enames := make([]string, 0, len(extra))
	for k := range extra {
		enames = append(enames, k)
	}
	sort.Strings(enames)
	for _, k := range enames {
		fmt.Fprintf(&b, "  <X-PRE-PROCESS cmd=\"set\" data=\"%s=%s\"/>\n", k, xmlAttr(extra[k]))
	}
	b.WriteString("</include>\n")
	if err := os.MkdirAll(filepath.Join(f.confDir, "vars.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.confDir, "vars.d", "lab.xml"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	es := filepath.Join(f.confDir, "autoload_configs", "event_socket.conf.xml")
	if err := replaceIn(es, fmt.Sprintf(paramRe, "listen-ip"), cfg.IP.String()); err != nil {
		return fmt.Errorf("%s: listen-ip: %w", es, err)
	}
	if err := replaceIn(es, fmt.Sprintf(paramRe, "listen-port"), fmt.Sprint(cfg.ESLPort)); err != nil {
		return fmt.Errorf("%s: listen-port: %w", es, err)
	}
	profiles, _ := filepath.Glob(filepath.Join(f.confDir, "sip_profiles", "*.xml"))
	for _, p := range profiles {
		for _, param := range []string{"ws-binding", "wss-binding"} {
			port, err := freePort("tcp", cfg.IP)
			if err != nil {
				return err
			}
			if err := replaceIn(p, fmt.Sprintf(paramRe, param), fmt.Sprintf("%s:%d", cfg.IP, port)); err != nil && !errors.Is(err, errNoVar) {
				return err
			}
		}
	}
	return nil
}

func xmlAttr(s string) string {
	r := strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

// Backend implements PBX.
func (f *FreeSWITCH) Backend() Backend { return BackendFreeSWITCH }

// SIPAddr implements PBX.
func (f *FreeSWITCH) SIPAddr() netip.AddrPort { return f.sip }

// Domain implements PBX.
func (f *FreeSWITCH) Domain() string { return f.domain }

// Password implements PBX.
func (f *FreeSWITCH) Password(user string) (string, bool) {
	u, ok := f.conf.Directory.Lookup(user, f.domain)
	if !ok {
		return "", false
	}
	return u.Params["password"], true
}

// ESLAddr is where the event socket listens.
func (f *FreeSWITCH) ESLAddr() netip.AddrPort { return f.eslAt }

// ConfDir is the container's copy of the configuration (removed by Close).
func (f *FreeSWITCH) ConfDir() string { return f.confDir }

// ContainerName is the Docker container's name.
func (f *FreeSWITCH) ContainerName() string { return f.ctr.name }

// Logs returns the container's output (FreeSWITCH's log).
func (f *FreeSWITCH) Logs() string {
	if f.ctr == nil {
		return ""
	}
	return f.ctr.Logs()
}

func (f *FreeSWITCH) socket(ctx context.Context) (*esl.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.esl != nil {
		return f.esl, nil
	}
	c, err := esl.Dial(ctx, f.eslAt.String(), f.eslPW)
	if err != nil {
		return nil, err
	}
	f.esl = c
	return c, nil
}

// ESL returns the backend's authenticated event socket connection.
func (f *FreeSWITCH) ESL(ctx context.Context) (*esl.Client, error) { return f.socket(ctx) }

// API runs an API command over the event socket, reconnecting once if the connection dropped.
func (f *FreeSWITCH) API(ctx context.Context, command string) (string, error) {
	for attempt := 0; ; attempt++ {
		c, err := f.socket(ctx)
		if err != nil {
			return "", err
		}
		out, err := c.API(ctx, command)
		var ce *esl.CommandError
		if err == nil || errors.As(err, &ce) || attempt > 0 {
			return out, err
		}
		f.mu.Lock()
		if f.esl == c {
			f.esl = nil
		}
		f.mu.Unlock()
		_ = c.Close()
	}
}

// Registrations lists the internal profile's registrations.
func (f *FreeSWITCH) Registrations(ctx context.Context) ([]Registration, error) {
	out, err := f.API(ctx, "sofia xmlstatus profile "+f.profile+" reg")
	if err != nil {
		return nil, err
	}
	regs, err := esl.ParseRegistrations(out)
	if err != nil {
		return nil, err
	}
	res := make([]Registration, 0, len(regs))
	for _, r := range regs {
		user, dom, _ := strings.Cut(r.User, "@")
		reg := Registration{User: user, Domain: dom, CallID: r.CallID, UserAgent: r.Agent, Transport: "UDP"}
		contact := r.Contact
		if i := strings.Index(contact, "<"); i >= 0 {
			contact = strings.TrimSuffix(contact[i+1:], ">")
		}
		_ = sip.ParseUri(contact, &reg.Contact)
		if ap, err := netip.ParseAddrPort(r.NetworkIP + ":" + r.NetworkPort); err == nil {
			reg.Source = ap
		}
		res = append(res, reg)
	}
	return res, nil
}

// Channels lists the channels ("show channels as json").
func (f *FreeSWITCH) Channels(ctx context.Context) ([]esl.Channel, error) {
	out, err := f.API(ctx, "show channels as json")
	if err != nil {
		return nil, err
	}
	return esl.ParseChannels(out)
}

// ActiveCalls counts the calls ("show calls count").
func (f *FreeSWITCH) ActiveCalls(ctx context.Context) (int, error) {
	c, err := f.socket(ctx)
	if err != nil {
		return 0, err
	}
	return c.Calls(ctx)
}

// HangupAll hangs up every channel (hupall NORMAL_CLEARING).
func (f *FreeSWITCH) HangupAll(ctx context.Context) error {
	_, err := f.API(ctx, "hupall NORMAL_CLEARING")
	return err
}

// Close closes the event socket, keeps the container's final output, stops and removes the
// container and the configuration copy. It is idempotent.
func (f *FreeSWITCH) Close() error {
	f.mu.Lock()
	c := f.esl
	f.esl = nil
	f.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	var err error
	if f.ctr != nil {
		err = f.ctr.close()
	}
	if f.confDir != "" {
		_ = os.RemoveAll(f.confDir)
	}
	return err
}
