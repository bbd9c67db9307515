package sipua

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func isChallenge(res *sip.Response) bool {
	return res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired
}

// authorize answers the digest challenge of res (WWW-Authenticate for 401, Proxy-Authenticate
// for 407) on req with the account's credentials, the request line's URI as digest-uri.
func authorize(acc *Account, req *sip.Request, res *sip.Response) error {
	challengeName, credentialsName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		challengeName, credentialsName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(challengeName)
	if h == nil {
		return fmt.Errorf("%w: %d without %s", ErrAuth, res.StatusCode, challengeName)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return fmt.Errorf("%w: %s %q: %w", ErrAuth, challengeName, h.Value(), err)
	}
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	user := acc.AuthUser
	if user == "" {
		user = acc.User
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method:   string(req.Method),
		URI:      req.Recipient.String(),
		Username: user,
		Password: acc.Password,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	req.RemoveHeader(credentialsName)
	req.AppendHeader(sip.NewHeader(credentialsName, cred.String()))
	return nil
}
