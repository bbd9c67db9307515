package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/signaling"
)

const defaultGatewayConf = "rtx.conf"

func runGateway(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return runGatewayCheck(args[1:], stdout, stderr)
		case "token":
			return runGatewayToken(args[1:], stdout, stderr)
		case "run":
			return runGatewayRun(args[1:], stdout, stderr)
		}
		// SRProxy's habit and the form: `siprtc gateway --config rtx.conf` runs it.
		if strings.HasPrefix(args[0], "-") && !isHelpFlag(args[0]) {
			return runGatewayRun(args, stdout, stderr)
		}
	}
	fs := newFlagSet("siprtc gateway", "siprtc gateway [run] [--config rtx.conf] [--drain 30s] [--cdr FILE]\n"+
		"       siprtc gateway check [--config rtx.conf]\n"+
		"       siprtc gateway token [--config rtx.conf] --user USER [--ttl 24h]\n\n"+
		"The SIP <-> WebRTC gateway. 'run' (or flags alone) runs it; 'check' validates an rtx.conf (SRProxy's format\n"+
		"plus siprtc's sections) and prints the effective configuration with secrets hidden; 'token'\n"+
		"makes a client login token with the configuration's app_secret.", stdout, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown subcommand %q (want run, check or token)", fs.Arg(0))
	}
	fs.Usage()
	return exitError{2}
}

// loadGatewayConfig loads and reports: warnings to stderr, every error at once.
func loadGatewayConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, warnings, err := config.Load(path)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func runGatewayCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc gateway check", "siprtc gateway check [--config FILE | FILE]\n\n"+
		"Validates the configuration: every error names file, line, section and key; exit 1 on\n"+
		"errors. Prints the effective configuration (defaults filled in, secrets as ***).", stdout, stderr)
	path := fs.String("config", defaultGatewayConf, "rtx.conf to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		*path = fs.Arg(0)
	} else if fs.NArg() > 1 {
		return fmt.Errorf("want one configuration file, got %d arguments", fs.NArg())
	}
	cfg, err := loadGatewayConfig(*path, stderr)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(stderr, e)
			}
			return exitError{1}
		}
		return err
	}
	fmt.Fprint(stdout, cfg.String())
	return nil
}

func runGatewayToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc gateway token", "siprtc gateway token [--config FILE] --user USER [--ttl DURATION]\n\n"+
		"Prints a login token for USER, signed with [signaling] app_secret of the configuration.", stdout, stderr)
	path := fs.String("config", defaultGatewayConf, "rtx.conf holding [signaling] app_secret")
	user := fs.String("user", "", "user id the token logs in as (required)")
	ttl := fs.Duration("ttl", 0, "validity (default and maximum: [signaling] token_ttl)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("--user is required")
	}
	cfg, err := loadGatewayConfig(*path, stderr)
	if err != nil {
		return err
	}
	if cfg.Signaling.AppSecretGenerated {
		return fmt.Errorf("%s has no [signaling] app_secret: a token needs the secret the gateway will use; set one", *path)
	}
	validity := cfg.Signaling.TokenTTL
	if *ttl > 0 {
		if *ttl > validity {
			return fmt.Errorf("--ttl %v is longer than [signaling] token_ttl %v", *ttl, validity)
		}
		validity = *ttl
	}
	fmt.Fprintln(stdout, signaling.MakeToken([]byte(cfg.Signaling.AppSecret.Reveal()), *user, time.Now().Add(validity)))
	return nil
}

func runGatewayRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("siprtc gateway run", "siprtc gateway [run] [--config FILE] [--drain DURATION] [--cdr FILE]\n\n"+
		"Runs the gateway on the host's network: SIP and media on the address that routes to\n"+
		"[global] sip_svr, the signalling WebSocket (/ws), the browser page (/), /healthz and\n"+
		"/metrics on [signaling] listen (TLS with tls_cert/tls_key), /metrics and /healthz also on\n"+
		"[metrics] listen when set. SIGINT or SIGTERM stops it gracefully: no new calls, calls in\n"+
		"progress may end until --drain, the rest are hung up, accounts are unregistered.", stdout, stderr)
	path := fs.String("config", defaultGatewayConf, "rtx.conf to run")
	drain := fs.Duration("drain", 30*time.Second, "how long calls in progress may go on after a stop signal")
	cdrPath := fs.String("cdr", "", "append each call's detail record (a JSON line) to FILE ('-': standard output; default: the log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadGatewayConfig(*path, stderr)
	if err != nil {
		return err
	}
	opts := []gateway.Option{}
	switch *cdrPath {
	case "":
	case "-":
		opts = append(opts, gateway.WithCDR(stdout))
	default:
		f, err := os.OpenFile(*cdrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		opts = append(opts, gateway.WithCDR(f))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveGateway(ctx, stop, cfg, opts, *drain, stderr)
}

// serveGateway runs the gateway of cfg on the host's network until ctx ends (then it drains
// calls for up to drain and stops) or its HTTP side fails. stop is called when ctx ended, so a
// second signal kills the process.
func serveGateway(ctx context.Context, stop func(), cfg *config.Config, opts []gateway.Option, drain time.Duration, stderr io.Writer) error {
	g, err := gateway.New(cfg, opts...)
	if err != nil {
		return err
	}
	closeNow := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Close(cctx)
	}
	if err := g.Start(context.Background()); err != nil {
		closeNow()
		return err
	}
	l, err := net.Listen("tcp", cfg.Signaling.Listen)
	if err != nil {
		closeNow()
		return fmt.Errorf("[signaling] listen: %w", err)
	}
	scheme := "http"
	if cfg.Signaling.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Signaling.TLSCert, cfg.Signaling.TLSKey)
		if err != nil {
			_ = l.Close()
			closeNow()
			return fmt.Errorf("[signaling] tls_cert/tls_key: %w", err)
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	served := make(chan error, 2)
	go func() { served <- g.Serve(l) }()
	if cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			closeNow()
			return fmt.Errorf("[metrics] listen: %w", err)
		}
		go func() { served <- g.ServeMetrics(ml) }()
	}
	fmt.Fprintf(stderr, "siprtc gateway: SIP %s -> %s, page %s://%s/, signalling at /ws\n", g.SIPAddr(), cfg.Global.SIPServer, scheme, l.Addr())

	select {
	case <-ctx.Done():
		stop() // a second signal kills the process
		fmt.Fprintf(stderr, "siprtc gateway: stopping (%d call(s) may go on for up to %v)\n", g.ActiveCalls(), drain)
		dctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		return g.Shutdown(dctx, 10*time.Second)
	case err := <-served:
		closeNow()
		if errors.Is(err, gateway.ErrClosed) {
			return nil
		}
		return err
	}
}

func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}
