package astconf

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/siprtc/siprtc/lab/pbx/fsconf"
)

// sectionName is what an Asterisk section (endpoint, context) name may hold.
var sectionName = regexp.MustCompile(`^[A-Za-z0-9_.+*#@-]+$`)

// pjsip writes pjsip.conf: transport, ACLs, one endpoint/auth/AOR per directory user.
func (g *gen) pjsip() error {
	var b bytes.Buffer
	header(&b, g.conf, "pjsip.conf: SIP (chan_pjsip)")
	g.need("res_pjproject.so", "res_sorcery_config.so", "res_sorcery_memory.so", "res_sorcery_astdb.so",
		"res_pjsip.so", "res_pjsip_session.so", "res_pjsip_pubsub.so", "chan_pjsip.so",
		"res_pjsip_authenticator_digest.so", "res_pjsip_endpoint_identifier_user.so",
		"res_pjsip_registrar.so", "res_pjsip_sdp_rtp.so", "res_rtp_asterisk.so", "res_pjsip_nat.so",
		"res_pjsip_acl.so",
		// The caller's number from the From header of its INVITE, and in the From of the
		// callee's: without it Asterisk calls from "anonymous" (FreeSWITCH passes the caller's
		// own number: the directory sets no effective_caller_id).
		"res_pjsip_caller_id.so",
		// SIP INFO DTMF (application/dtmf-relay) in and out (dtmf_mode=auto_info).
		"res_pjsip_dtmf_info.so")
	ip := g.opts.IP.String()
	domain := g.out.Domain
	fmt.Fprintf(&b, "[global]\ntype=global\nuser_agent=siprtc-asterisk\n; FreeSWITCH challenges with the directory domain as the realm.\ndefault_realm=%s\n\n", value(domain))

	fmt.Fprintf(&b, "; sofia profile %q (%s): SIP over UDP only, on the lab's address.\n", g.prof.Name, g.prof.Pos)
	fmt.Fprintf(&b, "[transport-udp]\ntype=transport\nprotocol=udp\nbind=%s\n\n", netip.AddrPortFrom(g.opts.IP, uint16(g.opts.SIPPort)))

	g.acls(&b)

	ctx := g.prof.Param("context", "public")
	codecs := append(g.codecs(), g.videoCodecs()...)
	rel := "no"
	if g.prof.Bool("enable-100rel", false) {
		rel = "yes"
	}
	nonce := g.prof.Param("nonce-ttl", "")
	if !g.prof.Bool("auth-calls", true) {
		g.note(g.prof.ParamPos["auth-calls"], "auth-calls is false: FreeSWITCH refuses calls from outside apply-inbound-acl with 403; Asterisk authenticates every call from the endpoints")
	}
	fmt.Fprintf(&b, `; Templates. Media is anchored in Asterisk (direct_media=no), as FreeSWITCH anchors it, and bound
; to %[1]s; rtp_symmetric, force_rport and rewrite_contact answer where the packets come from.
[siprtc-endpoint](!)
type=endpoint
transport=transport-udp
context=%[2]s
disallow=all
allow=%[3]s
; enable-100rel of the sofia profile
100rel=%[4]s
direct_media=no
rtp_symmetric=yes
force_rport=yes
rewrite_contact=yes
media_address=%[1]s
bind_rtp_to_media_address=yes
; RFC 4733 with a leg that negotiated telephone-event, SIP INFO with one that did not: what a
; caller's DTMF becomes at the callee when the PBX passes the legs' SDP through (the embedded PBX).
dtmf_mode=auto_info
ice_support=no

[siprtc-auth](!)
type=auth
auth_type=userpass
realm=%[5]s
`, ip, value(ctx), strings.Join(codecs, ","), rel, value(domain))
	if nonce != "" {
		fmt.Fprintf(&b, "; nonce-ttl of the sofia profile\nnonce_lifetime=%s\n", value(nonce))
	}
	fmt.Fprintf(&b, `
; One registration per user: a new REGISTER replaces the old binding (Dial rings one contact).
[siprtc-aor](!)
type=aor
max_contacts=1
remove_existing=yes

`)
	dom := g.conf.Directory.Domains[domain]
	contexts := map[string]bool{ctx: true}
	fmt.Fprintf(&b, "; Directory domain %q (%s): one endpoint, auth and AOR per user.\n", domain, dom.Pos)
	for _, id := range dom.UserIDs() {
		u := dom.Users[id]
		if !sectionName.MatchString(id) {
			g.note(u.Pos, "user %q: the id is not a valid Asterisk section name; left out", id)
			continue
		}
		pw, a1 := u.Params["password"], u.Params["a1-hash"]
		if pw == "" && a1 == "" {
			g.note(u.Pos, "user %q has neither password nor a1-hash; left out", id)
			continue
		}
		fmt.Fprintf(&b, "[%s](siprtc-endpoint)\nauth=%s\naors=%s\n", id, id, id)
		if uc := u.Variables["user_context"]; uc != "" && uc != ctx {
			fmt.Fprintf(&b, "context=%s\n", value(uc))
			contexts[uc] = true
		}
		fmt.Fprintf(&b, "[%s](siprtc-auth)\nusername=%s\n", id, id)
		if pw != "" {
			fmt.Fprintf(&b, "password=%s\n", value(pw))
		} else {
			fmt.Fprintf(&b, "auth_type=md5\nmd5_cred=%s\n", value(a1))
		}
		fmt.Fprintf(&b, "[%s](siprtc-aor)\n\n", id)
		g.out.Users = append(g.out.Users, id)
	}
	if len(g.out.Users) == 0 {
		return fmt.Errorf("%w: directory domain %q has no user Asterisk can serve", ErrGenerate, domain)
	}
	// The profile's context first, then those of user_context variables.
	g.contexts = []string{ctx}
	var extra []string
	for c := range contexts {
		if c != ctx {
			extra = append(extra, c)
		}
	}
	sort.Strings(extra)
	g.contexts = append(g.contexts, extra...)
	g.out.Files["pjsip.conf"] = b.Bytes()
	return nil
}

