package fsconf

import (
	"errors"
	"net/netip"
	"testing"
)

func TestACLSemantics(t *testing.T) {
	dir := writeConf(t, map[string]string{
		"autoload_configs/acl.conf.xml": `<configuration name="acl.conf">
  <network-lists>
    <list name="specific" default="deny">
      <node type="allow" cidr="10.0.0.0/8"/>
      <node type="deny" cidr="10.1.0.0/16"/>
      <node type="allow" cidr="10.1.2.0/24"/>
      <node type="allow" cidr="2001:db8::/32"/>
    </list>
    <list name="tie" default="allow">
      <node type="allow" cidr="10.0.0.0/8"/>
      <node type="deny" cidr="10.9.9.9/8"/>
    </list>
    <list name="zero" default="deny">
      <node type="allow" cidr="0.0.0.0/0"/>
    </list>
    <list name="nodefault">
      <node type="deny" cidr="192.0.2.0/24,198.51.100.0/24"/>
    </list>
    <list name="hostmask" default="deny">
      <node type="allow" host="172.16.5.0" mask="255.255.255.0"/>
    </list>
    <list name="users" default="deny">
      <node type="allow" domain="$${domain}"/>
    </list>
    <list name="empty" default="allow"/>
    <list name="localnet.auto" default="deny">
      <node type="allow" cidr="203.0.113.0/24"/>
    </list>
  </network-lists>
</configuration>`,
		"directory/default.xml": `<include><domain name="$${domain}"><users>
  <user id="1000" cidr="198.51.100.7/32"/>
  <user id="1001" cidr="198.51.100.0/24,203.0.113.9/32"/>
</users></domain></include>`,
	})
	c, err := Load(dir, Options{Vars: map[string]string{"local_ip_v4": "192.168.5.10", "local_mask_v4": "255.255.255.0"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		list, ip string
		want     bool
		token    string
	}{
		{"specific", "10.1.2.3", true, ""},  // /24 allow beats /16 deny
		{"specific", "10.1.3.3", false, ""}, // /16 deny beats /8 allow
		{"specific", "10.2.0.1", true, ""},
		{"specific", "11.0.0.1", false, ""}, // default
		{"specific", "2001:db8::1", true, ""},
		{"specific", "::ffff:10.1.2.3", true, ""}, // mapped addresses are IPv4
		{"tie", "10.0.0.1", false, ""},            // equally specific: the last node wins
		{"zero", "8.8.8.8", false, ""},            // a /0 node never matches
		{"nodefault", "8.8.8.8", true, ""},        // default is allow without the attribute
		{"nodefault", "198.51.100.1", false, ""},  // comma-separated CIDRs
		{"hostmask", "172.16.5.77", true, ""},
		{"hostmask", "172.16.6.1", false, ""},
		{"users", "198.51.100.7", true, "1000@example.org"}, // /32 of 1000 beats /24 of 1001
		{"users", "198.51.100.8", true, "1001@example.org"},
		{"users", "203.0.113.9", true, "1001@example.org"},
		{"users", "203.0.113.10", false, ""},
		{"localnet.auto", "203.0.113.1", true, ""}, // acl.conf.xml replaces a built-in
		{"nat.auto", "192.168.5.20", false, ""},    // the local network is not NAT
		{"nat.auto", "192.168.6.20", true, ""},
		{"rfc1918.auto", "172.20.0.1", true, ""},
		{"wan.auto", "10.77.1.1", false, ""},
		{"wan.auto", "127.0.0.1", true, ""},
		{"loopback.auto", "127.3.4.5", true, ""},
		{"10.0.0.0/8,127.0.0.0/8", "127.0.0.1", true, ""}, // a CIDR list instead of a name
		{"10.0.0.0/8", "11.0.0.1", false, ""},
	} {
		got, tok, err := c.ACL.CheckToken(tc.list, netip.MustParseAddr(tc.ip), c.Directory)
		if err != nil || got != tc.want || tok != tc.token {
			t.Errorf("CheckToken(%s, %s) = %v %q %v; want %v %q", tc.list, tc.ip, got, tok, err, tc.want, tc.token)
		}
	}
	// FreeSWITCH never registers a list without nodes.
	if _, err := c.ACL.Check("empty", netip.MustParseAddr("127.0.0.1"), c.Directory); !errors.Is(err, ErrUnknownList) {
		t.Errorf("empty list: %v", err)
	}
	found := false
	for _, f := range c.Lint() {
		found = found || f.Rule == RuleACLEmptyList
	}
	if !found {
		t.Error("no acl-empty-list finding")
	}
	// Default localnet.auto comes from local_ip_v4/local_mask_v4.
	c2, err := Load(writeConf(t, nil), Options{Vars: map[string]string{"local_ip_v4": "192.168.5.10", "local_mask_v4": "255.255.255.0"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"192.168.5.99": true, "192.168.6.1": false} {
		if got, _ := c2.ACL.Check("localnet.auto", netip.MustParseAddr(ip), nil); got != want {
			t.Errorf("localnet.auto %s = %v", ip, got)
		}
	}
}
