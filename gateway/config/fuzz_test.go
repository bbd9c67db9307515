package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"srproxy.conf", "siprtc.conf"} {
		raw, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(raw))
	}
	for _, seed := range []string{
		base,
		base + "[rtm2sip]\non=1\nacc_rule=1005;10[06-19]\nsip_pwd=\"a b\" c\n",
		base + "[media]\nport_min=20001\nport_max=20000\ncodecs=vp8\n[metrics]\nlisten=:8080\n[signaling]\nlisten=:8080\n",
		"[global\n[ a b ]\n=1\nkey\n\"x\n[]\nk=\"v\n\x00\n",
		"\uFEFF[global]\r\nsip_svr=[::1]:5060\r\n[rtm2sip]\r\non=1\r\nacc_rule=0[8-12]\r\n",
		"[sip]\ntransport=tls\nregister_expires=1h\noptions_interval=0\ntls_cert=a\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, warns, err := Parse(strings.NewReader(text), "fuzz.conf")
		for _, w := range warns {
			if !strings.HasPrefix(w.String(), "fuzz.conf") {
				t.Fatalf("warning without the file name: %s", w)
			}
		}
		if err != nil {
			if c != nil {
				t.Fatal("Config returned with an error")
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error is not joined: %v", err)
			}
			for _, e := range joined.Unwrap() {
				var ce *Error
				if !errors.As(e, &ce) || ce.File != "fuzz.conf" {
					t.Fatalf("error %v is not an *Error naming the file", e)
				}
			}
			return
		}
		// What the gateway relies on when Parse succeeds.
		switch {
		case !c.Global.SIPServer.IsValid() || c.Global.SIPServer.Port() == 0:
			t.Fatalf("invalid SIP server %v", c.Global.SIPServer)
		case !c.Proxy.On && !c.RTM2SIP.On:
			t.Fatal("neither proxy nor pool")
		case c.Proxy.On && c.Proxy.Account == "":
			t.Fatal("proxy on without account")
		case c.RTM2SIP.On && (len(c.RTM2SIP.Accounts) == 0 || len(c.RTM2SIP.Accounts) > MaxPoolAccounts):
			t.Fatalf("pool of %d accounts", len(c.RTM2SIP.Accounts))
		case c.Media.PortMin > c.Media.PortMax || c.Media.PortMin%2 != 0 || c.Media.PortMax%2 == 0:
			t.Fatalf("media ports %d-%d", c.Media.PortMin, c.Media.PortMax)
		case len(c.Media.AudioCodecs()) == 0:
			t.Fatal("no audio codec")
		case len(c.Signaling.AppSecret.Reveal()) < minAppSecretLen:
			t.Fatal("short app secret")
		}
		out := c.String()
		for _, secret := range []string{c.Proxy.Password.Reveal(), c.Signaling.AppSecret.Reveal()} {
			if len(secret) >= 8 && strings.Contains(out, "="+secret+"\n") {
				t.Fatalf("String() shows a secret:\n%s", out)
			}
		}
	})
}