// acls writes the profile's apply-inbound-acl lists as res_pjsip_acl objects. Asterisk's rules
// are applied in order and the last matching one decides, so nodes are written from the least
// to the most specific: the same result as FreeSWITCH's most-specific-wins.
func (g *gen) acls(b *bytes.Buffer) {
	names := g.prof.Values("apply-inbound-acl")
	if len(names) == 0 {
		return
	}
	if len(names) > 1 {
		g.note(g.prof.ParamPos["apply-inbound-acl"], "several apply-inbound-acl lists: FreeSWITCH grants a request any of them allows, Asterisk requires every one")
	}
	g.note(g.prof.ParamPos["apply-inbound-acl"], "apply-inbound-acl: FreeSWITCH lets calls from the allowed networks in without digest authentication and challenges the rest; Asterisk refuses requests from outside the list (403) and authenticates every call")
	for _, name := range names {
		type rule struct {
			allow bool
			pfx   netip.Prefix
		}
		var rules []rule
		defAllow := true
		if strings.Contains(name, "/") {
			// FreeSWITCH reads a name with '/' as comma-separated CIDRs, allowed.
			defAllow = false
			for _, s := range strings.Split(name, ",") {
				if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil && p.Addr().Is4() {
					rules = append(rules, rule{true, p.Masked()})
				}
			}
		} else {
			l := g.conf.ACL.Lists[name]
			if l == nil {
				g.note(g.prof.ParamPos["apply-inbound-acl"], "ACL list %q does not exist: FreeSWITCH denies; Asterisk gets a deny-all ACL", name)
				defAllow = false
			} else {
				defAllow = l.DefaultAllow
				for _, n := range l.Nodes {
					if n.Domain != "" {
						for _, u := range g.domainUsers(n.Domain) {
							for _, c := range strings.Split(u.CIDR, ",") {
								if p, err := netip.ParsePrefix(strings.TrimSpace(c)); err == nil && p.Addr().Is4() {
									rules = append(rules, rule{n.Allow, p.Masked()})
								}
							}
						}
						continue
					}
					if n.Prefix.Addr().Is4() && n.Prefix.Bits() > 0 {
						rules = append(rules, rule{n.Allow, n.Prefix})
					}
				}
			}
		}
		sort.SliceStable(rules, func(i, j int) bool { return rules[i].pfx.Bits() < rules[j].pfx.Bits() })
		aname := "acl-" + sanitize(name)
		fmt.Fprintf(b, "; ACL list %q (apply-inbound-acl of the sofia profile)\n[%s]\ntype=acl\n", name, aname)
		if defAllow {
			b.WriteString("permit=0.0.0.0/0.0.0.0\n")
		} else {
			b.WriteString("deny=0.0.0.0/0.0.0.0\n")
		}
		for _, r := range rules {
			verb := "deny"
			if r.allow {
				verb = "permit"
			}
			fmt.Fprintf(b, "%s=%s\n", verb, r.pfx)
		}
		b.WriteString("\n")
	}
}

