package fsconf

import (
	"math/bits"
	"net/netip"
	"strings"
)

// ACL holds the network lists of acl.conf.xml plus FreeSWITCH's built-in lists.
//
// Semantics, from switch_core.c (switch_load_network_lists) and switch_utils.c
// (switch_network_list_validate_ip_token):
//
//   - a list's default is switch_true(default=), allow when the attribute is missing;
//   - a node's type is switch_true(type=) (allow/deny), the list default when missing;
//   - cidr= may hold several comma-separated prefixes; host= with mask= is a dotted mask;
//     domain= adds the cidr attribute of every user of that directory domain, with the
//     token user@domain;
//   - the most specific matching node decides (longest prefix); among equally specific
//     matching nodes the one written last wins (FreeSWITCH prepends nodes and keeps the first
//     strictly longer match); a /0 node never matches (its 0 bits are not more than the
//     initial 0), and with no match the list default decides;
//   - IPv4 nodes only match IPv4 addresses and IPv6 nodes IPv6 ones;
//   - a list name containing '/' is not a list but comma-separated CIDRs: allowed when the
//     address is in any of them;
//   - a list with no <node> at all is never registered by FreeSWITCH, so it does not exist
//     here either (Check returns ErrUnknownList, and Lint reports it).
//
// Built-in lists, created before acl.conf.xml (which may replace them): rfc1918.auto (allow
// 10/8, 172.16/12, 192.168/16), wan.auto (default allow; deny 0/8, 10/8, 172.16/12,
// 192.168/16, 169.254/16), loopback.auto (127/8), localnet.auto (local_ip_v4/local_mask_v4,
// the host's own network as FreeSWITCH guesses it: here from the preprocessor variables,
// see HostVars) and nat.auto (rfc1918 except localnet).
//
// Differences, on purpose: a node whose cidr, host or mask does not parse is a load error
// (FreeSWITCH logs it and drops the node, silently changing who is allowed), and so is a
// non-contiguous mask.
type ACL struct {
	Lists map[string]*ACLList
}

// ACLList is one <list>.
type ACLList struct {
	Name         string
	DefaultAllow bool
	Nodes        []ACLNode
	Pos          Pos
}

// ACLNode is one prefix of a <node> (a node with several comma-separated CIDRs gives several
// ACLNodes at the same Pos), or a domain= node (Domain set, Prefix invalid).
type ACLNode struct {
	Allow  bool
	Prefix netip.Prefix
	Domain string
	Pos    Pos
}

// Check tells whether ip passes the list. dir resolves domain= nodes (nil: they match
// nothing). An unknown list is an error; FreeSWITCH denies in that case.
func (a *ACL) Check(list string, ip netip.Addr, dir *Directory) (allowed bool, err error) {
	ok, _, err := a.CheckToken(list, ip, dir)
	return ok, err
}

// CheckToken is Check that also returns the token of the deciding node: user@domain for a
// node built from a directory user's cidr, else "".
func (a *ACL) CheckToken(list string, ip netip.Addr, dir *Directory) (allowed bool, token string, err error) {
	ip = ip.Unmap()
	if strings.Contains(list, "/") {
		for _, s := range strings.Split(list, ",") {
			pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return false, "", errAt(Pos{}, ErrInvalid, "ACL %q: bad CIDR %q", list, s)
			}
			if pfx.Addr().Is4() == ip.Is4() && pfx.Masked().Contains(ip) {
				return true, "", nil
			}
		}
		return false, "", nil
	}
	var l *ACLList
	if a != nil {
		l = a.Lists[list]
	}
	if l == nil {
		return false, "", errAt(Pos{}, ErrUnknownList, "ACL list %q does not exist (FreeSWITCH denies everything for it)", list)
	}
	allowed = l.DefaultAllow
	best := 0
	consider := func(pfx netip.Prefix, allow bool, tok string) {
		if !pfx.IsValid() || pfx.Addr().Is4() != ip.Is4() {
			return
		}
		if b := pfx.Bits(); b > 0 && b >= best && pfx.Contains(ip) {
			best, allowed, token = b, allow, tok
		}
	}
	for _, n := range l.Nodes {
		if n.Domain == "" {
			consider(n.Prefix, n.Allow, "")
			continue
		}
		dom := dir.domain(n.Domain)
		if dom == nil {
			continue
		}
		for _, id := range dom.order {
			u := dom.Users[id]
			for _, s := range strings.Split(u.CIDR, ",") {
				if pfx, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
					consider(pfx.Masked(), n.Allow, u.ID+"@"+n.Domain)
				}
			}
		}
	}
	return allowed, token, nil
}

