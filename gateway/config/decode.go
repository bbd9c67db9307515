package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// srproxySections are SRProxy's own sections: unknown keys in them are warnings.
var srproxySections = map[string]bool{
	"global": true, "rtm2sip": true, "proxy": true, "pstn": true, "log": true, "rtc": true, "rtm": true,
}

// siprtcSections are siprtc's additions: unknown keys in them are errors.
var siprtcSections = map[string]bool{"signaling": true, "media": true, "metrics": true, "sip": true}

// secretKeys never appear in messages or String.
var secretKeys = map[string]bool{"proxy/sip_pwd": true, "rtm2sip/sip_pwd": true, "signaling/app_secret": true}

// legacyHints name the current spelling of keys and sections of the early SRProxy layout
// (its root main.cpp: [sip] acc_prefix/acc_rule/acc_pwd, [proxy] account/pwd, [ivr]).
var legacyHints = map[string]string{
	"proxy/account":  "early SRProxy name: write sip_account",
	"proxy/pwd":      "early SRProxy name: write sip_pwd",
	"sip/acc_prefix": "early SRProxy pool key: write the pool as [rtm2sip] on=1 and acc_rule=<prefix>[from-to]",
	"sip/acc_rule":   "early SRProxy pool key: write the pool as [rtm2sip] on=1 and acc_rule=<prefix>[from-to]",
	"sip/acc_pwd":    "early SRProxy pool key: write the pool password as [rtm2sip] sip_pwd",
	"ivr":            "early SRProxy IVR mode, which siprtc does not have",
}

const minAppSecretLen = 16

// decoder turns a document into a Config, collecting every error and warning.
type decoder struct {
	file  string
	doc   *document
	asked map[string]map[string]bool // keys the decoder looked up: the known keys
	errs  []*Error
	warns []Warning
	pool  []accToken
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, asked: map[string]map[string]bool{}}
}

func (d *decoder) errorAt(line int, sect, key string, kind error, msg string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Section: sect, Key: key, Msg: msg, Err: kind})
}

func (d *decoder) warnAt(line int, sect, key, msg string) {
	d.warns = append(d.warns, Warning{File: d.file, Line: line, Section: sect, Key: key, Msg: msg})
}

// invalid reports a bad value, quoting it unless the key is a secret.
func (d *decoder) invalid(sect, key string, e *entry, kind error, msg string) {
	err := &Error{File: d.file, Line: e.line, Section: sect, Key: key, Msg: msg, Err: kind}
	if !secretKeys[sect+"/"+key] {
		err.Value, err.ShowValue = e.value, true
	}
	d.errs = append(d.errs, err)
}

// missing reports a required key that is absent (line 0) or empty (its line).
func (d *decoder) missing(sect, key, want string) {
	if e := d.entry(sect, key); e != nil {
		d.invalid(sect, key, e, ErrMissing, want)
		return
	}
	// At the section's header when it exists (where the key belongs), else without a line.
	d.errorAt(d.lineOf(sect, key), sect, key, ErrMissing, "missing; "+want)
}

// entry returns the key's entry even when its value is empty, without marking it known.
func (d *decoder) entry(sect, key string) *entry {
	if s := d.doc.sections[sect]; s != nil {
		return s.entries[key]
	}
	return nil
}

// lineOf is the line of a key, or of its section, or 0.
func (d *decoder) lineOf(sect, key string) int {
	if e := d.entry(sect, key); e != nil {
		return e.line
	}
	if s := d.doc.sections[sect]; s != nil {
		return s.line
	}
	return 0
}

// lookup marks the key as known and returns its entry when it has a value. An empty value
// is unset, as in SRProxy.
func (d *decoder) lookup(sect, key string) *entry {
	if d.asked[sect] == nil {
		d.asked[sect] = map[string]bool{}
	}
	d.asked[sect][key] = true
	e := d.entry(sect, key)
	if e == nil || e.value == "" {
		return nil
	}
	return e
}

func (d *decoder) str(sect, key string, dst *string) *entry {
	e := d.lookup(sect, key)
	if e != nil {
		*dst = e.value
	}
	return e
}

func (d *decoder) secret(sect, key string, dst *Secret) *entry {
	e := d.lookup(sect, key)
	if e != nil {
		*dst = Secret(e.value)
	}
	return e
}

