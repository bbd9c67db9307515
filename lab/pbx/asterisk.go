package pbx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/testcontainers/testcontainers-go"

	"github.com/siprtc/siprtc/lab/pbx/ami"
	"github.com/siprtc/siprtc/lab/pbx/astconf"
	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

// AsteriskConfig says which FreeSWITCH configuration the Asterisk container is generated from
// and where it listens.
type AsteriskConfig struct {
	// ConfDir is the FreeSWITCH conf directory (freeswitch/conf): the directory, dialplan and
	// ACL the generated Asterisk configuration serves (package astconf).
	ConfDir string
	// Image is the Asterisk image (default $LAB_ASTERISK_IMAGE, else siprtc/asterisk:22, built by
	// `make images`).
	Image string
	// IP is the loopback address Asterisk binds to and the SIP domain (default 127.0.0.1).
	IP netip.Addr
	// SIPPort is the UDP port of SIP; 0 picks a free one (the FreeSWITCH profile's 5060 is not
	// used, so several PBXs and the embedded one can run at once).
	SIPPort int
	// AMIPort is the manager's TCP port; 0 picks a free one.
	AMIPort int
	// RTPPortMin and RTPPortMax bound Asterisk's RTP ports (default: the configuration's
	// switch.conf range, 16384-32768).
	RTPPortMin, RTPPortMax int
	// Vars override preprocessor variables after vars.xml (default_password...), as for the
	// embedded PBX.
	Vars map[string]string
	// StartTimeout bounds the wait for SIP and AMI to answer (default 60 s).
	StartTimeout time.Duration
	// Verbose is Asterisk's console verbosity (default 3).
	Verbose int
	// Logger receives the backend's own log (default: discard).
	Logger *slog.Logger
}

// Asterisk is an Asterisk 22 container serving the lab's FreeSWITCH configuration, translated by
// astconf, with host networking on loopback. Status and control go through AMI.
type Asterisk struct {
	cfg    AsteriskConfig
	conf   *fsconf.Config
	gen    *astconf.Output
	domain string
	sip    netip.AddrPort
	amiAt  netip.AddrPort
	amiPW  string
	log    *slog.Logger
	ctr    *pbxContainer

	mu  sync.Mutex
	ami *ami.Client
}

var _ PBX = (*Asterisk)(nil)