func builtinACLs(vars map[string]string) map[string]*ACLList {
	bi := Pos{File: "(built-in)"}
	mk := func(name string, def bool, nodes ...any) *ACLList {
		l := &ACLList{Name: name, DefaultAllow: def, Pos: bi}
		for i := 0; i < len(nodes); i += 2 {
			var pfx netip.Prefix
			switch v := nodes[i].(type) {
			case string:
				pfx = netip.MustParsePrefix(v)
			case netip.Prefix:
				pfx = v
			}
			if pfx.IsValid() {
				l.Nodes = append(l.Nodes, ACLNode{Allow: nodes[i+1].(bool), Prefix: pfx, Pos: bi})
			}
		}
		return l
	}
	local := netip.Prefix{}
	if ip, err := netip.ParseAddr(vars["local_ip_v4"]); err == nil && ip.Is4() {
		bitsN := 32
		if m, err := netip.ParseAddr(vars["local_mask_v4"]); err == nil && m.Is4() {
			if b, ok := maskBits(m); ok {
				bitsN = b
			}
		}
		local = netip.PrefixFrom(ip, bitsN).Masked()
	}
	return map[string]*ACLList{
		"rfc1918.auto": mk("rfc1918.auto", false, "10.0.0.0/8", true, "172.16.0.0/12", true, "192.168.0.0/16", true),
		"wan.auto": mk("wan.auto", true, "0.0.0.0/8", false, "10.0.0.0/8", false, "172.16.0.0/12", false,
			"192.168.0.0/16", false, "169.254.0.0/16", false),
		"nat.auto": mk("nat.auto", false, local, false, "10.0.0.0/8", true, "172.16.0.0/12", true,
			"192.168.0.0/16", true),
		"loopback.auto": mk("loopback.auto", false, "127.0.0.0/8", true),
		"localnet.auto": mk("localnet.auto", false, local, true),
	}
}

// maskBits converts a contiguous dotted mask to a prefix length.
func maskBits(m netip.Addr) (int, bool) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := bits.OnesCount32(v)
	if v != ^uint32(0)<<(32-n) {
		return 0, false
	}
	return n, true
}

func (c *Config) buildACL(cf *node) (*ACL, error) {
	a := &ACL{Lists: builtinACLs(c.Vars)}
	for _, ln := range cf.child("network-lists").all("list") {
		name := ln.attrSoft("name")
		if name == "" {
			continue // FreeSWITCH skips nameless lists
		}
		l := &ACLList{Name: name, DefaultAllow: true, Pos: ln.pos}
		if d, ok := ln.attr("default"); ok {
			l.DefaultAllow = True(d)
		}
		nodes := ln.all("node")
		if len(nodes) == 0 {
			c.note(ln.pos, RuleACLEmptyList, "ACL list %q has no node: FreeSWITCH never registers it, so every use of it denies", name)
			continue
		}
		for _, nn := range nodes {
			allow := l.DefaultAllow
			if t, ok := nn.attr("type"); ok {
				allow = True(t)
			}
			cidr, hasCIDR := nn.attr("cidr")
			host, hasHost := nn.attr("host")
			mask, hasMask := nn.attr("mask")
			switch dom, hasDomain := nn.attr("domain"); {
			case hasDomain:
				l.Nodes = append(l.Nodes, ACLNode{Allow: allow, Domain: dom, Pos: nn.pos})
			case hasCIDR:
				for _, s := range strings.Split(cidr, ",") {
					pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
					if err != nil {
						return nil, errAt(nn.pos, ErrInvalid, "ACL list %q: bad cidr %q (FreeSWITCH would drop this node)", name, s)
					}
					l.Nodes = append(l.Nodes, ACLNode{Allow: allow, Prefix: pfx.Masked(), Pos: nn.pos})
				}
			case hasHost && hasMask:
				h, err1 := netip.ParseAddr(host)
				m, err2 := netip.ParseAddr(mask)
				if err1 != nil || err2 != nil || !h.Is4() || !m.Is4() {
					return nil, errAt(nn.pos, ErrInvalid, "ACL list %q: bad host %q / mask %q", name, host, mask)
				}
				b, ok := maskBits(m)
				if !ok {
					return nil, errAt(nn.pos, ErrInvalid, "ACL list %q: mask %q is not contiguous", name, mask)
				}
				l.Nodes = append(l.Nodes, ACLNode{Allow: allow, Prefix: netip.PrefixFrom(h, b).Masked(), Pos: nn.pos})
			default:
				return nil, errAt(nn.pos, ErrInvalid, "ACL list %q: node without cidr, host+mask or domain", name)
			}
		}
		a.Lists[name] = l
	}
	return a, nil
}