func (d *decoder) flag(sect, key string, dst *bool) *entry {
	e := d.lookup(sect, key)
	if e == nil {
		return nil
	}
	switch e.value {
	case "0":
		*dst = false
	case "1":
		*dst = true
	default:
		d.invalid(sect, key, e, ErrInvalid, "want 0 or 1")
	}
	return e
}

// integer reads a decimal integer in lo..hi; want describes the range for messages.
func (d *decoder) integer(sect, key string, lo, hi int64, want string, dst *int64) *entry {
	e := d.lookup(sect, key)
	if e == nil {
		return nil
	}
	v := e.value
	switch {
	case len(v) > 1 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X'):
		d.invalid(sect, key, e, ErrInvalid, "want "+want+" in decimal (SRProxy would read 0x as hexadecimal)")
		return e
	case len(v) > 1 && v[0] == '0' && isDigits(v):
		d.invalid(sect, key, e, ErrInvalid, "want "+want+" without a leading 0 (SRProxy would read it as octal)")
		return e
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		d.invalid(sect, key, e, ErrInvalid, "want "+want)
		return e
	}
	*dst = n
	return e
}

func (d *decoder) port(sect, key string, dst *uint16) *entry {
	var n int64
	e := d.integer(sect, key, 1, 65535, "a port number 1..65535", &n)
	if n != 0 {
		*dst = uint16(n)
	}
	return e
}

// duration reads seconds ("30") or a Go duration ("30s", "1h"), at least lowest, or 0 when
// zeroOff.
func (d *decoder) duration(sect, key string, lowest time.Duration, zeroOff bool, dst *time.Duration) *entry {
	e := d.lookup(sect, key)
	if e == nil {
		return nil
	}
	want := "want a duration of at least " + lowest.String() + " (seconds, or a Go duration like 90s or 1h)"
	if zeroOff {
		want = "want 0 (off) or a duration of at least " + lowest.String() + " (seconds, or a Go duration like 90s or 1h)"
	}
	var v time.Duration
	if isDigits(e.value) {
		n, err := strconv.ParseInt(e.value, 10, 64)
		if err != nil || n > int64((1<<63-1)/time.Second) {
			d.invalid(sect, key, e, ErrInvalid, want)
			return e
		}
		v = time.Duration(n) * time.Second
	} else {
		var err error
		if v, err = time.ParseDuration(e.value); err != nil {
			d.invalid(sect, key, e, ErrInvalid, want)
			return e
		}
	}
	if v < lowest && !(zeroOff && v == 0) {
		d.invalid(sect, key, e, ErrInvalid, want)
		return e
	}
	*dst = v
	return e
}

// listen reads a host:port for net.Listen: host empty (all interfaces), localhost or an IP.
func (d *decoder) listen(sect, key string, dst *string) *entry {
	e := d.lookup(sect, key)
	if e == nil {
		return nil
	}
	const want = "want host:port to listen on, e.g. 127.0.0.1:8080 or :8080 (host: an IP address, localhost or nothing)"
	host, port, err := net.SplitHostPort(e.value)
	if err != nil || !isDigits(port) {
		d.invalid(sect, key, e, ErrInvalid, want)
		return e
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		d.invalid(sect, key, e, ErrInvalid, "want a port number 1..65535 after ':'")
		return e
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			d.invalid(sect, key, e, ErrInvalid, want)
			return e
		}
	}
	*dst = e.value
	return e
}

// enum reads one of choices, case-insensitively.
func (d *decoder) enum(sect, key string, choices []string, dst *string) *entry {
	e := d.lookup(sect, key)
	if e == nil {
		return nil
	}
	v := strings.ToLower(e.value)
	if !slices.Contains(choices, v) {
		d.invalid(sect, key, e, ErrInvalid, "want "+strings.Join(choices, " or "))
		return e
	}
	*dst = v
	return e
}

// parseServer reads "IP:port" or "IP" (port defPort), as SRProxy's SetSipSvr splits sip_svr,
// but with IPv6 in brackets and the port checked. It returns what is wrong, or "".
func parseServer(v string, defPort uint16) (netip.AddrPort, string) {
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		addr, err2 := netip.ParseAddr(v)
		if err2 != nil {
			host, _, splitErr := net.SplitHostPort(v)
			if splitErr != nil {
				host = v
			}
			if _, ipErr := netip.ParseAddr(host); ipErr != nil && looksLikeHostName(host) {
				return ap, "want IP:port (host names are not resolved: write the server's IP address)"
			}
			return ap, "want IP:port"
		}
		ap = netip.AddrPortFrom(addr, defPort)
	}
	if ap.Port() == 0 {
		return ap, "want IP:port with a port number 1..65535"
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return ap, "want IP:port of one server (not an unspecified or multicast address)"
	}
	return ap, ""
}