// StartAsterisk generates the Asterisk configuration from cfg.ConfDir, starts the container and
// returns once SIP answers an OPTIONS and AMI accepts the login. Failures say what is wrong and
// the fix: a missing Docker engine (`make docker`), a missing image (`make images`), or a PBX that
// did not come up (with the end of its log).
func StartAsterisk(ctx context.Context, cfg AsteriskConfig) (*Asterisk, error) {
	if cfg.Image == "" {
		cfg.Image = AsteriskImage()
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("pbx", "asterisk")
	host, _ := os.Hostname()
	conf, err := fsconf.Load(cfg.ConfDir, fsconf.Options{
		Vars:      map[string]string{"local_ip_v4": cfg.IP.String(), "hostname": host, "conf_dir": cfg.ConfDir},
		Overrides: cfg.Vars,
	})
	if err != nil {
		return nil, fmt.Errorf("asterisk PBX: %w", err)
	}
	if cfg.SIPPort == 0 {
		if cfg.SIPPort, err = freePort("udp", cfg.IP); err != nil {
			return nil, fmt.Errorf("asterisk PBX: SIP port: %w", err)
		}
	}
	if cfg.AMIPort == 0 {
		if cfg.AMIPort, err = freePort("tcp", cfg.IP); err != nil {
			return nil, fmt.Errorf("asterisk PBX: AMI port: %w", err)
		}
	}
	gen, err := astconf.Generate(conf, astconf.Options{
		IP: cfg.IP, SIPPort: cfg.SIPPort, AMIPort: cfg.AMIPort,
		RTPStart: cfg.RTPPortMin, RTPEnd: cfg.RTPPortMax,
		AMIUser: amiUser, AMISecret: amiSecret(conf),
		ICEHostAddrs: hostAddrs(), Verbose: cfg.Verbose,
	})
	if err != nil {
		return nil, fmt.Errorf("asterisk PBX: %w", err)
	}
	for _, n := range gen.Notes {
		log.Debug("astconf: " + n)
	}
	a := &Asterisk{
		cfg: cfg, conf: conf, gen: gen, domain: gen.Domain, log: log,
		sip:   netip.AddrPortFrom(cfg.IP, uint16(cfg.SIPPort)),
		amiAt: netip.AddrPortFrom(cfg.IP, uint16(cfg.AMIPort)),
		amiPW: amiSecret(conf),
	}
	var files []testcontainers.ContainerFile
	for _, n := range gen.Names() {
		files = append(files, testcontainers.ContainerFile{
			Reader: bytes.NewReader(gen.Files[n]), ContainerFilePath: "/etc/asterisk/" + n, FileMode: 0o644,
		})
	}
	start := time.Now()
	ctr, err := startContainer(ctx, containerSpec{
		backend: BackendAsterisk, image: cfg.Image,
		name: fmt.Sprintf("siprtc-asterisk-%d", cfg.SIPPort),
		// -f: foreground, logging to the container's output; -n: no colours in it.
		cmd:    []string{"/usr/sbin/asterisk", "-f", "-n"},
		files:  files,
		logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("asterisk PBX: %w", err)
	}
	a.ctr = ctr
	if err := ctr.waitReady(ctx, cfg.StartTimeout, "SIP on "+a.sip.String(), func(ctx context.Context) error {
		_, err := probeSIP(ctx, a.sip, 500*time.Millisecond)
		return err
	}); err != nil {
		logs := ctr.fetchLogs()
		_ = a.Close()
		return nil, fmt.Errorf("asterisk PBX: %w%s", err, logTail(logs, 40))
	}
	if err := ctr.waitReady(ctx, cfg.StartTimeout, "AMI on "+a.amiAt.String(), func(ctx context.Context) error {
		_, err := a.manager(ctx)
		return err
	}); err != nil {
		logs := ctr.fetchLogs()
		_ = a.Close()
		return nil, fmt.Errorf("asterisk PBX: %w%s", err, logTail(logs, 40))
	}
	log.Info("asterisk PBX ready", "container", ctr.name, "image", cfg.Image, "sip", a.sip, "ami", a.amiAt,
		"domain", a.domain, "users", len(gen.Users), "startup", time.Since(start).Round(time.Millisecond))
	return a, nil
}

// amiUser is the manager login of the generated manager.conf.
const amiUser = "siprtc"

// amiSecret is the manager secret: the event socket password of the FreeSWITCH configuration
// (the lab's one control-socket secret), or a fixed lab value when it has none.
func amiSecret(conf *fsconf.Config) string {
	if pw := conf.EventSocket["password"]; pw != "" {
		return pw
	}
	return "siprtc-ami-lab"
}

// hostAddrs are the machine's own IPv4 addresses (for rtp.conf's ICE host candidate mapping).
func hostAddrs() []netip.Addr {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			out = append(out, p.Addr())
		}
	}
	return out
}

// Backend implements PBX.
func (a *Asterisk) Backend() Backend { return BackendAsterisk }

// SIPAddr implements PBX.
func (a *Asterisk) SIPAddr() netip.AddrPort { return a.sip }

// Domain implements PBX.
func (a *Asterisk) Domain() string { return a.domain }

// Password implements PBX: the directory user's password, as the generated pjsip.conf has it.
func (a *Asterisk) Password(user string) (string, bool) {
	u, ok := a.conf.Directory.Lookup(user, a.domain)
	if !ok {
		return "", false
	}
	return u.Params["password"], true
}

// AMIAddr is where the manager listens.
func (a *Asterisk) AMIAddr() netip.AddrPort { return a.amiAt }

// Generated is the configuration the container runs: files, notes of what Asterisk does
// differently from the FreeSWITCH configuration, users, modules.
func (a *Asterisk) Generated() *astconf.Output { return a.gen }

// Config is the FreeSWITCH configuration the Asterisk configuration was generated from.
func (a *Asterisk) Config() *fsconf.Config { return a.conf }

// ContainerName is the Docker container's name.
func (a *Asterisk) ContainerName() string { return a.ctr.name }

