package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/siprtc/siprtc/lab/pbx"
	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

const defaultConfDir = "freeswitch/conf"

// varsFlag collects repeated --var name=value flags.
type varsFlag map[string]string

func (v varsFlag) String() string { return "" }

func (v varsFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	v[name] = value
	return nil
}

func runPBX(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "lint":
			return runPBXLint(args[1:], stdout, stderr)
		case "gen-directory":
			return runPBXGenDirectory(args[1:], stdout, stderr)
		}
	}
	fs := newFlagSet("siprtc pbx", "siprtc pbx [--conf DIR] [--ip ADDR] [--port N] [--var NAME=VALUE]...\n"+
		"       siprtc pbx lint [--conf DIR]\n"+
		"       siprtc pbx gen-directory [--conf DIR] --from N --to M\n\n"+
		"Runs the embedded PBX (registrar and B2BUA) on the FreeSWITCH configuration in DIR until\n"+
		"interrupted; SIP over UDP and TCP, media anchored in the RTP range of switch.conf.xml.", stdout, stderr)
	conf := fs.String("conf", defaultConfDir, "FreeSWITCH conf directory (holds freeswitch.xml)")
	ip := fs.String("ip", "127.0.0.1", "address to listen on; also $${local_ip_v4} and so the default domain")
	port := fs.Int("port", 0, "SIP port (0: the profile's sip-port, -1: any free port)")
	profile := fs.String("profile", "internal", "sofia profile to run")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	vars := varsFlag{}
	fs.Var(vars, "var", "override a preprocessor variable, NAME=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (subcommands: lint, gen-directory)", fs.Arg(0))
	}
	addr, err := netip.ParseAddr(*ip)
	if err != nil {
		return fmt.Errorf("--ip %q: %w", *ip, err)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := pbx.StartEmbedded(ctx, pbx.EmbeddedConfig{
		ConfDir: *conf, IP: addr, SIPPort: *port, Profile: *profile, Vars: vars, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "embedded PBX: SIP %s (UDP and TCP), domain %s, profile %s; Ctrl-C stops it\n", p.SIPAddr(), p.Domain(), *profile)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return p.Close()
}

func runPBXLint(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc pbx lint", "siprtc pbx lint [--conf DIR | DIR]\n\n"+
		"Reports the known traps of the SRProxy/FreeSWITCH deployment with file:line; exit 1 if any.", stdout, stderr)
	conf := fs.String("conf", defaultConfDir, "FreeSWITCH conf directory (holds freeswitch.xml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := *conf
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	} else if fs.NArg() > 1 {
		return fmt.Errorf("want one conf directory, got %d arguments", fs.NArg())
	}
	findings, err := fsconf.Lint(dir, fsconf.Options{Vars: map[string]string{"local_ip_v4": "127.0.0.1"}})
	if err != nil {
		return err
	}
	for _, f := range findings {
		fmt.Fprintf(stdout, "%s/%s\n", strings.TrimSuffix(dir, "/"), f.String())
	}
	if len(findings) > 0 {
		fmt.Fprintf(stderr, "%d finding(s) in %s\n", len(findings), dir)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "%s: no findings\n", dir)
	return nil
}

func runPBXGenDirectory(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc pbx gen-directory", "siprtc pbx gen-directory [--conf DIR] --from N --to M\n\n"+
		"Writes directory/default/NNNN.xml for users N..M from the one user template.", stdout, stderr)
	conf := fs.String("conf", defaultConfDir, "FreeSWITCH conf directory (holds freeswitch.xml)")
	from := fs.Int("from", 1000, "first user")
	to := fs.Int("to", 2599, "last user")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := fsconf.GenerateDirectory(*conf, *from, *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d users (%d..%d) to %s/directory/default\n", n, *from, *to, *conf)
	return nil
}
