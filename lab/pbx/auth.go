package pbx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

var (
	errNoCredentials = errors.New("no credentials")
	errStaleNonce    = errors.New("stale nonce")
	errBadNonce      = errors.New("nonce not issued by this PBX")
	errUnknownUser   = errors.New("user not in the directory")
	errWrongPassword = errors.New("wrong password")
	errUserMismatch  = errors.New("authentication user differs from the AOR user")
)

// digestAuth issues and checks RFC 2617/8760 digest challenges the way mod_sofia does: MD5,
// qop=auth, a nonce that lives nonce-ttl seconds. Nonces are stateless (a timestamp signed with a
// per-process key) so a busy registrar keeps no per-challenge memory.
type digestAuth struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time
}

func newDigestAuth(ttl time.Duration) *digestAuth {
	a := &digestAuth{ttl: ttl, now: time.Now}
	if _, err := rand.Read(a.key[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return a
}

func (a *digestAuth) nonce() string {
	ts := strconv.FormatInt(a.now().UnixNano(), 16)
	m := hmac.New(sha256.New, a.key[:])
	m.Write([]byte(ts))
	return ts + "." + hex.EncodeToString(m.Sum(nil)[:12])
}

func (a *digestAuth) checkNonce(n string) error {
	ts, sig, ok := strings.Cut(n, ".")
	if !ok {
		return errBadNonce
	}
	m := hmac.New(sha256.New, a.key[:])
	m.Write([]byte(ts))
	want := hex.EncodeToString(m.Sum(nil)[:12])
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return errBadNonce
	}
	ns, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return errBadNonce
	}
	if a.now().Sub(time.Unix(0, ns)) > a.ttl {
		return errStaleNonce
	}
	return nil
}

// challenge builds the 401 (REGISTER) or 407 (other requests) response carrying a new nonce.
func (a *digestAuth) challenge(req *sip.Request, realm string, stale bool, proxy bool) *sip.Response {
	ch := digest.Challenge{Realm: realm, Nonce: a.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	code, reason, hdr := 401, "Unauthorized", "WWW-Authenticate"
	if proxy {
		code, reason, hdr = 407, "Proxy Authentication Required", "Proxy-Authenticate"
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader(hdr, ch.String()))
	return res
}

// credentials returns the parsed Authorization (or Proxy-Authorization) header, if any.
func credentials(req *sip.Request, proxy bool) (*digest.Credentials, error) {
	name := "Authorization"
	if proxy {
		name = "Proxy-Authorization"
	}
	h := req.GetHeader(name)
	if h == nil {
		return nil, errNoCredentials
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	return cred, nil
}

// verify checks a response computed with password (or with the directory's a1-hash when set).
func (a *digestAuth) verify(cred *digest.Credentials, method, password, a1hash string) error {
	if err := a.checkNonce(cred.Nonce); err != nil {
		return err
	}
	ch := &digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		ch.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(ch, digest.Options{
		Method: method, URI: cred.URI, Username: cred.Username, Password: password,
		A1: a1hash, Cnonce: cred.Cnonce, Count: cred.Nc,
	})
	if err != nil {
		return fmt.Errorf("compute digest: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(want.Response)), []byte(strings.ToLower(cred.Response))) != 1 {
		return errWrongPassword
	}
	return nil
}