// Logs returns the container's output (Asterisk's console log): live while it runs, as it was
// at Close afterwards. Test reports attach it.
func (a *Asterisk) Logs() string {
	if a.ctr == nil {
		return ""
	}
	return a.ctr.Logs()
}

// manager returns the AMI connection, connecting (again) when needed.
func (a *Asterisk) manager(ctx context.Context) (*ami.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ami != nil {
		return a.ami, nil
	}
	c, err := ami.Dial(ctx, a.amiAt.String(), amiUser, a.amiPW)
	if err != nil {
		return nil, err
	}
	a.ami = c
	return c, nil
}

// AMI returns the backend's logged-in manager connection, for actions the helpers lack.
func (a *Asterisk) AMI(ctx context.Context) (*ami.Client, error) { return a.manager(ctx) }

// do runs fn on the AMI connection, reconnecting once if the connection had dropped.
func (a *Asterisk) do(ctx context.Context, fn func(*ami.Client) error) error {
	for attempt := 0; ; attempt++ {
		c, err := a.manager(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		if err == nil || !errors.Is(err, ami.ErrClosed) || attempt > 0 {
			return err
		}
		a.mu.Lock()
		if a.ami == c {
			a.ami = nil
		}
		a.mu.Unlock()
		_ = c.Close()
	}
}

// Contacts lists the PJSIP contacts (PJSIPShowContacts).
func (a *Asterisk) Contacts(ctx context.Context) ([]ami.Contact, error) {
	var out []ami.Contact
	err := a.do(ctx, func(c *ami.Client) (err error) { out, err = c.Contacts(ctx); return })
	return out, err
}

// Registrations lists the registered contacts as the embedded PBX reports them.
func (a *Asterisk) Registrations(ctx context.Context) ([]Registration, error) {
	cs, err := a.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Registration, 0, len(cs))
	for _, c := range cs {
		r := Registration{User: c.AOR, Domain: a.domain, CallID: c.CallID, Expires: c.Expires,
			UserAgent: c.UserAgent, Transport: "UDP"}
		if err := sip.ParseUri(strings.Trim(c.URI, "<>"), &r.Contact); err != nil {
			r.Contact = sip.Uri{User: c.AOR, Host: c.URI}
		}
		if ap, err := netip.ParseAddrPort(c.Via); err == nil {
			r.Source = ap
		}
		out = append(out, r)
	}
	return out, nil
}

// Channels lists the active channels (CoreShowChannels).
func (a *Asterisk) Channels(ctx context.Context) ([]ami.Channel, error) {
	var out []ami.Channel
	err := a.do(ctx, func(c *ami.Client) (err error) { out, err = c.Channels(ctx); return })
	return out, err
}

// ActiveCalls counts the calls in progress (channels grouped by Linkedid).
func (a *Asterisk) ActiveCalls(ctx context.Context) (int, error) {
	chs, err := a.Channels(ctx)
	if err != nil {
		return 0, err
	}
	return ami.Calls(chs), nil
}

// Hangup hangs up one channel by name with a Q.850 cause (0: normal clearing).
func (a *Asterisk) Hangup(ctx context.Context, channel string, cause int) error {
	return a.do(ctx, func(c *ami.Client) error { return c.Hangup(ctx, channel, cause) })
}

// HangupAll hangs up every channel.
func (a *Asterisk) HangupAll(ctx context.Context) error {
	chs, err := a.Channels(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ch := range chs {
		if err := a.Hangup(ctx, ch.Name, 16); err != nil {
			var ae *ami.Error
			if !errors.As(err, &ae) { // a channel that ended meanwhile is no error
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Command runs an Asterisk CLI command through AMI and returns its output lines.
func (a *Asterisk) Command(ctx context.Context, command string) ([]string, error) {
	var out []string
	err := a.do(ctx, func(c *ami.Client) (err error) { out, err = c.Command(ctx, command); return })
	return out, err
}

// Close closes AMI, keeps the container's final output (Logs) and stops and removes the
// container. It is idempotent.
func (a *Asterisk) Close() error {
	a.mu.Lock()
	c := a.ami
	a.ami = nil
	a.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	if a.ctr == nil {
		return nil
	}
	return a.ctr.close()
}
