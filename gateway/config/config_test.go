package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const fixtures = "../../fixtures/rtx"

// base is the smallest valid file: 5 lines, so that appended lines start at line 6.
const base = "[global]\nsip_svr=127.0.0.1\n[proxy]\non=1\nsip_account=1000\n"

const generatedSecretWarning = "rtx.conf: [signaling] app_secret: not set: generated a random one for this run, so client tokens stop working at every restart; set app_secret (at least 16 characters)"

func parse(t *testing.T, text string) (*Config, []string, error) {
	t.Helper()
	c, warns, err := Parse(strings.NewReader(text), "rtx.conf")
	var ws []string
	for _, w := range warns {
		ws = append(ws, w.String())
	}
	return c, ws, err
}

func mustParse(t *testing.T, text string) (*Config, []string) {
	t.Helper()
	c, ws, err := parse(t, text)
	if err != nil {
		t.Fatalf("Parse:\n%v\nfile:\n%s", err, text)
	}
	return c, ws
}

// withoutGenerated drops the app_secret warning every file without app_secret gets.
func withoutGenerated(ws []string) []string {
	return slices.DeleteFunc(slices.Clone(ws), func(w string) bool { return w == generatedSecretWarning })
}

func TestLoadSRProxyFixture(t *testing.T) {
	path := filepath.Join(fixtures, "srproxy.conf")
	c, warns, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].Section != "signaling" || warns[0].Key != "app_secret" {
		t.Errorf("warnings = %v, want only the generated app_secret", warns)
	}
	want := Default()
	want.File = path
	want.Global = Global{AppID: "siprtc-lab", SIPServer: netip.MustParseAddrPort("127.0.0.1:5060"), SIPLocalPort: 5086}
	want.RTM2SIP = RTM2SIP{
		On:       true,
		Rule:     "1005;10[06-19]",
		Accounts: []string{"1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012", "1013", "1014", "1015", "1016", "1017", "1018", "1019"},
		Password: "1234", // from [proxy] sip_pwd
	}
	want.Proxy = Proxy{On: true, Account: "1000", Password: "1234", RTMAccount: "1086"}
	want.PSTN = PSTN{Prefix: "9"}
	want.Log = Log{Level: slog.LevelInfo, SRProxyLevel: 2, File: "rtc_sip.log", MaxFileSize: 100 << 10, Format: LogText}
	if !c.Signaling.AppSecretGenerated || len(c.Signaling.AppSecret.Reveal()) < minAppSecretLen {
		t.Errorf("app secret: generated %v, %d characters; want a generated one of at least %d", c.Signaling.AppSecretGenerated, len(c.Signaling.AppSecret.Reveal()), minAppSecretLen)
	}
	want.Signaling.AppSecret, want.Signaling.AppSecretGenerated = c.Signaling.AppSecret, true
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(%s) =\n%#v\nwant\n%#v", path, c, want)
	}
	if got := c.PSTNServer(); got != c.Global.SIPServer {
		t.Errorf("PSTNServer() = %v, want the SIP server %v (empty [pstn] ip)", got, c.Global.SIPServer)
	}
}

func TestLoadExample(t *testing.T) {
	path := filepath.Join(fixtures, "siprtc.conf")
	c, warns, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].Key != "app_secret" {
		t.Errorf("warnings = %v, want only the generated app_secret (the example leaves it commented out)", warns)
	}
	// The example shows the defaults, plus the reference deployment's accounts.
	want := Default()
	want.File = path
	want.Global = Global{AppID: "siprtc-lab", SIPServer: netip.MustParseAddrPort("127.0.0.1:5060"), SIPLocalPort: 5086}
	want.RTM2SIP = c.RTM2SIP
	want.Proxy = Proxy{On: true, Account: "1000", Password: "1234", RTMAccount: "1086"}
	want.PSTN = PSTN{Prefix: "9"}
	want.Signaling.AppSecret, want.Signaling.AppSecretGenerated = c.Signaling.AppSecret, true
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(%s) =\n%#v\nwant\n%#v", path, c, want)
	}
	if len(c.RTM2SIP.Accounts) != 15 {
		t.Errorf("pool has %d accounts, want 15", len(c.RTM2SIP.Accounts))
	}
}

