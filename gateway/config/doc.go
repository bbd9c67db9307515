// Package config reads the gateway's configuration: SRProxy's rtx.conf as it is, plus the
// sections siprtc adds, into one validated Config that the whole gateway is built from (no
// globals).
//
// # File format (as SRProxy's ConfigSet reads it)
//
// rtx.conf is an INI file read line by line, the way SRProxy's src/config.cpp does:
//
//   - A line whose first non-blank character is '#' is a comment; blank lines are skipped.
//     ';' is not a comment character (acc_rule uses it as a separator).
//   - "[name]" starts a section. Blanks are allowed inside the brackets ("[ global ]"), one
//     word only. Text after ']' is ignored (a warning unless it is a '#' comment). A section
//     that appears twice is merged, as SRProxy's map insert does.
//   - "key=value" sets a key; blanks are allowed around '='. A value ends at the first blank
//     (space or tab): "sip_pwd=abc def" sets "abc". Everything after it is ignored, which
//     allows "key=value # comment"; ignored text other than a comment is reported as a
//     warning (without the text itself for secrets). A value may be quoted,
//     key="two words", to keep blanks (SRProxy does the same; there is no escape inside).
//   - An empty value ("port=") means the key is unset: its default applies, as SRProxy's
//     GetIntVal returns its default for an empty string. The last occurrence of a repeated key
//     wins (with a warning), as in SRProxy.
//   - Section and key names are case-sensitive, as SRProxy's std::map lookups are: "[Global]"
//     is an unknown section (the warning suggests the right spelling).
//   - A UTF-8 byte-order mark at the start and CR line ends are accepted.
//
// Where SRProxy silently gives up, this package reports an error: SRProxy stops reading the
// file at the first malformed line and main() ignores the failure, so the rest of the
// file is lost without a word; here every malformed line is an error, and Parse reports all
// errors of a file at once (errors.Join), each as an *Error naming file, line, section, key
// and what is expected:
//
//	rtx.conf:12: [global] sip_svr "10.0.0.1:abc": want IP:port
//
// Integers are decimal. SRProxy reads them with strtol(…, 0), so "05086" would be octal and
// "0x13de" hex there; a leading 0 or 0x is an error here rather than a silently different
// port. Flags (on, ice_lite, video, red, flexfec) are 0 or 1. Durations are a number of
// seconds or a Go duration ("30", "30s", "1h30m").
//
// # SRProxy's sections
//
//	[global]  appid (on every log line), sip_svr (IP[:port], default port 5060, or 5061 with
//	          [sip] transport=tls), sip_local_port (default 5086)
//	[rtm2sip] on, acc_rule, sip_pwd (siprtc: the pool password, see below)
//	[proxy]   on, sip_account, sip_pwd, rtm_account (accepted, unused: invitations name the SIP
//	          caller, where SRProxy's came from rtm_account)
//	[pstn]    ip (IP[:port]; empty: the SIP server), prefix
//	[log]     level (0 SENSITIVE, 1 DEBUG, 2 INFO, 3 WARNING, 4 ERROR, 5 NONE; default 2),
//	          file (empty: standard error), max_file_size (KiB, default 10240; 0: no rotation),
//	          format (siprtc: text|json)
//	[rtc], [rtm] ip, port: anyRTC cloud addresses, parsed and validated, unused by siprtc.
//
// Unknown sections, and unknown keys in these sections, are warnings: SRProxy files in the
// wild carry extra keys. Keys of the early SRProxy layout ([proxy] account/pwd, [sip]
// acc_prefix/acc_rule/acc_pwd, [ivr]) get a hint naming the current key.
//
// acc_rule is a ';'-separated list of tokens, each a literal account (a SIP user part, e.g.
// 1005) or prefix[from-to], expanded as SRProxy's SipRtcMgr::StartRtm2Sip does: every number
// from..to, zero-padded to the width of from ("10[06-19]" is 1006..1019, "0[8-12]" is 08, 09,
// 010, 011, 012 because the padding width is that of "8"). See ExpandAccRule for the
// differences (SRProxy skips malformed tokens and single-number ranges silently; they are
// errors or accepted here).
//
// Pool password: the current SRProxy has none. Its pool accounts are RTM identities only,
// and every SIP call leaves through the proxy account's registration, which is why SRProxy
// needs [proxy] on=1 even for outbound calls. (The early SRProxy layout registered the pool
// with [sip] acc_pwd.) siprtc registers every pool account itself, with [rtm2sip] sip_pwd if
// set, else [proxy] sip_pwd, which is right for the reference FreeSWITCH deployment whose
// directory users 1000..2599 are all cloned from 1000.xml and share its password.
//
// # Differences from SRProxy that change which files are valid
//
//   - SRProxy needs [proxy] on=1 even for outbound calls (RTC user -> SIP); siprtc does not:
//     with [rtm2sip] on=1 alone, each pool account registers and calls on its own. [proxy]
//     on=1 is only needed for inbound calls routed by the X-Number header. At least one of
//     the two must be on.
//   - The port of sip_svr is honoured everywhere (SRProxy passes "IP:port" as a domain).
//   - sip_svr and [pstn] ip must be IP addresses: host names are not resolved.
//   - [log] is honoured (SRProxy ignores it).
//   - Conflicts are errors: the proxy account inside the pool, an account twice in acc_rule,
//     [proxy] on=1 without sip_account, [rtm2sip] on=1 with an empty acc_rule, inverted
//     port ranges, sip_local_port inside the media port range, one listen address for two
//     servers, half a TLS key pair.
//
// # siprtc's sections
//
// All optional, with defaults that work; unknown keys in them are errors. The commented
// example fixtures/rtx/siprtc.conf documents every key.
//
//	[signaling] listen (default 127.0.0.1:8080), tls_cert, tls_key, app_secret, token_ttl (24h)
//	[media]     ip, port_min (10000), port_max (15999), ice_lite (0), codecs
//	            (opus,g722,pcmu,pcma,vp8,h264), video (1), red (0), red_distance (1),
//	            flexfec (0), fec_media_packets (5), fec_packets (2)
//	[metrics]   listen (default: off)
//	[sip]       transport (udp|tcp|tls), register_expires (3600), options_interval (30; 0: off),
//	            session_expires (1800; 0: off), min_se (90, at least 90), tls_cert, tls_key, ca
//
// Without app_secret, Parse generates a random one and warns: clients' tokens then stop
// working at every restart, but an SRProxy file still starts as it is. The signalling
// endpoint listens on loopback by default: browsers only allow microphone access over
// plain HTTP on localhost, so a plain-HTTP public listener would not work anyway; put TLS in
// front of it or set tls_cert/tls_key and a public listen address.
package config