// looksLikeHostName accepts RFC 1123 host names: dot-separated labels of letters, digits
// and '-', not all-numeric.
func looksLikeHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	letter := false
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				letter = true
			case c >= '0' && c <= '9':
			default:
				return false
			}
		}
	}
	return letter
}

// decode reads every known key. Every lookup is unconditional: the keys looked up are the
// known keys, against which unknown ones are reported.
func (d *decoder) decode(c *Config) {
	d.decodeSIP(c) // first: the default port of sip_svr depends on the transport
	d.decodeGlobal(c)
	d.decodeProxy(c)
	d.decodeRTM2SIP(c)
	d.decodePSTN(c)
	d.decodeLog(c)
	d.decodeCloud("rtc", &c.RTC)
	d.decodeCloud("rtm", &c.RTM)
	d.decodeSignaling(c)
	d.decodeMedia(c)
	d.listen("metrics", "listen", &c.Metrics.Listen)
}

func (d *decoder) defaultSIPPort(c *Config) uint16 {
	if c.SIP.Transport == TransportTLS {
		return DefaultSIPTLSPort
	}
	return DefaultSIPPort
}

func (d *decoder) decodeSIP(c *Config) {
	transport := string(c.SIP.Transport)
	d.enum("sip", "transport", []string{"udp", "tcp", "tls"}, &transport)
	c.SIP.Transport = Transport(transport)
	d.duration("sip", "register_expires", 10*time.Second, false, &c.SIP.RegisterExpires)
	d.duration("sip", "options_interval", time.Second, true, &c.SIP.OptionsInterval)
	d.duration("sip", "session_expires", DefaultMinSE, true, &c.SIP.SessionExpires)
	d.duration("sip", "min_se", DefaultMinSE, false, &c.SIP.MinSE)
	d.str("sip", "tls_cert", &c.SIP.TLSCert)
	d.str("sip", "tls_key", &c.SIP.TLSKey)
	d.str("sip", "ca", &c.SIP.CA)
}

func (d *decoder) decodeGlobal(c *Config) {
	d.str("global", "appid", &c.Global.AppID)
	if e := d.lookup("global", "sip_svr"); e == nil {
		d.missing("global", "sip_svr", "want IP:port of the SIP server (the PBX), e.g. 127.0.0.1:5060")
	} else if ap, msg := parseServer(e.value, d.defaultSIPPort(c)); msg != "" {
		d.invalid("global", "sip_svr", e, ErrInvalid, msg)
	} else {
		c.Global.SIPServer = ap
	}
	d.port("global", "sip_local_port", &c.Global.SIPLocalPort)
}

func (d *decoder) account(sect, key string, dst *string) {
	if e := d.str(sect, key, dst); e != nil {
		if msg := checkAccount(e.value); msg != "" {
			d.invalid(sect, key, e, ErrInvalid, msg)
		}
	}
}

func (d *decoder) decodeProxy(c *Config) {
	d.flag("proxy", "on", &c.Proxy.On)
	d.account("proxy", "sip_account", &c.Proxy.Account)
	d.secret("proxy", "sip_pwd", &c.Proxy.Password)
	d.account("proxy", "rtm_account", &c.Proxy.RTMAccount)
}

