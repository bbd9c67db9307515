package config

import (
	"strconv"
	"strings"
)

// MaxPoolAccounts bounds the accounts an acc_rule may expand to. Each one is a SIP
// registration and a WebRTC identity; a rule like "[0-99999999]" is a typo, not a pool.
const MaxPoolAccounts = 10000

// maxAccountLen is the longest account: RTM user ids, which pool accounts are on the
// WebRTC side, are at most 64 bytes.
const maxAccountLen = 64

// maxRangeDigits keeps from and to within uint64 arithmetic.
const maxRangeDigits = 18

// accToken is one expanded token of an acc_rule.
type accToken struct {
	text     string
	pos      int
	accounts []string
	// mixedWidth: the range outgrows the width of from ("0[8-12]" gives 08 and 012).
	mixedWidth bool
	ranged     bool
	prefix     string
	from       string
}

// ExpandAccRule expands an acc_rule, SRProxy's description of the pool of accounts, into
// the accounts in order: ';'-separated tokens, each a literal account (a SIP user part) or
// prefix[from-to], every number from..to zero-padded to the width of from, exactly as
// SRProxy formats them with "%s%.*d":
//
//	"1005;10[06-19]" -> 1005, 1006, ..., 1019
//	"0[8-12]"        -> 08, 09, 010, 011, 012 (the width of "8" is 1)
//
// Where SRProxy silently skips a token (no '-', from > to, digits missing) or treats a
// broken one as a literal account ("10[06-19"), ExpandAccRule returns an *AccRuleError
// naming the token and its position. Also errors: an empty token (a stray ';'), an account
// that appears twice (SRProxy drops the duplicate), more than MaxPoolAccounts accounts, an
// account longer than 64 bytes or with characters a SIP user part cannot hold unescaped.
// One difference in what is accepted: SRProxy expands a range only when to > from, so
// "10[06-06]" yields nothing there; here it yields 1006.
func ExpandAccRule(rule string) ([]string, error) {
	tokens, err := expandAccTokens(rule)
	if err != nil {
		return nil, err
	}
	var accounts []string
	for _, t := range tokens {
		accounts = append(accounts, t.accounts...)
	}
	return accounts, nil
}

func expandAccTokens(rule string) ([]accToken, error) {
	if rule == "" {
		return nil, &AccRuleError{Msg: "want at least one account or prefix[from-to]"}
	}
	parts := strings.Split(rule, ";")
	tokens := make([]accToken, 0, len(parts))
	seen := map[string]int{} // account -> position of the token that produced it
	total := 0
	for i, text := range parts {
		pos := i + 1
		fail := func(msg string) ([]accToken, error) {
			return nil, &AccRuleError{Token: text, Pos: pos, Msg: msg}
		}
		tok := accToken{text: text, pos: pos}
		if text == "" {
			return fail("want an account or prefix[from-to], found an empty token (a stray ';')")
		}
		open := strings.IndexByte(text, '[')
		if open < 0 {
			if strings.IndexByte(text, ']') >= 0 {
				return fail("want prefix[from-to], found ']' without '['")
			}
			if msg := checkAccount(text); msg != "" {
				return fail(msg)
			}
			if total >= MaxPoolAccounts {
				return fail("want at most " + strconv.Itoa(MaxPoolAccounts) + " accounts in the pool")
			}
			tok.accounts = []string{text}
		} else {
			if !strings.HasSuffix(text, "]") {
				return fail("want prefix[from-to] ending with ']'")
			}
			prefix, body := text[:open], text[open+1:len(text)-1]
			if strings.ContainsAny(prefix, "]") || strings.ContainsAny(body, "[]") {
				return fail("want one [from-to] range at the end of the token")
			}
			if prefix != "" {
				if msg := checkAccount(prefix); msg != "" {
					return fail("prefix: " + msg)
				}
			}
			from, to, ok := strings.Cut(body, "-")
			if !ok {
				return fail("want [from-to] with a '-' between two numbers")
			}
			if !isDigits(from) || !isDigits(to) {
				return fail("want decimal digits on both sides of '-' in [from-to]")
			}
			if len(from) > maxRangeDigits || len(to) > maxRangeDigits {
				return fail("want at most " + strconv.Itoa(maxRangeDigits) + " digits in from and to")
			}
			lo, _ := strconv.ParseUint(from, 10, 64)
			hi, _ := strconv.ParseUint(to, 10, 64)
			if lo > hi {
				return fail("want from <= to in [from-to]")
			}
			if hi-lo >= uint64(MaxPoolAccounts-total) {
				return fail("want at most " + strconv.Itoa(MaxPoolAccounts) + " accounts in the pool")
			}
			width := len(from)
			last := padNumber(prefix, hi, width)
			if len(last) > maxAccountLen {
				return fail("want accounts of at most " + strconv.Itoa(maxAccountLen) + " bytes")
			}
			tok.ranged, tok.prefix, tok.from = true, prefix, from
			tok.mixedWidth = len(last) != len(padNumber(prefix, lo, width))
			tok.accounts = make([]string, 0, hi-lo+1)
			for n := lo; ; n++ {
				tok.accounts = append(tok.accounts, padNumber(prefix, n, width))
				if n == hi {
					break
				}
			}
		}
		for _, acc := range tok.accounts {
			if first, dup := seen[acc]; dup {
				if first == pos {
					return fail("want each account once: " + quoteValue(acc) + " comes out twice")
				}
				return fail("want each account once: " + quoteValue(acc) + " also comes from token " +
					strconv.Itoa(first) + " " + quoteValue(parts[first-1]))
			}
			seen[acc] = pos
		}
		total += len(tok.accounts)
		tokens = append(tokens, tok)
	}
	return tokens, nil
}

// padNumber formats prefix and n zero-padded to width digits, as C's "%s%.*d".
func padNumber(prefix string, n uint64, width int) string {
	digits := strconv.FormatUint(n, 10)
	var b strings.Builder
	b.Grow(len(prefix) + max(width, len(digits)))
	b.WriteString(prefix)
	for i := len(digits); i < width; i++ {
		b.WriteByte('0')
	}
	b.WriteString(digits)
	return b.String()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkAccount returns what is wrong with an account (a SIP user part), or "".
// The allowed characters are RFC 3261's unreserved and user-unreserved ones except ';',
// acc_rule's separator, and '%' for escapes.
func checkAccount(acc string) string {
	if acc == "" {
		return "want an account"
	}
	if len(acc) > maxAccountLen {
		return "want at most " + strconv.Itoa(maxAccountLen) + " bytes"
	}
	for i := 0; i < len(acc); i++ {
		c := acc[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case strings.IndexByte("-_.!~*'()&=+$,?/%", c) >= 0:
		case c == '@':
			return "want a SIP user part without @domain (the domain is [global] sip_svr)"
		default:
			return "want a SIP user part (letters, digits, -_.!~*'()&=+$,?/%), found " + strconv.Quote(acc[i:i+1])
		}
	}
	return ""
}
