package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// redacted stands for a secret in any output.
const redacted = "***"

// Secret is a password or key. Formatting it with any verb (fmt, slog, encoding/json and
// other text marshallers) shows "***", so a Config logged by mistake leaks nothing; Reveal
// returns the value for the code that needs it.
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String returns "***", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format redacts the secret for every fmt verb, %#v included.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue redacts the secret in slog records.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts the secret in JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String renders the effective configuration, defaults included, as an rtx.conf with the
// secrets (sip_pwd, app_secret) replaced by "***": fit for a startup log line.
func (c *Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: effective configuration, secrets redacted\n", c.File)
	section := func(name string) { fmt.Fprintf(&b, "[%s]\n", name) }
	kv := func(key string, value any) {
		v := fmt.Sprint(value)
		if strings.ContainsAny(v, " \t") {
			v = `"` + v + `"`
		}
		fmt.Fprintf(&b, "%s=%s\n", key, v)
	}
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}
	addr := func(v fmt.Stringer, valid bool) string {
		if !valid {
			return ""
		}
		return v.String()
	}

	section("global")
	kv("appid", c.Global.AppID)
	kv("sip_svr", addr(c.Global.SIPServer, c.Global.SIPServer.IsValid()))
	kv("sip_local_port", c.Global.SIPLocalPort)

	section("rtm2sip")
	kv("on", flag(c.RTM2SIP.On))
	kv("acc_rule", c.RTM2SIP.Rule)
	fmt.Fprintf(&b, "# %d accounts\n", len(c.RTM2SIP.Accounts))
	kv("sip_pwd", c.RTM2SIP.Password)

	section("proxy")
	kv("on", flag(c.Proxy.On))
	kv("sip_account", c.Proxy.Account)
	kv("sip_pwd", c.Proxy.Password)
	kv("rtm_account", c.Proxy.RTMAccount)

	section("pstn")
	kv("ip", addr(c.PSTN.Server, c.PSTN.Server.IsValid()))
	kv("prefix", c.PSTN.Prefix)

	section("log")
	kv("level", c.Log.SRProxyLevel)
	kv("file", c.Log.File)
	kv("max_file_size", c.Log.MaxFileSize>>10)
	kv("format", c.Log.Format)

	for _, cloud := range []struct {
		name string
		s    CloudServer
	}{{"rtc", c.RTC}, {"rtm", c.RTM}} {
		section(cloud.name)
		kv("ip", cloud.s.Host)
		port := ""
		if cloud.s.Port != 0 {
			port = strconv.Itoa(int(cloud.s.Port))
		}
		kv("port", port)
	}

	section("signaling")
	kv("listen", c.Signaling.Listen)
	kv("tls_cert", c.Signaling.TLSCert)
	kv("tls_key", c.Signaling.TLSKey)
	kv("app_secret", c.Signaling.AppSecret)
	if c.Signaling.AppSecretGenerated {
		b.WriteString("# app_secret generated for this run\n")
	}
	kv("token_ttl", c.Signaling.TokenTTL)

	section("media")
	kv("ip", addr(c.Media.PublicIP, c.Media.PublicIP.IsValid()))
	kv("port_min", c.Media.PortMin)
	kv("port_max", c.Media.PortMax)
	kv("ice_lite", flag(c.Media.ICELite))
	kv("codecs", strings.Join(c.Media.Codecs, ","))
	kv("video", flag(c.Media.Video))
	kv("red", flag(c.Media.RED))
	kv("red_distance", c.Media.REDDistance)
	kv("flexfec", flag(c.Media.FlexFEC))
	kv("fec_media_packets", c.Media.FECMediaPackets)
	kv("fec_packets", c.Media.FECPackets)

	section("metrics")
	kv("listen", c.Metrics.Listen)

	section("sip")
	kv("transport", c.SIP.Transport)
	kv("register_expires", c.SIP.RegisterExpires)
	kv("options_interval", c.SIP.OptionsInterval)
	kv("session_expires", c.SIP.SessionExpires)
	kv("min_se", c.SIP.MinSE)
	kv("tls_cert", c.SIP.TLSCert)
	kv("tls_key", c.SIP.TLSKey)
	kv("ca", c.SIP.CA)
	return b.String()
}