func (g *gen) domainUsers(domain string) []*fsconf.User {
	dom := g.conf.Directory.Domains[domain]
	if dom == nil {
		for n, d := range g.conf.Directory.Domains {
			if strings.EqualFold(n, domain) {
				dom = d
			}
		}
	}
	if dom == nil {
		return nil
	}
	var out []*fsconf.User
	for _, id := range dom.UserIDs() {
		if u := dom.Users[id]; u.CIDR != "" {
			out = append(out, u)
		}
	}
	return out
}

// sanitize makes a section-name fragment of s.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// rtp writes rtp.conf.
func (g *gen) rtp() {
	var b bytes.Buffer
	header(&b, g.conf, "rtp.conf: RTP ports and ICE")
	fmt.Fprintf(&b, "[general]\n; switch.conf rtp-start-port / rtp-end-port (or the lab's range)\nrtpstart=%d\nrtpend=%d\n", g.opts.RTPStart, g.opts.RTPEnd)
	b.WriteString("; The lab has no NAT and no Internet: no STUN or TURN server.\nicesupport=yes\n")
	if len(g.opts.ICEHostAddrs) > 0 {
		b.WriteString("\n; Asterisk never offers a loopback address as an ICE candidate: the host's own addresses are\n; offered as the lab's address instead.\n[ice_host_candidates]\n")
		for _, a := range g.opts.ICEHostAddrs {
			if a.IsValid() && a.Is4() && !a.IsLoopback() && a != g.opts.IP {
				fmt.Fprintf(&b, "%s => %s\n", a, g.opts.IP)
			}
		}
	}
	g.out.Files["rtp.conf"] = b.Bytes()
}

// manager writes manager.conf: AMI on loopback, one user.
func (g *gen) manager() {
	var b bytes.Buffer
	header(&b, g.conf, "manager.conf: the Asterisk Manager Interface (the lab's status and control)")
	fmt.Fprintf(&b, "[general]\nenabled=yes\nbindaddr=%s\nport=%d\ndisplayconnects=no\n\n", g.opts.IP, g.opts.AMIPort)
	fmt.Fprintf(&b, "[%s]\nsecret=%s\ndeny=0.0.0.0/0.0.0.0\npermit=%s/255.255.255.255\nread=all\nwrite=all\n", g.opts.AMIUser, value(g.opts.AMISecret), g.opts.IP)
	g.out.Files["manager.conf"] = b.Bytes()
}

