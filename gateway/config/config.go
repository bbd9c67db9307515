package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"
)

// Config is the whole gateway's configuration: SRProxy's rtx.conf sections, then siprtc's.
// Build it with Load or Parse; Default gives the values used for absent keys.
type Config struct {
	// File is the name the configuration was read from, as given to Load or Parse.
	File string

	Global  Global
	RTM2SIP RTM2SIP
	Proxy   Proxy
	PSTN    PSTN
	Log     Log
	// RTC and RTM are the anyRTC cloud addresses of SRProxy's [rtc] and [rtm]: accepted so
	// that SRProxy files load, unused by siprtc.
	RTC CloudServer
	RTM CloudServer

	Signaling Signaling
	Media     Media
	Metrics   Metrics
	SIP       SIP
}

// Global is [global].
type Global struct {
	// AppID is SRProxy's anyRTC application id; siprtc puts it on every log line (appid=...).
	AppID string
	// SIPServer is the PBX (sip_svr): its port defaults to 5060 (5061 with transport=tls).
	SIPServer netip.AddrPort
	// SIPLocalPort is the gateway's own SIP port (sip_local_port, default 5086).
	SIPLocalPort uint16
}

// RTM2SIP is [rtm2sip]: the pool of accounts WebRTC users call out from.
type RTM2SIP struct {
	On bool
	// Rule is acc_rule as written; Accounts its expansion (only when On).
	Rule     string
	Accounts []string
	// Password is the pool's shared SIP password: [rtm2sip] sip_pwd, else [proxy] sip_pwd.
	Password Secret
}

// Proxy is [proxy]: the account inbound calls reach the gateway through.
type Proxy struct {
	On       bool
	Account  string // sip_account
	Password Secret // sip_pwd
	// RTMAccount is the identity SRProxy logs into RTM with for proxy calls (rtm_account):
	// its users saw every inbound call come from it. siprtc is the signalling server itself,
	// so it needs no RTM identity, and its invitations name the SIP caller instead; the key
	// is accepted so an SRProxy rtx.conf loads unchanged.
	RTMAccount string
}

// PSTN is [pstn]: calls flagged as PSTN go to Prefix+number at Server.
type PSTN struct {
	// Server is ip; the zero value means the SIP server, as in SRProxy.
	Server netip.AddrPort
	Prefix string
}

// Log is [log].
type Log struct {
	// Level is the slog level of SRProxyLevel: 0 LevelSensitive, 1 Debug, 2 Info, 3 Warn,
	// 4 Error, 5 LevelNone.
	Level        slog.Level
	SRProxyLevel int
	// File is where logs go; empty means standard error.
	File string
	// MaxFileSize is the size in bytes at which File is rotated (the file states KiB);
	// 0 means never.
	MaxFileSize int64
	Format      LogFormat
}

// Off reports whether logging is disabled (level 5, NONE).
func (l Log) Off() bool { return l.Level >= LevelNone }

// Log levels beyond slog's own four.
const (
	// LevelSensitive is SRProxy's level 0: debug output plus every signalling message whole
	// (tokens, SDP, invitation content); gateway/signaling logs them at this level.
	LevelSensitive = slog.LevelDebug - 4
	// LevelNone is SRProxy's level 5: nothing is logged.
	LevelNone = slog.Level(1 << 30)
)

// LogFormat is the log output format.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// CloudServer is an anyRTC cloud address ([rtc], [rtm]); empty Host and zero Port when unset.
type CloudServer struct {
	Host string
	Port uint16
}

// Signaling is [signaling]: the WebSocket endpoint of the WebRTC clients.
type Signaling struct {
	// Listen is host:port for net.Listen (default 127.0.0.1:8080).
	Listen string
	// TLSCert and TLSKey are PEM files; both empty means plain HTTP.
	TLSCert, TLSKey string
	// AppSecret is the HMAC key of client tokens. When the file has none, Parse generates
	// one and sets AppSecretGenerated.
	AppSecret          Secret
	AppSecretGenerated bool
	// TokenTTL is the longest validity a client token may claim.
	TokenTTL time.Duration
}