func (d *decoder) decodeRTM2SIP(c *Config) {
	d.flag("rtm2sip", "on", &c.RTM2SIP.On)
	rule := d.str("rtm2sip", "acc_rule", &c.RTM2SIP.Rule)
	if d.secret("rtm2sip", "sip_pwd", &c.RTM2SIP.Password) == nil {
		c.RTM2SIP.Password = c.Proxy.Password
	}
	if !c.RTM2SIP.On || rule == nil {
		return // SRProxy reads acc_rule only when on; an empty one is checked in check
	}
	tokens, err := expandAccTokens(rule.value)
	if err != nil {
		var ae *AccRuleError
		if !errors.As(err, &ae) {
			ae = &AccRuleError{Msg: err.Error()}
		}
		msg := ae.Msg
		if ae.Pos > 0 {
			msg = "token " + strconv.Itoa(ae.Pos) + " " + quoteValue(ae.Token) + ": " + ae.Msg
		}
		d.invalid("rtm2sip", "acc_rule", rule, ae, msg)
		return
	}
	d.pool = tokens
	for _, t := range tokens {
		c.RTM2SIP.Accounts = append(c.RTM2SIP.Accounts, t.accounts...)
		// "[1-99]" naturally gives 1..99; "20[1-99]" or "[08-100]" giving accounts of two
		// lengths is more likely a typo for "20[01-99]".
		if t.mixedWidth && (t.prefix != "" || t.from[0] == '0') {
			first, last := t.accounts[0], t.accounts[len(t.accounts)-1]
			d.warnAt(rule.line, "rtm2sip", "acc_rule", fmt.Sprintf(
				"token %d %s expands to accounts of different lengths (%s ... %s): numbers are zero-padded to the width of from, as SRProxy does; write from with as many digits as to if that is not what you mean",
				t.pos, quoteValue(t.text), first, last))
		}
	}
}

func (d *decoder) decodePSTN(c *Config) {
	if e := d.lookup("pstn", "ip"); e != nil {
		if ap, msg := parseServer(e.value, d.defaultSIPPort(c)); msg != "" {
			d.invalid("pstn", "ip", e, ErrInvalid, msg)
		} else {
			c.PSTN.Server = ap
		}
	}
	if e := d.str("pstn", "prefix", &c.PSTN.Prefix); e != nil {
		if msg := checkAccount(e.value); msg != "" {
			d.invalid("pstn", "prefix", e, ErrInvalid, msg)
		}
	}
}

// srproxyLevels maps SRProxy's [log] level (WebRTC's LS_SENSITIVE..LS_NONE) to slog.
var srproxyLevels = []slog.Level{LevelSensitive, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, LevelNone}

func (d *decoder) decodeLog(c *Config) {
	level := int64(c.Log.SRProxyLevel)
	if d.integer("log", "level", 0, 5, "0 (SENSITIVE), 1 (DEBUG), 2 (INFO), 3 (WARNING), 4 (ERROR) or 5 (NONE)", &level) != nil {
		c.Log.SRProxyLevel = int(level)
		c.Log.Level = srproxyLevels[level]
	}
	d.str("log", "file", &c.Log.File)
	kib := c.Log.MaxFileSize >> 10
	if d.integer("log", "max_file_size", 0, 1<<30, "a size in KiB, 0 (no rotation) .. 1073741824", &kib) != nil {
		c.Log.MaxFileSize = kib << 10
	}
	format := string(c.Log.Format)
	d.enum("log", "format", []string{"text", "json"}, &format)
	c.Log.Format = LogFormat(format)
}

func (d *decoder) decodeCloud(sect string, dst *CloudServer) {
	if e := d.str(sect, "ip", &dst.Host); e != nil {
		if _, err := netip.ParseAddr(e.value); err != nil && !looksLikeHostName(e.value) {
			d.invalid(sect, "ip", e, ErrInvalid, "want an IP address or host name")
		}
	}
	d.port(sect, "port", &dst.Port)
}

func (d *decoder) decodeSignaling(c *Config) {
	d.listen("signaling", "listen", &c.Signaling.Listen)
	d.str("signaling", "tls_cert", &c.Signaling.TLSCert)
	d.str("signaling", "tls_key", &c.Signaling.TLSKey)
	if e := d.secret("signaling", "app_secret", &c.Signaling.AppSecret); e != nil && len(e.value) < minAppSecretLen {
		d.invalid("signaling", "app_secret", e, ErrInvalid, fmt.Sprintf("want at least %d characters", minAppSecretLen))
	}
	d.duration("signaling", "token_ttl", time.Minute, false, &c.Signaling.TokenTTL)
}

