package signaling

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A login token is
//
//	base64url( userID "." expiryUnix "." HMAC-SHA256(appSecret, userID "." expiryUnix) )
//
// with the 32 raw MAC bytes after the second dot and unpadded base64url (padding is accepted).
// The user id may itself contain dots: the expiry is the text between the last dot before the
// MAC and the MAC. The application's server, which knows the app secret, mints tokens; the
// gateway checks them at login only (a session outlives its token's expiry).

// MakeToken mints a login token for user, valid until expiry.
func MakeToken(secret []byte, user string, expiry time.Time) string {
	payload := user + "." + strconv.FormatInt(expiry.Unix(), 10)
	raw := append([]byte(payload+"."), tokenMAC(secret, payload)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// VerifyToken checks token against secret at time now and returns the user it names.
// It returns ErrInvalidToken for anything malformed or not signed by secret (checked before the
// expiry, so a forged token never reads as merely expired) and ErrTokenExpired once now has
// reached the expiry.
func VerifyToken(secret []byte, token string, now time.Time) (user string, expiry time.Time, err error) {
	if len(token) == 0 || len(token) > maxTokenBytes {
		return "", time.Time{}, ErrInvalidToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token, "="))
	if err != nil || len(raw) < sha256.Size+4 || raw[len(raw)-sha256.Size-1] != '.' {
		return "", time.Time{}, ErrInvalidToken
	}
	payload := string(raw[:len(raw)-sha256.Size-1])
	if !hmac.Equal(raw[len(raw)-sha256.Size:], tokenMAC(secret, payload)) {
		return "", time.Time{}, ErrInvalidToken
	}
	dot := strings.LastIndexByte(payload, '.')
	if dot < 0 {
		return "", time.Time{}, ErrInvalidToken
	}
	user = payload[:dot]
	unix, err := strconv.ParseInt(payload[dot+1:], 10, 64)
	if err != nil || validUserID(user) != "" {
		return "", time.Time{}, ErrInvalidToken
	}
	expiry = time.Unix(unix, 0)
	if !now.Before(expiry) {
		return user, expiry, ErrTokenExpired
	}
	return user, expiry, nil
}

func tokenMAC(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// validUserID returns why id is not a user id, or "". User ids are 1 to 64 bytes of printable
// ASCII without space: SIP user parts and account numbers fit, and nothing needs escaping.
func validUserID(id string) string {
	if id == "" {
		return "is empty"
	}
	if len(id) > MaxUserIDBytes {
		return "exceeds " + strconv.Itoa(MaxUserIDBytes) + " bytes"
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return "must be printable ASCII without spaces"
		}
	}
	return ""
}
