package main

import (
	"errors"
	"fmt"
	"io"
	"time"

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
		}
	}
	fs := newFlagSet("siprtc gateway", "siprtc gateway check [--config rtx.conf]\n"+
		"       siprtc gateway token [--config rtx.conf] --user USER [--ttl 24h]\n\n"+
		"The SIP <-> WebRTC gateway. 'check' validates an rtx.conf (SRProxy's format plus siprtc's\n"+
		"sections) and prints the effective configuration with secrets hidden; 'token' makes a\n"+
		"client login token with the configuration's app_secret. Running the gateway itself lands\n"+
		"with the call layer (issue 4).", stdout, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown subcommand %q (want check or token)", fs.Arg(0))
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