func (d *decoder) decodeMedia(c *Config) {
	if e := d.lookup("media", "ip"); e != nil {
		addr, err := netip.ParseAddr(e.value)
		switch {
		case err != nil:
			d.invalid("media", "ip", e, ErrInvalid, "want an IP address (the public address of this host)")
		case addr.IsUnspecified() || addr.IsMulticast():
			d.invalid("media", "ip", e, ErrInvalid, "want the public unicast IP address of this host")
		default:
			c.Media.PublicIP = addr
		}
	}
	for _, k := range []struct {
		key string
		dst *uint16
	}{{"port_min", &c.Media.PortMin}, {"port_max", &c.Media.PortMax}} {
		n := int64(*k.dst)
		if d.integer("media", k.key, 1024, 65535, "a port number 1024..65535", &n) != nil {
			*k.dst = uint16(n)
		}
	}
	d.flag("media", "ice_lite", &c.Media.ICELite)
	if e := d.lookup("media", "codecs"); e != nil {
		var codecs []string
		for name := range strings.SplitSeq(e.value, ",") {
			name = strings.ToLower(name)
			switch _, known := codecKinds[name]; {
			case !known:
				d.invalid("media", "codecs", e, ErrInvalid, "want a comma-separated list of opus, g722, pcmu, pcma, vp8, h264 without blanks (telephone-event is always offered); "+quoteValue(name)+" is not one")
				return
			case slices.Contains(codecs, name):
				d.invalid("media", "codecs", e, ErrInvalid, "want each codec once; "+quoteValue(name)+" is repeated")
				return
			}
			codecs = append(codecs, name)
		}
		c.Media.Codecs = codecs
	}
	d.flag("media", "video", &c.Media.Video)
	d.flag("media", "red", &c.Media.RED)
	d.flag("media", "flexfec", &c.Media.FlexFEC)
	for _, k := range []struct {
		key    string
		lo, hi int64
		want   string
		dst    *int
	}{
		{"red_distance", 1, MaxREDDistance, fmt.Sprintf("the number of earlier Opus frames each RED packet repeats, 1..%d", MaxREDDistance), &c.Media.REDDistance},
		{"fec_media_packets", 1, MaxFECMediaPackets, fmt.Sprintf("the number of video packets each FlexFEC batch protects, 1..%d", MaxFECMediaPackets), &c.Media.FECMediaPackets},
		{"fec_packets", 1, MaxFECMediaPackets, fmt.Sprintf("the number of FlexFEC packets per batch, 1..%d", MaxFECMediaPackets), &c.Media.FECPackets},
	} {
		n := int64(*k.dst)
		if d.integer("media", k.key, k.lo, k.hi, k.want, &n) != nil {
			*k.dst = int(n)
		}
	}
}

// check reports what is wrong between keys.
func (d *decoder) check(c *Config) {
	if c.Proxy.On && c.Proxy.Account == "" && d.entry("proxy", "sip_account") == nil {
		d.errorAt(d.lineOf("proxy", "on"), "proxy", "sip_account", ErrMissing, "missing; want the proxy's SIP account when [proxy] on=1")
	} else if c.Proxy.On && c.Proxy.Account == "" {
		d.missing("proxy", "sip_account", "want the proxy's SIP account when [proxy] on=1")
	}
	if c.RTM2SIP.On && c.RTM2SIP.Rule == "" && d.entry("rtm2sip", "acc_rule") == nil {
		d.errorAt(d.lineOf("rtm2sip", "on"), "rtm2sip", "acc_rule", ErrMissing, "missing; want the pool's accounts (e.g. 1005;10[06-19]) when [rtm2sip] on=1")
	} else if c.RTM2SIP.On && c.RTM2SIP.Rule == "" {
		d.missing("rtm2sip", "acc_rule", "want the pool's accounts (e.g. 1005;10[06-19]) when [rtm2sip] on=1")
	}
	if !c.Proxy.On && !c.RTM2SIP.On {
		d.errorAt(0, "", "", ErrConflict, "want [proxy] on=1 or [rtm2sip] on=1: with both off the gateway has no SIP account to call from or to")
	}
	if c.Proxy.On && c.Proxy.Account != "" {
		for _, t := range d.pool {
			if slices.Contains(t.accounts, c.Proxy.Account) {
				e := d.entry("rtm2sip", "acc_rule")
				d.invalid("rtm2sip", "acc_rule", e, ErrConflict, fmt.Sprintf(
					"token %d %s contains the proxy account %s ([proxy] sip_account, line %d): want the proxy account outside the pool",
					t.pos, quoteValue(t.text), quoteValue(c.Proxy.Account), d.lineOf("proxy", "sip_account")))
				break
			}
		}
	}
	d.checkMedia(c)
	d.checkSessionTimer(c)
	d.checkListeners(c)
	d.checkTLSPair("signaling", c.Signaling.TLSCert, c.Signaling.TLSKey)
	d.checkTLSPair("sip", c.SIP.TLSCert, c.SIP.TLSKey)
	if c.SIP.Transport != TransportTLS {
		for _, key := range []string{"tls_cert", "tls_key", "ca"} {
			if e := d.entry("sip", key); e != nil && e.value != "" {
				d.warnAt(e.line, "sip", key, "has no effect unless transport=tls")
			}
		}
	}
}