// asterisk writes asterisk.conf (the built-in directories of the image, only options).
func (g *gen) asterisk() {
	var b bytes.Buffer
	header(&b, g.conf, "asterisk.conf")
	fmt.Fprintf(&b, "[options]\nverbose=%d\ndebug=%d\n; No remote console banner noise in the logs.\nhideconnect=yes\n; The lab's call bursts: no per-second limit.\nmaxload=0\n", g.opts.Verbose, g.opts.Debug)
	if sps := g.conf.Switch["sessions-per-second"]; sps != "" {
		fmt.Fprintf(&b, "; switch.conf sessions-per-second has no Asterisk equivalent (%s); no limit here.\n", value(sps))
	}
	g.out.Files["asterisk.conf"] = b.Bytes()
}

// logger writes logger.conf: the console (the container's output, which the lab captures) and a
// file.
func (g *gen) logger() {
	var b bytes.Buffer
	header(&b, g.conf, "logger.conf")
	b.WriteString("[general]\ndateformat=%F %T.%3q\n\n[logfiles]\n")
	fmt.Fprintf(&b, "console => notice,warning,error,verbose(%d)\n", g.opts.Verbose)
	b.WriteString("messages.log => notice,warning,error,verbose\n")
	g.out.Files["logger.conf"] = b.Bytes()
}

// baseModules are loaded first, in this order (the others follow sorted).
var baseModules = []string{
	"res_timing_timerfd.so", "res_pjproject.so", "res_sorcery_config.so", "res_sorcery_memory.so",
	"res_sorcery_astdb.so", "res_rtp_asterisk.so", "res_pjsip.so",
}

// modulesConf writes modules.conf: autoload=no and exactly the modules used.
func (g *gen) modulesConf() {
	g.need("res_timing_timerfd.so", "bridge_simple.so", "bridge_native_rtp.so", "pbx_config.so")
	var b bytes.Buffer
	header(&b, g.conf, "modules.conf: only what the generated configuration uses")
	b.WriteString(`[modules]
; Nothing is loaded unless listed: a missing module is an error at start, not a surprise later.
autoload=no
`)
	var order []string
	seen := map[string]bool{}
	for _, m := range baseModules {
		if g.modules[m] {
			order = append(order, m)
			seen[m] = true
		}
	}
	var rest []string
	for m := range g.modules {
		if !seen[m] {
			rest = append(rest, m)
		}
	}
	sort.Strings(rest)
	order = append(order, rest...)
	for _, m := range order {
		fmt.Fprintf(&b, "load => %s\n", m)
	}
	g.out.Modules = order
	g.out.Files["modules.conf"] = b.Bytes()
}

// stubs writes the files the core reads at start, so that its log is free of "Unable to load
// config file" errors: no CDR or CEL records (nothing reads them), default features, the US
// indication tones (Ringing and Busy on channels that play tones), and quiet pjproject logging.
func (g *gen) stubs() {
	stub := func(name, what, body string) {
		var b bytes.Buffer
		header(&b, g.conf, name+": "+what)
		b.WriteString(body)
		g.out.Files[name] = b.Bytes()
	}
	stub("cdr.conf", "no call detail records", "[general]\nenable=no\n")
	stub("cel.conf", "no channel event logging", "[general]\nenable=no\n")
	stub("features.conf", "defaults", "[general]\n")
	stub("ccss.conf", "defaults", "[general]\n")
	stub("acl.conf", "no named ACL (pjsip.conf has its own)", "")
	stub("udptl.conf", "defaults (no T.38)", "[general]\n")
	stub("stasis.conf", "defaults", "[threadpool]\n")
	stub("pjproject.conf", "pjproject's own log only for errors and warnings", "[startup]\ntype=startup\nlog_level=2\n\n[log_mappings]\ntype=log_mappings\nasterisk_error=0\nasterisk_warning=2\n")
	stub("indications.conf", "call progress tones", `[general]
country=us

[us]
description=United States / North America
ringcadence=2000,4000
dial=350+440
busy=480+620/500,0/500
ring=440+480/2000,0/4000
congestion=480+620/250,0/250
callwaiting=440/300,0/10000
dialrecall=!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440
record=1400/500,0/15000
info=!950/330,!1400/330,!1800/330,0
stutter=!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440
`)
}
