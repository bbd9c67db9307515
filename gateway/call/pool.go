package call

import (
	"errors"
	"slices"
	"sync"
)

// ErrNoAccount: every pool account is held by another user.
var ErrNoAccount = errors.New("call: no free pool account")

// accountPool maps WebRTC users to the SIP accounts their calls leave from (see the package
// documentation for the rule). It is safe for concurrent use.
type accountPool struct {
	accounts []string
	inPool   map[string]bool

	mu       sync.Mutex
	holder   map[string]string // account -> user holding it
	held     map[string]string // user -> account
	lastUsed map[string]uint64 // account -> assignment order (0: never)
	clock    uint64
}

func newAccountPool(accounts []string) *accountPool {
	p := &accountPool{
		accounts: slices.Clone(accounts), inPool: map[string]bool{},
		holder: map[string]string{}, held: map[string]string{}, lastUsed: map[string]uint64{},
	}
	for _, a := range accounts {
		p.inPool[a] = true
	}
	return p
}

// acquire returns the account user calls from: the user's own name when it is a pool account,
// else the account the user already holds, else the least recently assigned free account
// (registered ones first, when registered is given), which the user then holds until release.
func (p *accountPool) acquire(user string, registered func(string) bool) (string, error) {
	if p.inPool[user] {
		return user, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.held[user]; ok {
		return a, nil
	}
	best := ""
	bestRank := [2]uint64{}
	for _, a := range p.accounts {
		if _, taken := p.holder[a]; taken {
			continue
		}
		var unreg uint64
		if registered != nil && !registered(a) {
			unreg = 1
		}
		rank := [2]uint64{unreg, p.lastUsed[a]}
		if best == "" || rank[0] < bestRank[0] || (rank[0] == bestRank[0] && rank[1] < bestRank[1]) {
			best, bestRank = a, rank
		}
	}
	if best == "" {
		return "", ErrNoAccount
	}
	p.clock++
	p.lastUsed[best] = p.clock
	p.holder[best] = user
	p.held[user] = best
	return best, nil
}

// holderOf is the user a call to account is for: the user holding it, else the account's own
// name (a user logged in under the pool account's number).
func (p *accountPool) holderOf(account string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.holder[account]; ok {
		return u
	}
	return account
}

// release frees the account user holds (its session ended).
func (p *accountPool) release(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.held[user]; ok {
		delete(p.held, user)
		delete(p.holder, a)
	}
}

func (p *accountPool) contains(account string) bool { return p.inPool[account] }