// Media is [media].
type Media struct {
	// PublicIP is advertised in the WebRTC leg's ICE host candidates instead of the interface
	// address (1:1 NAT); the zero value means the interface addresses. The SIP leg's SDP keeps
	// the address that routes to the PBX, which is on the gateway's side of the NAT.
	PublicIP netip.Addr
	// PortMin (even) and PortMax (odd) bound the UDP ports of RTP/RTCP and ICE.
	PortMin, PortMax uint16
	ICELite          bool
	// Codecs in order of preference, lower case: audio opus, g722, pcmu, pcma; video vp8,
	// h264. telephone-event is always offered.
	Codecs []string
	Video  bool
	// RED (red=1) negotiates RFC 2198 redundant Opus with clients that offer it (Chrome):
	// their RED is decoded before the SIP side, and the gateway's Opus is sent with
	// REDDistance earlier frames per packet (red_distance, 1..8).
	RED         bool
	REDDistance int
	// FlexFEC (flexfec=1) negotiates FlexFEC-03 for video: the client's FEC repairs its lost
	// video packets, and the gateway sends FECPackets FEC packets for every FECMediaPackets
	// video packets (fec_packets, fec_media_packets).
	FlexFEC                     bool
	FECMediaPackets, FECPackets int
}

// AudioCodecs returns the audio codecs of Codecs, in order.
func (m Media) AudioCodecs() []string { return filterCodecs(m.Codecs, false) }

// VideoCodecs returns the video codecs of Codecs, in order, or none when Video is off.
func (m Media) VideoCodecs() []string {
	if !m.Video {
		return nil
	}
	return filterCodecs(m.Codecs, true)
}

// Metrics is [metrics].
type Metrics struct {
	// Listen is host:port of /metrics and /healthz; empty means off.
	Listen string
}

// SIP is [sip].
type SIP struct {
	Transport Transport
	// RegisterExpires is the Expires asked for in REGISTER.
	RegisterExpires time.Duration
	// OptionsInterval is the period of the OPTIONS that keep NAT bindings; 0 disables.
	OptionsInterval time.Duration
	// SessionExpires is the session interval of RFC 4028 session timers: the gateway offers it
	// and accepts peers that require timers, refreshes the sessions it is the refresher of, and
	// ends the ones the peer stops refreshing, so that a call whose BYE was lost (a PBX restart,
	// a NAT binding gone) does not hold a pool account and a media port forever. 0 disables.
	SessionExpires time.Duration
	// MinSE is the smallest session interval accepted (Min-SE, 422 below it); RFC 4028's floor
	// is 90 s.
	MinSE time.Duration
	// TLSCert and TLSKey are the client certificate (optional); CA the PEM bundle that
	// verifies the server (empty: the system roots).
	TLSCert, TLSKey, CA string
}

// Transport is the SIP transport towards the PBX.
type Transport string

// SIP transports.
const (
	TransportUDP Transport = "udp"
	TransportTCP Transport = "tcp"
	TransportTLS Transport = "tls"
)