// checkSessionTimer wants session_expires at least min_se (RFC 4028 4: a UA never asks for less
// than its own Min-SE); 0 turns session timers off and ignores min_se.
func (d *decoder) checkSessionTimer(c *Config) {
	s := c.SIP
	if s.SessionExpires == 0 || s.SessionExpires >= s.MinSE {
		return
	}
	key, e := "session_expires", d.entry("sip", "session_expires")
	if e == nil || e.value == "" {
		key, e = "min_se", d.entry("sip", "min_se")
	}
	if e == nil {
		return // both defaults: they agree
	}
	d.invalid("sip", key, e, ErrConflict, fmt.Sprintf("want session_expires (%v) >= min_se (%v), or session_expires=0 (off)", s.SessionExpires, s.MinSE))
}

func (d *decoder) checkMedia(c *Config) {
	m := c.Media
	// Report on the key the file wrote; a default that clashes is the other key's fault.
	blame := func(preferred, other string) (string, *entry) {
		if e := d.entry("media", preferred); e != nil && e.value != "" {
			return preferred, e
		}
		if e := d.entry("media", other); e != nil && e.value != "" {
			return other, e
		}
		return preferred, nil
	}
	if e := d.entry("media", "port_min"); e != nil && e.value != "" && m.PortMin%2 != 0 {
		d.invalid("media", "port_min", e, ErrInvalid, "want an even port: RTP takes the even port of each RTP/RTCP pair (RFC 3550)")
	}
	if e := d.entry("media", "port_max"); e != nil && e.value != "" && m.PortMax%2 == 0 {
		d.invalid("media", "port_max", e, ErrInvalid, "want an odd port, so that the range ends with a whole RTP/RTCP pair")
	}
	if m.PortMin > m.PortMax {
		if key, e := blame("port_max", "port_min"); e != nil {
			d.invalid("media", key, e, ErrConflict, fmt.Sprintf("want port_min <= port_max, found the range %d-%d", m.PortMin, m.PortMax))
		}
	}
	if p := c.Global.SIPLocalPort; p >= m.PortMin && p <= m.PortMax {
		if e := d.entry("global", "sip_local_port"); e != nil && e.value != "" {
			d.invalid("global", "sip_local_port", e, ErrConflict, fmt.Sprintf("want a port outside the media range %d-%d ([media] port_min/port_max)", m.PortMin, m.PortMax))
		} else if key, e := blame("port_min", "port_max"); e != nil {
			d.invalid("media", key, e, ErrConflict, fmt.Sprintf("want a media range %d-%d that leaves out [global] sip_local_port %d", m.PortMin, m.PortMax, p))
		}
	}
	if len(m.AudioCodecs()) == 0 {
		if e := d.entry("media", "codecs"); e != nil {
			d.invalid("media", "codecs", e, ErrConflict, "want at least one audio codec (opus, g722, pcmu or pcma)")
		}
	}
	if m.Video && len(filterCodecs(m.Codecs, true)) == 0 {
		if key, e := blame("codecs", "video"); e != nil {
			d.invalid("media", key, e, ErrConflict, "want a video codec (vp8 or h264) in codecs when video=1, or video=0")
		}
	}
	if m.RED && !slices.Contains(m.Codecs, "opus") {
		if key, e := blame("red", "codecs"); e != nil {
			d.invalid("media", key, e, ErrConflict, "want opus in codecs when red=1 (RED carries Opus), or red=0")
		}
	}
	if m.FlexFEC && !m.Video {
		if key, e := blame("flexfec", "video"); e != nil {
			d.invalid("media", key, e, ErrConflict, "want video=1 when flexfec=1 (FlexFEC protects video), or flexfec=0")
		}
	}
	if m.FECPackets > m.FECMediaPackets {
		if key, e := blame("fec_packets", "fec_media_packets"); e != nil {
			d.invalid("media", key, e, ErrConflict, fmt.Sprintf("want fec_packets <= fec_media_packets, found %d FEC packets for %d media packets", m.FECPackets, m.FECMediaPackets))
		}
	}
}