// TestExampleDocumentsEveryKey keeps fixtures/rtx/siprtc.conf the complete reference: every
// key the decoder knows appears in it (commented out or set).
func TestExampleDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "siprtc.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment "#key=" lines so that they count.
	var lines []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), "="); ok && !strings.ContainsAny(k, " \t") && strings.HasPrefix(line, "#") {
			line = strings.TrimPrefix(line, "#")
		}
		lines = append(lines, line)
	}
	d := newDecoder("siprtc.conf")
	doc, err := readINI(strings.NewReader(strings.Join(lines, "\n")), d)
	if err != nil {
		t.Fatal(err)
	}
	d.doc = doc
	d.decode(Default())
	for sect, keys := range d.asked {
		for key := range keys {
			if s := doc.sections[sect]; s == nil || s.entries[key] == nil {
				t.Errorf("fixtures/rtx/siprtc.conf does not document [%s] %s", sect, key)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	c, warns := mustParse(t, base)
	if want := []string{generatedSecretWarning}; !slices.Equal(warns, want) {
		t.Errorf("warnings = %q, want %q", warns, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"sip_svr port", c.Global.SIPServer, netip.MustParseAddrPort("127.0.0.1:5060")},
		{"sip_local_port", c.Global.SIPLocalPort, uint16(5086)},
		{"rtm2sip", c.RTM2SIP.On, false},
		{"log level", c.Log.Level, slog.LevelInfo},
		{"log file", c.Log.File, ""},
		{"max_file_size", c.Log.MaxFileSize, int64(10 << 20)},
		{"log format", c.Log.Format, LogText},
		{"listen", c.Signaling.Listen, "127.0.0.1:8080"},
		{"token_ttl", c.Signaling.TokenTTL, 24 * time.Hour},
		{"port range", [2]uint16{c.Media.PortMin, c.Media.PortMax}, [2]uint16{10000, 15999}},
		{"public ip", c.Media.PublicIP.IsValid(), false},
		{"ice_lite", c.Media.ICELite, false},
		{"audio codecs", c.Media.AudioCodecs(), []string{"opus", "g722", "pcmu", "pcma"}},
		{"video codecs", c.Media.VideoCodecs(), []string{"vp8", "h264"}},
		{"metrics", c.Metrics.Listen, ""},
		{"transport", c.SIP.Transport, TransportUDP},
		{"register_expires", c.SIP.RegisterExpires, time.Hour},
		{"options_interval", c.SIP.OptionsInterval, 30 * time.Second},
		{"session_expires", c.SIP.SessionExpires, 1800 * time.Second},
		{"min_se", c.SIP.MinSE, 90 * time.Second},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(*Config) any
		want  any
	}{
		{"sip_svr port honoured", "[global]\nsip_svr=127.0.0.1:5070\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return c.Global.SIPServer }, netip.MustParseAddrPort("127.0.0.1:5070")},
		{"sip_svr tls default port", base + "[sip]\ntransport=tls\n",
			func(c *Config) any { return c.Global.SIPServer }, netip.MustParseAddrPort("127.0.0.1:5061")},
		{"sip_svr ipv6", "[global]\nsip_svr=[::1]:5080\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return c.Global.SIPServer }, netip.MustParseAddrPort("[::1]:5080")},
		{"sip_svr bare ipv6", "[global]\nsip_svr=::1\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return c.Global.SIPServer }, netip.MustParseAddrPort("[::1]:5060")},
		{"pstn server", base + "[pstn]\nip=127.0.0.2\nprefix=+86\n",
			func(c *Config) any { return []any{c.PSTNServer(), c.PSTN.Prefix} }, []any{netip.MustParseAddrPort("127.0.0.2:5060"), "+86"}},
		{"pool alone, password from rtm2sip", "[global]\nsip_svr=127.0.0.1\n[rtm2sip]\non=1\nacc_rule=20[01-03]\nsip_pwd=pool\n[proxy]\non=0\nsip_pwd=proxy\n",
			func(c *Config) any { return []any{c.RTM2SIP.Accounts, c.RTM2SIP.Password.Reveal(), c.Proxy.On} }, []any{[]string{"2001", "2002", "2003"}, "pool", false}},
		{"pool off: acc_rule not expanded", base + "[rtm2sip]\non=0\nacc_rule=10[06\n",
			func(c *Config) any { return c.RTM2SIP.Accounts }, []string(nil)},
		{"log levels", base + "[log]\nlevel=0\n",
			func(c *Config) any { return c.Log.Level }, LevelSensitive},
		{"log none", base + "[log]\nlevel=5\nformat=JSON\n",
			func(c *Config) any { return []any{c.Log.Off(), c.Log.Format} }, []any{true, LogJSON}},
		{"log max_file_size in KiB, 0 off", base + "[log]\nmax_file_size=0\n",
			func(c *Config) any { return c.Log.MaxFileSize }, int64(0)},
		{"durations in seconds or Go syntax", base + "[sip]\nregister_expires=600\noptions_interval=1m30s\n[signaling]\ntoken_ttl=3600\n",
			func(c *Config) any {
				return []time.Duration{c.SIP.RegisterExpires, c.SIP.OptionsInterval, c.Signaling.TokenTTL}
			},
			[]time.Duration{10 * time.Minute, 90 * time.Second, time.Hour}},
		{"options keep-alive off", base + "[sip]\noptions_interval=0\n",
			func(c *Config) any { return c.SIP.OptionsInterval }, time.Duration(0)},
		{"session timers", base + "[sip]\nsession_expires=600\nmin_se=2m\n",
			func(c *Config) any { return []time.Duration{c.SIP.SessionExpires, c.SIP.MinSE} },
			[]time.Duration{10 * time.Minute, 2 * time.Minute}},
		{"session timers off: min_se alone is not checked against them", base + "[sip]\nsession_expires=0\nmin_se=3600\n",
			func(c *Config) any { return []time.Duration{c.SIP.SessionExpires, c.SIP.MinSE} },
			[]time.Duration{0, time.Hour}},
		{"media", base + "[media]\nip=203.0.113.7\nport_min=30000\nport_max=30099\nice_lite=1\ncodecs=PCMU,opus\nvideo=0\n",
			func(c *Config) any {
				m := c.Media
				return []any{m.PublicIP, m.PortMin, m.PortMax, m.ICELite, m.AudioCodecs(), m.VideoCodecs()}
			},
			[]any{netip.MustParseAddr("203.0.113.7"), uint16(30000), uint16(30099), true, []string{"pcmu", "opus"}, []string(nil)}},
		{"listeners", base + "[signaling]\nlisten=127.0.0.1:9000\n[metrics]\nlisten=localhost:9090\n",
			func(c *Config) any { return []string{c.Signaling.Listen, c.Metrics.Listen} }, []string{"127.0.0.1:9000", "localhost:9090"}},
		{"rtc and rtm accepted", base + "[rtc]\nip=rtc.example.com\nport=6080\n[rtm]\nip=10.1.2.3\nport=7080\n",
			func(c *Config) any { return []CloudServer{c.RTC, c.RTM} }, []CloudServer{{"rtc.example.com", 6080}, {"10.1.2.3", 7080}}},
		{"app secret kept", base + "[signaling]\napp_secret=0123456789abcdef\n",
			func(c *Config) any { return []any{c.Signaling.AppSecret.Reveal(), c.Signaling.AppSecretGenerated} }, []any{"0123456789abcdef", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustParse(t, tt.text)
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFormat covers the line syntax SRProxy's ConfigSet reads.
func TestFormat(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(*Config) any
		want  any
		warns []string
	}{
		{"value ends at the first blank", base + "[rtm2sip]\nsip_pwd=abc def\n",
			func(c *Config) any { return c.RTM2SIP.Password.Reveal() }, "abc",
			[]string{"rtx.conf:7: [rtm2sip] sip_pwd: text after the value is ignored (SRProxy ends a value at the first blank; quote the value to keep blanks)"}},
		{"value ends at a tab", "[global]\nappid=abc\tdef\nsip_svr=127.0.0.1\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return c.Global.AppID }, "abc",
			[]string{`rtx.conf:2: [global] appid: text after the value is ignored: "def" (SRProxy ends a value at the first blank; quote the value to keep blanks)`}},
		{"trailing comment", "[global]\nappid=abc   # the app\nsip_svr=127.0.0.1 #pbx\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return []any{c.Global.AppID, c.Global.SIPServer} }, []any{"abc", netip.MustParseAddrPort("127.0.0.1:5060")}, nil},
		{"quoted value keeps blanks", "[global]\nappid=\"my app\" rest\nsip_svr=127.0.0.1\n[proxy]\non=1\nsip_account=1000\n",
			func(c *Config) any { return c.Global.AppID }, "my app",
			[]string{`rtx.conf:2: [global] appid: text after the value is ignored: "rest" (SRProxy ends a value at the first blank; quote the value to keep blanks)`}},
		{"comments, blanks, CRLF, BOM, spaced names", "\uFEFF# head\r\n\r\n  # indented comment\r\n[ global ]  # note\r\n  sip_svr =  127.0.0.1:5062\r\n\t[proxy]\r\non = 1\r\nsip_account\t=\t1000\r\n",
			func(c *Config) any { return []any{c.Global.SIPServer, c.Proxy.Account} }, []any{netip.MustParseAddrPort("127.0.0.1:5062"), "1000"}, nil},
		{"semicolon is not a comment", base + "[rtm2sip]\non=1\nacc_rule=2001;2002\n",
			func(c *Config) any { return c.RTM2SIP.Accounts }, []string{"2001", "2002"}, nil},
		{"empty value is unset", base + "[global]\nsip_local_port=\n[rtc]\nport=\n",
			func(c *Config) any { return []any{c.Global.SIPLocalPort, c.RTC.Port} }, []any{uint16(5086), uint16(0)}, nil},
		{"last value wins", base + "[global]\nsip_local_port=5090\nsip_local_port=5091\n",
			func(c *Config) any { return c.Global.SIPLocalPort }, uint16(5091),
			[]string{"rtx.conf:8: [global] sip_local_port: repeated: this value overrides line 7 (the last one wins, as in SRProxy)"}},
		{"repeated section merges", base + "[global]\nappid=x\n",
			func(c *Config) any { return []any{c.Global.AppID, c.Global.SIPServer.IsValid()} }, []any{"x", true}, nil},
		{"key before any section", "appid=x\n" + base,
			func(c *Config) any { return c.Global.AppID }, "",
			[]string{"rtx.conf:1: appid: key before the first [section], ignored (SRProxy files it under [default], which it never reads)"}},
		{"text after ]", base + "[log] level=3\n",
			func(c *Config) any { return c.Log.SRProxyLevel }, 2,
			[]string{`rtx.conf:6: [log]: text after ']' ignored: "level=3"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, warns := mustParse(t, tt.text)
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if got := withoutGenerated(warns); !slices.Equal(got, tt.warns) {
				t.Errorf("warnings\n got: %q\nwant: %q", got, tt.warns)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"unknown SRProxy key", base + "[global]\nregion=cn\n",
			[]string{"rtx.conf:7: [global] region: unknown key, ignored"}},
		{"early SRProxy key", base + "[proxy]\naccount=1000\n",
			[]string{"rtx.conf:7: [proxy] account: unknown key, ignored (early SRProxy name: write sip_account)"}},
		{"case-sensitive key", base + "[log]\nLevel=3\n",
			[]string{"rtx.conf:7: [log] Level: unknown key, ignored (names are case-sensitive, as in SRProxy: did you mean level?)"}},
		{"unknown section", base + "[extra]\nx=1\n",
			[]string{"rtx.conf:6: [extra]: unknown section, ignored"}},
		{"case-sensitive section", base + "[Log]\nlevel=1\n",
			[]string{"rtx.conf:6: [Log]: unknown section, ignored (names are case-sensitive, as in SRProxy: did you mean [log]?)"}},
		{"early SRProxy section", base + "[ivr]\non=1\n",
			[]string{"rtx.conf:6: [ivr]: unknown section, ignored (early SRProxy IVR mode, which siprtc does not have)"}},
		{"mixed-width range", base + "[rtm2sip]\non=1\nacc_rule=20[1-12]\n",
			[]string{`rtx.conf:8: [rtm2sip] acc_rule: token 1 "20[1-12]" expands to accounts of different lengths (201 ... 2012): numbers are zero-padded to the width of from, as SRProxy does; write from with as many digits as to if that is not what you mean`}},
		{"plain numbers of growing width are fine", base + "[rtm2sip]\non=1\nacc_rule=[1-12]\n", nil},
		{"public plain-HTTP signalling", base + "[signaling]\nlisten=:8080\n",
			[]string{"rtx.conf:7: [signaling] listen: listens beyond this host over plain HTTP: browsers elsewhere refuse microphone and camera access without TLS; set tls_cert and tls_key or put a TLS proxy in front"}},
		{"public signalling with TLS", base + "[signaling]\nlisten=:8443\ntls_cert=c.pem\ntls_key=k.pem\n", nil},
		{"SIP TLS files without TLS", base + "[sip]\ntransport=tcp\nca=ca.pem\n",
			[]string{"rtx.conf:8: [sip] ca: has no effect unless transport=tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns := mustParse(t, tt.text)
			if got := withoutGenerated(warns); !slices.Equal(got, tt.want) {
				t.Errorf("warnings\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // the joined message: one line per error
		kind error
	}{
		// [global]
		{"sip_svr port not a number", "[global]\nsip_svr=10.0.0.1:abc\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:2: [global] sip_svr "10.0.0.1:abc": want IP:port`, ErrInvalid},
		{"sip_svr host name", "[global]\nsip_svr=pbx.example.com:5060\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:2: [global] sip_svr "pbx.example.com:5060": want IP:port (host names are not resolved: write the server's IP address)`, ErrInvalid},
		{"sip_svr port 0", "[global]\nsip_svr=10.0.0.1:0\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:2: [global] sip_svr "10.0.0.1:0": want IP:port with a port number 1..65535`, ErrInvalid},
		{"sip_svr unspecified", "[global]\nsip_svr=0.0.0.0:5060\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:2: [global] sip_svr "0.0.0.0:5060": want IP:port of one server (not an unspecified or multicast address)`, ErrInvalid},
		{"sip_svr missing", "[global]\nappid=x\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:1: [global] sip_svr: missing; want IP:port of the SIP server (the PBX), e.g. 127.0.0.1:5060`, ErrMissing},
		{"sip_svr and [global] missing", "[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf: [global] sip_svr: missing; want IP:port of the SIP server (the PBX), e.g. 127.0.0.1:5060`, ErrMissing},
		{"sip_svr empty", "[global]\nsip_svr=\n[proxy]\non=1\nsip_account=1000\n",
			`rtx.conf:2: [global] sip_svr "": want IP:port of the SIP server (the PBX), e.g. 127.0.0.1:5060`, ErrMissing},
		{"sip_local_port", base + "[global]\nsip_local_port=abc\n",
			`rtx.conf:7: [global] sip_local_port "abc": want a port number 1..65535`, ErrInvalid},
		{"sip_local_port out of range", base + "[global]\nsip_local_port=70000\n",
			`rtx.conf:7: [global] sip_local_port "70000": want a port number 1..65535`, ErrInvalid},
		{"octal integer", base + "[global]\nsip_local_port=05086\n",
			`rtx.conf:7: [global] sip_local_port "05086": want a port number 1..65535 without a leading 0 (SRProxy would read it as octal)`, ErrInvalid},
		{"hex integer", base + "[global]\nsip_local_port=0x13de\n",
			`rtx.conf:7: [global] sip_local_port "0x13de": want a port number 1..65535 in decimal (SRProxy would read 0x as hexadecimal)`, ErrInvalid},
		// [proxy] and [rtm2sip]
		{"flag", "[global]\nsip_svr=127.0.0.1\n[proxy]\non=yes\nsip_account=1000\n",
			"rtx.conf:4: [proxy] on \"yes\": want 0 or 1\n" +
				"rtx.conf: want [proxy] on=1 or [rtm2sip] on=1: with both off the gateway has no SIP account to call from or to", ErrInvalid},
		{"proxy on without account", "[global]\nsip_svr=127.0.0.1\n[proxy]\non=1\n",
			`rtx.conf:4: [proxy] sip_account: missing; want the proxy's SIP account when [proxy] on=1`, ErrMissing},
		{"proxy account empty", "[global]\nsip_svr=127.0.0.1\n[proxy]\non=1\nsip_account=\n",
			`rtx.conf:5: [proxy] sip_account "": want the proxy's SIP account when [proxy] on=1`, ErrMissing},
		{"proxy account with domain", "[global]\nsip_svr=127.0.0.1\n[proxy]\non=1\nsip_account=1000@pbx\n",
			`rtx.conf:5: [proxy] sip_account "1000@pbx": want a SIP user part without @domain (the domain is [global] sip_svr)`, ErrInvalid},
		{"nothing on", "[global]\nsip_svr=127.0.0.1\n[proxy]\non=0\n[rtm2sip]\non=0\n",
			`rtx.conf: want [proxy] on=1 or [rtm2sip] on=1: with both off the gateway has no SIP account to call from or to`, ErrConflict},
		{"rtm2sip on without acc_rule", base + "[rtm2sip]\non=1\n",
			`rtx.conf:7: [rtm2sip] acc_rule: missing; want the pool's accounts (e.g. 1005;10[06-19]) when [rtm2sip] on=1`, ErrMissing},
		{"rtm2sip on with empty acc_rule", base + "[rtm2sip]\non=1\nacc_rule=\n",
			`rtx.conf:8: [rtm2sip] acc_rule "": want the pool's accounts (e.g. 1005;10[06-19]) when [rtm2sip] on=1`, ErrMissing},
		{"malformed acc_rule", base + "[rtm2sip]\non=1\nacc_rule=1005;10[06-19\n",
			`rtx.conf:8: [rtm2sip] acc_rule "1005;10[06-19": token 2 "10[06-19": want prefix[from-to] ending with ']'`, ErrAccRule},
		{"duplicated accounts", base + "[rtm2sip]\non=1\nacc_rule=1005;10[05-19]\n",
			`rtx.conf:8: [rtm2sip] acc_rule "1005;10[05-19]": token 2 "10[05-19]": want each account once: "1005" also comes from token 1 "1005"`, ErrAccRule},
		{"proxy account in the pool", base + "[rtm2sip]\non=1\nacc_rule=0999;1[000-009]\n",
			`rtx.conf:8: [rtm2sip] acc_rule "0999;1[000-009]": token 2 "1[000-009]" contains the proxy account "1000" ([proxy] sip_account, line 5): want the proxy account outside the pool`, ErrConflict},
		// [pstn], [log], [rtc], [rtm]
		{"pstn ip", base + "[pstn]\nip=pstn-gw\nprefix=9\n",
			`rtx.conf:7: [pstn] ip "pstn-gw": want IP:port (host names are not resolved: write the server's IP address)`, ErrInvalid},
		{"pstn prefix", base + "[pstn]\nprefix=9#\n",
			`rtx.conf:7: [pstn] prefix "9#": want a SIP user part (letters, digits, -_.!~*'()&=+$,?/%), found "#"`, ErrInvalid},
		{"log level", base + "[log]\nlevel=6\n",
			`rtx.conf:7: [log] level "6": want 0 (SENSITIVE), 1 (DEBUG), 2 (INFO), 3 (WARNING), 4 (ERROR) or 5 (NONE)`, ErrInvalid},
		{"log max_file_size", base + "[log]\nmax_file_size=-1\n",
			`rtx.conf:7: [log] max_file_size "-1": want a size in KiB, 0 (no rotation) .. 1073741824`, ErrInvalid},
		{"log format", base + "[log]\nformat=xml\n",
			`rtx.conf:7: [log] format "xml": want text or json`, ErrInvalid},
		{"rtc ip", base + "[rtc]\nip=rtc_server\nport=abc\n",
			"rtx.conf:7: [rtc] ip \"rtc_server\": want an IP address or host name\n" +
				`rtx.conf:8: [rtc] port "abc": want a port number 1..65535`, ErrInvalid},
		// [signaling]
		{"listen without port", base + "[signaling]\nlisten=8080\n",
			`rtx.conf:7: [signaling] listen "8080": want host:port to listen on, e.g. 127.0.0.1:8080 or :8080 (host: an IP address, localhost or nothing)`, ErrInvalid},
		{"listen host name", base + "[signaling]\nlisten=gw.example.com:8080\n",
			`rtx.conf:7: [signaling] listen "gw.example.com:8080": want host:port to listen on, e.g. 127.0.0.1:8080 or :8080 (host: an IP address, localhost or nothing)`, ErrInvalid},
		{"listen port", base + "[signaling]\nlisten=127.0.0.1:0\n",
			`rtx.conf:7: [signaling] listen "127.0.0.1:0": want a port number 1..65535 after ':'`, ErrInvalid},
		{"short app_secret, value not shown", base + "[signaling]\napp_secret=hunter2\n",
			`rtx.conf:7: [signaling] app_secret: want at least 16 characters`, ErrInvalid},
		{"token_ttl", base + "[signaling]\ntoken_ttl=10s\n",
			`rtx.conf:7: [signaling] token_ttl "10s": want a duration of at least 1m0s (seconds, or a Go duration like 90s or 1h)`, ErrInvalid},
		{"half a TLS pair", base + "[signaling]\ntls_cert=c.pem\n",
			`rtx.conf:7: [signaling] tls_key: missing; want the key of tls_cert`, ErrMissing},
		{"unknown siprtc key", base + "[signaling]\nport=8080\n",
			`rtx.conf:7: [signaling] port: unknown key: want one of app_secret, listen, tls_cert, tls_key, token_ttl`, ErrUnknownKey},
		// [media]
		{"media ip", base + "[media]\nip=my-host\n",
			`rtx.conf:7: [media] ip "my-host": want an IP address (the public address of this host)`, ErrInvalid},
		{"media ip unspecified", base + "[media]\nip=0.0.0.0\n",
			`rtx.conf:7: [media] ip "0.0.0.0": want the public unicast IP address of this host`, ErrInvalid},
		{"privileged port", base + "[media]\nport_min=100\n",
			`rtx.conf:7: [media] port_min "100": want a port number 1024..65535`, ErrInvalid},
		{"odd port_min, even port_max", base + "[media]\nport_min=20001\nport_max=20100\n",
			"rtx.conf:7: [media] port_min \"20001\": want an even port: RTP takes the even port of each RTP/RTCP pair (RFC 3550)\n" +
				`rtx.conf:8: [media] port_max "20100": want an odd port, so that the range ends with a whole RTP/RTCP pair`, ErrInvalid},
		{"inverted port range", base + "[media]\nport_min=30000\nport_max=20001\n",
			`rtx.conf:8: [media] port_max "20001": want port_min <= port_max, found the range 30000-20001`, ErrConflict},
		{"inverted by a default", base + "[media]\nport_min=20000\n",
			`rtx.conf:7: [media] port_min "20000": want port_min <= port_max, found the range 20000-15999`, ErrConflict},
		{"sip_local_port in the media range", base + "[global]\nsip_local_port=12000\n",
			`rtx.conf:7: [global] sip_local_port "12000": want a port outside the media range 10000-15999 ([media] port_min/port_max)`, ErrConflict},
		{"media range over sip_local_port", base + "[media]\nport_min=5000\nport_max=5999\n",
			`rtx.conf:7: [media] port_min "5000": want a media range 5000-5999 that leaves out [global] sip_local_port 5086`, ErrConflict},
		{"unknown codec", base + "[media]\ncodecs=opus,g729\n",
			`rtx.conf:7: [media] codecs "opus,g729": want a comma-separated list of opus, g722, pcmu, pcma, vp8, h264 without blanks (telephone-event is always offered); "g729" is not one`, ErrInvalid},
		{"repeated codec", base + "[media]\ncodecs=opus,pcmu,opus\n",
			`rtx.conf:7: [media] codecs "opus,pcmu,opus": want each codec once; "opus" is repeated`, ErrInvalid},
		{"no audio codec", base + "[media]\ncodecs=vp8\n",
			`rtx.conf:7: [media] codecs "vp8": want at least one audio codec (opus, g722, pcmu or pcma)`, ErrConflict},
		{"video without video codec", base + "[media]\ncodecs=opus\n",
			`rtx.conf:7: [media] codecs "opus": want a video codec (vp8 or h264) in codecs when video=1, or video=0`, ErrConflict},
		{"ice_lite", base + "[media]\nice_lite=true\n",
			`rtx.conf:7: [media] ice_lite "true": want 0 or 1`, ErrInvalid},
		// [metrics] and [sip]
		{"metrics on the signalling address", base + "[signaling]\nlisten=127.0.0.1:8080\n[metrics]\nlisten=:8080\n",
			`rtx.conf:9: [metrics] listen ":8080": want an address other than [signaling] listen "127.0.0.1:8080"`, ErrConflict},
		{"transport", base + "[sip]\ntransport=sctp\n",
			`rtx.conf:7: [sip] transport "sctp": want udp or tcp or tls`, ErrInvalid},
		{"register_expires", base + "[sip]\nregister_expires=5\n",
			`rtx.conf:7: [sip] register_expires "5": want a duration of at least 10s (seconds, or a Go duration like 90s or 1h)`, ErrInvalid},
		{"options_interval", base + "[sip]\noptions_interval=-1s\n",
			`rtx.conf:7: [sip] options_interval "-1s": want 0 (off) or a duration of at least 1s (seconds, or a Go duration like 90s or 1h)`, ErrInvalid},
		{"session_expires below RFC 4028's 90 s", base + "[sip]\nsession_expires=60\n",
			`rtx.conf:7: [sip] session_expires "60": want 0 (off) or a duration of at least 1m30s (seconds, or a Go duration like 90s or 1h)`, ErrInvalid},
		{"min_se below RFC 4028's 90 s", base + "[sip]\nmin_se=89\n",
			`rtx.conf:7: [sip] min_se "89": want a duration of at least 1m30s (seconds, or a Go duration like 90s or 1h)`, ErrInvalid},
		{"session_expires below min_se", base + "[sip]\nsession_expires=100\nmin_se=120\n",
			`rtx.conf:7: [sip] session_expires "100": want session_expires (1m40s) >= min_se (2m0s), or session_expires=0 (off)`, ErrConflict},
		{"min_se above the default session_expires", base + "[sip]\nmin_se=2h\n",
			`rtx.conf:7: [sip] min_se "2h": want session_expires (30m0s) >= min_se (2h0m0s), or session_expires=0 (off)`, ErrConflict},
		{"early SRProxy pool keys", base + "[sip]\nacc_prefix=10\nacc_pwd=1234\n",
			"rtx.conf:7: [sip] acc_prefix: unknown key: want one of ca, min_se, options_interval, register_expires, session_expires, tls_cert, tls_key, transport (early SRProxy pool key: write the pool as [rtm2sip] on=1 and acc_rule=<prefix>[from-to])\n" +
				`rtx.conf:8: [sip] acc_pwd: unknown key: want one of ca, min_se, options_interval, register_expires, session_expires, tls_cert, tls_key, transport (early SRProxy pool key: write the pool password as [rtm2sip] sip_pwd)`, ErrUnknownKey},
		// syntax
		{"unclosed section", base + "[global\n",
			`rtx.conf:6: section "[global": want ']' to close the section name`, ErrSyntax},
		{"two words in a section", base + "[my section]\n",
			`rtx.conf:6: section "[my section]": want one word between '[' and ']'`, ErrSyntax},
		{"empty section name", base + "[ ]\n",
			`rtx.conf:6: section "[]": want a section name between '[' and ']'`, ErrSyntax},
		{"no =", base + "[global]\nappid\n",
			`rtx.conf:7: [global] appid: want key=value, found no '='`, ErrSyntax},
		{"blank inside a key, value not shown", base + "sip pwd=secret\n",
			`rtx.conf:6: [proxy] sip: want '=' after the key (a key has no blanks)`, ErrSyntax},
		{"no key", base + "=1\n",
			`rtx.conf:6: [proxy]: want a key before '='`, ErrSyntax},
		{"unclosed quote", base + "rtm_account=\"1086\n",
			`rtx.conf:6: [proxy] rtm_account: want a closing '"' on the same line`, ErrSyntax},
		{"control character", base + "rtm_account=10\x0086\n",
			`rtx.conf:6: [proxy]: want printable text, found control character '\x00' at column 15`, ErrSyntax},
		{"line too long", base + "appid=" + strings.Repeat("x", maxLineLen) + "\n",
			`rtx.conf:6: [proxy]: want lines shorter than 64 KiB; reading stopped here`, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parse(t, tt.text)
			if err == nil {
				t.Fatalf("Parse succeeded (%v), want\n%s", c, tt.want)
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v: not %v", err, tt.kind)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "rtx.conf" {
				t.Errorf("error %v: want *Error naming rtx.conf", err)
			}
		})
	}
}

// TestAllErrors: one file, every error reported in line order, absent keys last.
func TestAllErrors(t *testing.T) {
	text := "[global]\n" + // 1
		"sip_local_port=abc\n" + // 2
		"[proxy]\n" + // 3
		"on=2\n" + // 4
		"[media]\n" + // 5
		"port_min=x\n" + // 6
		"codecs=g729\n" + // 7
		"[sip]\n" + // 8
		"bogus=1\n" // 9
	_, _, err := parse(t, text)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		`rtx.conf:1: [global] sip_svr: missing; want IP:port of the SIP server (the PBX), e.g. 127.0.0.1:5060`,
		`rtx.conf:2: [global] sip_local_port "abc": want a port number 1..65535`,
		`rtx.conf:4: [proxy] on "2": want 0 or 1`,
		`rtx.conf:6: [media] port_min "x": want a port number 1024..65535`,
		`rtx.conf:7: [media] codecs "g729": want a comma-separated list of opus, g722, pcmu, pcma, vp8, h264 without blanks (telephone-event is always offered); "g729" is not one`,
		`rtx.conf:9: [sip] bogus: unknown key: want one of ca, min_se, options_interval, register_expires, session_expires, tls_cert, tls_key, transport`,
		`rtx.conf: want [proxy] on=1 or [rtm2sip] on=1: with both off the gateway has no SIP account to call from or to`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors\n got: %q\nwant: %q", got, want)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(want) {
		t.Errorf("joined %d errors, want %d", n, len(want))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "rtx.conf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestLoadNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rtx.conf")
	if err := os.WriteFile(path, []byte("[global]\nsip_svr=1.2.3\n[proxy]\non=1\nsip_account=1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path)
	if want := path + `:2: [global] sip_svr "1.2.3": want IP:port`; err == nil || err.Error() != want {
		t.Errorf("Load: %v, want %s", err, want)
	}
}

func TestRedaction(t *testing.T) {
	const proxyPwd, poolPwd, appSecret = "proxy-pw-7431", "pool-pw-9902", "app-secret-5521-xyz"
	text := base + "sip_pwd=" + proxyPwd + "\n[rtm2sip]\non=1\nacc_rule=2001\nsip_pwd=" + poolPwd + " trailing-" + poolPwd + "\n[signaling]\napp_secret=" + appSecret + "\n"
	c, warns := mustParse(t, text)
	if c.Proxy.Password.Reveal() != proxyPwd || c.RTM2SIP.Password.Reveal() != poolPwd || c.Signaling.AppSecret.Reveal() != appSecret {
		t.Fatalf("secrets not kept: %q %q %q", c.Proxy.Password.Reveal(), c.RTM2SIP.Password.Reveal(), c.Signaling.AppSecret.Reveal())
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "proxy", c.Proxy, "secret", c.Signaling.AppSecret)
	jsonOut, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", *c),
		"%#v":      fmt.Sprintf("%#v", *c),
		"%s":       fmt.Sprintf("%s %q %x", c.Proxy.Password, c.Proxy.Password, c.Proxy.Password),
		"slog":     logged.String(),
		"json":     string(jsonOut),
		"warnings": strings.Join(warns, "\n"),
	}
	for name, out := range outputs {
		for _, secret := range []string{proxyPwd, poolPwd, appSecret} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output shows a secret:\n%s", name, out)
			}
		}
		if name != "warnings" && !strings.Contains(out, redacted) {
			t.Errorf("%s output has no %q:\n%s", name, redacted, out)
		}
	}
	for _, want := range []string{"sip_pwd=***\n", "app_secret=***\n", "sip_svr=127.0.0.1:5060\n", "acc_rule=2001\n# 1 accounts\n"} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("String() lacks %q:\n%s", want, c.String())
		}
	}

	// Errors never quote a secret either.
	for _, bad := range []string{
		base + "[signaling]\napp_secret=" + proxyPwd + "\n",
		base + "sip_pwd " + proxyPwd + "\n",
	} {
		_, _, err := parse(t, bad)
		if err == nil || strings.Contains(err.Error(), proxyPwd) {
			t.Errorf("error %v shows the secret", err)
		}
	}
}

func TestDefaultIsUsable(t *testing.T) {
	c := Default()
	c2 := Default()
	c.Media.Codecs[0] = "pcmu"
	if c2.Media.Codecs[0] != "opus" {
		t.Error("Default() shares its codec slice between calls")
	}
	if c.Log.Off() || c.Signaling.Listen != DefaultSignalingListen {
		t.Errorf("Default() = %+v", c)
	}
}