// Defaults of absent keys.
const (
	DefaultSIPPort         = 5060
	DefaultSIPTLSPort      = 5061
	DefaultSIPLocalPort    = 5086
	DefaultSignalingListen = "127.0.0.1:8080"
	DefaultTokenTTL        = 24 * time.Hour
	// DefaultPortMin and DefaultPortMax stay clear of FreeSWITCH's RTP range (16384-32768)
	// in the reference deployment and of Linux's ephemeral ports (32768-60999): 3000
	// RTP/RTCP pairs.
	DefaultPortMin         = 10000
	DefaultPortMax         = 15999
	DefaultRegisterExpires = 3600 * time.Second
	DefaultOptionsInterval = 30 * time.Second
	// DefaultSessionExpires is the session interval RFC 4028 recommends; DefaultMinSE its
	// floor (also the lowest min_se accepted: RFC 4028 4 forbids less).
	DefaultSessionExpires = 1800 * time.Second
	DefaultMinSE          = 90 * time.Second
	// DefaultMaxFileSizeKiB is the size SRProxy gives its own RTM log (10*1024 KiB).
	DefaultMaxFileSizeKiB = 10 * 1024
	// DefaultREDDistance (Chrome's), DefaultFECMediaPackets and DefaultFECPackets (pion's
	// FlexFEC encoder's) are the defaults of red_distance, fec_media_packets and fec_packets;
	// MaxREDDistance and MaxFECMediaPackets bound them (gateway/rtc's limits).
	DefaultREDDistance     = 1
	MaxREDDistance         = 8
	DefaultFECMediaPackets = 5
	DefaultFECPackets      = 2
	MaxFECMediaPackets     = 48
)

var defaultCodecs = []string{"opus", "g722", "pcmu", "pcma", "vp8", "h264"}

// codecKinds lists the codecs [media] codecs accepts; true for video.
var codecKinds = map[string]bool{"opus": false, "g722": false, "pcmu": false, "pcma": false, "vp8": true, "h264": true}

func filterCodecs(codecs []string, video bool) []string {
	var out []string
	for _, c := range codecs {
		if codecKinds[c] == video {
			out = append(out, c)
		}
	}
	return out
}

// Default returns the configuration of an empty file: SIPServer unset, no account on, no
// app secret. Tests of other packages start from it.
func Default() *Config {
	return &Config{
		Global: Global{SIPLocalPort: DefaultSIPLocalPort},
		Log: Log{
			Level:        slog.LevelInfo,
			SRProxyLevel: 2,
			MaxFileSize:  DefaultMaxFileSizeKiB << 10,
			Format:       LogText,
		},
		Signaling: Signaling{Listen: DefaultSignalingListen, TokenTTL: DefaultTokenTTL},
		Media: Media{
			PortMin: DefaultPortMin,
			PortMax: DefaultPortMax,
			Codecs:  append([]string(nil), defaultCodecs...),
			Video:   true,

			REDDistance:     DefaultREDDistance,
			FECMediaPackets: DefaultFECMediaPackets,
			FECPackets:      DefaultFECPackets,
		},
		SIP: SIP{
			Transport:       TransportUDP,
			RegisterExpires: DefaultRegisterExpires,
			OptionsInterval: DefaultOptionsInterval,
			SessionExpires:  DefaultSessionExpires,
			MinSE:           DefaultMinSE,
		},
	}
}

// PSTNServer is where PSTN calls go: [pstn] ip, or the SIP server when it is empty.
func (c *Config) PSTNServer() netip.AddrPort {
	if c.PSTN.Server.IsValid() {
		return c.PSTN.Server
	}
	return c.Global.SIPServer
}

// Load reads the file at path (see Parse).
func Load(path string) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads an rtx.conf from r; name is the file name used in messages. On success it
// returns the validated Config and the warnings (unknown keys, ignored text, a generated
// app secret). Otherwise it returns no Config and every error of the file joined
// (errors.Join of *Error, in line order), plus the warnings found so far.
func Parse(r io.Reader, name string) (*Config, []Warning, error) {
	d := newDecoder(name)
	doc, err := readINI(r, d)
	if err != nil {
		return nil, d.sortedWarnings(), fmt.Errorf("%s: %w", name, err)
	}
	d.doc = doc
	cfg := Default()
	cfg.File = name
	d.decode(cfg)
	d.check(cfg)
	d.reportUnused()
	if len(d.errs) > 0 {
		errs := d.sortedErrors()
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, d.sortedWarnings(), errors.Join(joined...)
	}
	d.generateSecrets(cfg)
	return cfg, d.sortedWarnings(), nil
}