func (d *decoder) checkListeners(c *Config) {
	if c.Signaling.TLSCert == "" && !isLoopbackListen(c.Signaling.Listen) {
		d.warnAt(d.lineOf("signaling", "listen"), "signaling", "listen",
			"listens beyond this host over plain HTTP: browsers elsewhere refuse microphone and camera access without TLS; set tls_cert and tls_key or put a TLS proxy in front")
	}
	if c.Metrics.Listen != "" && sameListener(c.Metrics.Listen, c.Signaling.Listen) {
		e := d.entry("metrics", "listen")
		d.invalid("metrics", "listen", e, ErrConflict, fmt.Sprintf("want an address other than [signaling] listen %q", c.Signaling.Listen))
	}
}

func (d *decoder) checkTLSPair(sect, cert, key string) {
	switch {
	case cert != "" && key == "":
		d.errorAt(d.lineOf(sect, "tls_cert"), sect, "tls_key", ErrMissing, "missing; want the key of tls_cert")
	case cert == "" && key != "":
		d.errorAt(d.lineOf(sect, "tls_key"), sect, "tls_cert", ErrMissing, "missing; want the certificate of tls_key")
	}
}

func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// sameListener reports whether two listen addresses would collide: same port, and the same
// host or one of them all interfaces.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	all := func(h string) bool {
		addr, err := netip.ParseAddr(h)
		return h == "" || err == nil && addr.IsUnspecified()
	}
	return ha == hb || all(ha) || all(hb)
}

// reportUnused reports unknown sections and keys, and text dropped after values.
func (d *decoder) reportUnused() {
	for _, name := range d.doc.order {
		s := d.doc.sections[name]
		if !srproxySections[name] && !siprtcSections[name] {
			msg := "unknown section, ignored"
			if hint := legacyHints[name]; hint != "" {
				msg += " (" + hint + ")"
			} else if lower := strings.ToLower(name); srproxySections[lower] || siprtcSections[lower] {
				msg += fmt.Sprintf(" (names are case-sensitive, as in SRProxy: did you mean [%s]?)", lower)
			}
			d.warnAt(s.line, name, "", msg)
			continue
		}
		known := d.asked[name]
		for _, key := range s.keys {
			e := s.entries[key]
			if !known[key] {
				hint := legacyHints[name+"/"+key]
				if hint == "" && known[strings.ToLower(key)] {
					hint = "names are case-sensitive, as in SRProxy: did you mean " + strings.ToLower(key) + "?"
				}
				if siprtcSections[name] {
					msg := "unknown key: want one of " + strings.Join(sortedKeys(known), ", ")
					if hint != "" {
						msg += " (" + hint + ")"
					}
					d.errorAt(e.line, name, key, ErrUnknownKey, msg)
					continue
				}
				msg := "unknown key, ignored"
				if hint != "" {
					msg += " (" + hint + ")"
				}
				d.warnAt(e.line, name, key, msg)
				continue
			}
			if e.ignored != "" {
				if secretKeys[name+"/"+key] {
					d.warnAt(e.line, name, key, "text after the value is ignored (SRProxy ends a value at the first blank; quote the value to keep blanks)")
				} else {
					d.warnAt(e.line, name, key, fmt.Sprintf("text after the value is ignored: %s (SRProxy ends a value at the first blank; quote the value to keep blanks)", quoteValue(e.ignored)))
				}
			}
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// generateSecrets fills an absent app_secret with a random one, so that an SRProxy file
// starts as it is.
func (d *decoder) generateSecrets(c *Config) {
	if c.Signaling.AppSecret != "" {
		return
	}
	c.Signaling.AppSecret = Secret(rand.Text())
	c.Signaling.AppSecretGenerated = true
	d.warnAt(0, "signaling", "app_secret", fmt.Sprintf(
		"not set: generated a random one for this run, so client tokens stop working at every restart; set app_secret (at least %d characters)", minAppSecretLen))
}

// byLine orders by line, with line 0 (the file as a whole, absent keys) last.
func byLine(a, b int) bool {
	if a == 0 || b == 0 {
		return a != 0 && b == 0
	}
	return a < b
}

func (d *decoder) sortedErrors() []*Error {
	sort.SliceStable(d.errs, func(i, j int) bool { return byLine(d.errs[i].Line, d.errs[j].Line) })
	return d.errs
}

func (d *decoder) sortedWarnings() []Warning {
	sort.SliceStable(d.warns, func(i, j int) bool { return byLine(d.warns[i].Line, d.warns[j].Line) })
	return d.warns
}
