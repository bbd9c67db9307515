package fsconf

import "strings"

// Directory is the directory section: the SIP users by domain.
type Directory struct {
	Domains map[string]*Domain
	order   []string
}

// Domain is one <domain>.
type Domain struct {
	Name      string
	Params    map[string]string
	Variables map[string]string
	Users     map[string]*User // by id as written
	Pos       Pos
	order     []string
}

// User is one <user id=...> (pointer entries are skipped: they only add a user to a group).
// Params and Variables are merged as FreeSWITCH merges them for authentication and for the
// call (switch_xml_locate_user_merged): the domain's, then the group's, then the user's own,
// the more specific winning. So Params["password"] may come from the domain.
type User struct {
	ID, Domain        string
	Params, Variables map[string]string
	Pos               Pos
	// Additions.
	Group string // the <group> the user is defined in, or ""
	CIDR  string // the cidr attribute: addresses a domain= ACL node allows as this user
}

// Lookup finds a user. The domain is compared without case (as FreeSWITCH's find_child), and
// "" means the default domain.
func (d *Directory) Lookup(user, domain string) (*User, bool) {
	if d == nil {
		return nil, false
	}
	dom := d.domain(domain)
	if dom == nil {
		return nil, false
	}
	if u, ok := dom.Users[user]; ok {
		return u, true
	}
	for _, id := range dom.order {
		if strings.EqualFold(id, user) {
			return dom.Users[id], true
		}
	}
	return nil, false
}

func (d *Directory) domain(name string) *Domain {
	if d == nil {
		return nil
	}
	if name == "" {
		name = d.DefaultDomain()
	}
	if dom, ok := d.Domains[name]; ok {
		return dom
	}
	for _, n := range d.order {
		if strings.EqualFold(n, name) {
			return d.Domains[n]
		}
	}
	return nil
}

// DefaultDomain is the first domain of the directory ("" if there is none).
func (d *Directory) DefaultDomain() string {
	if d == nil || len(d.order) == 0 {
		return ""
	}
	return d.order[0]
}

// DomainNames lists the domains in document order.
func (d *Directory) DomainNames() []string { return append([]string(nil), d.order...) }

// UserIDs lists a domain's users in document order.
func (dom *Domain) UserIDs() []string { return append([]string(nil), dom.order...) }

func readPairs(n *node, elem string) map[string]string {
	m := map[string]string{}
	for _, p := range n.all(elem) {
		m[p.attrSoft("name")] = p.attrSoft("value")
	}
	return m
}

func merged(layers ...map[string]string) map[string]string {
	m := map[string]string{}
	for _, l := range layers {
		for k, v := range l {
			m[k] = v
		}
	}
	return m
}

func (c *Config) buildDirectory(sec *node) (*Directory, error) {
	d := &Directory{Domains: map[string]*Domain{}}
	for _, dn := range sec.all("domain") {
		name, ok := dn.attr("name")
		if !ok || name == "" {
			return nil, errAt(dn.pos, ErrInvalid, "directory domain without a name (is $${domain} defined?)")
		}
		if _, dup := d.Domains[name]; dup {
			c.note(dn.pos, RuleDuplicate, "second directory domain %q: FreeSWITCH only ever finds the first; ignored", name)
			continue
		}
		dom := &Domain{
			Name:      name,
			Params:    readPairs(dn.child("params"), "param"),
			Variables: readPairs(dn.child("variables"), "variable"),
			Users:     map[string]*User{},
			Pos:       dn.pos,
		}
		add := func(un *node, group string, gParams, gVars map[string]string) error {
			if un.attrSoft("type") == "pointer" {
				return nil
			}
			id, ok := un.attr("id")
			if !ok || id == "" {
				return errAt(un.pos, ErrInvalid, "directory user without an id")
			}
			if prev, dup := dom.Users[id]; dup {
				c.note(un.pos, RuleDuplicate, "user %s@%s is defined again (first at %s): FreeSWITCH uses the first", id, name, prev.Pos)
				return nil
			}
			dom.Users[id] = &User{
				ID: id, Domain: name, Pos: un.pos, Group: group, CIDR: un.attrSoft("cidr"),
				Params:    merged(dom.Params, gParams, readPairs(un.child("params"), "param")),
				Variables: merged(dom.Variables, gVars, readPairs(un.child("variables"), "variable")),
			}
			dom.order = append(dom.order, id)
			return nil
		}
		for _, un := range dn.child("users").all("user") {
			if err := add(un, "", nil, nil); err != nil {
				return nil, err
			}
		}
		for _, gn := range dn.child("groups").all("group") {
			gp := readPairs(gn.child("params"), "param")
			gv := readPairs(gn.child("variables"), "variable")
			for _, un := range gn.child("users").all("user") {
				if err := add(un, gn.attrSoft("name"), gp, gv); err != nil {
					return nil, err
				}
			}
		}
		d.Domains[name] = dom
		d.order = append(d.order, name)
	}
	return d, nil
}
