package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func seq(prefix string, from, to, width int) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, fmt.Sprintf("%s%0*d", prefix, width, n))
	}
	return out
}

func TestExpandAccRule(t *testing.T) {
	tests := []struct {
		rule string
		want []string
	}{
		{"1005", []string{"1005"}},
		{"1005;10[06-19]", append([]string{"1005"}, seq("10", 6, 19, 2)...)},
		{"10[06-19]", seq("10", 6, 19, 2)},
		// SRProxy's "%s%.*d" pads to the width of from only: 8 has one digit.
		{"0[8-12]", []string{"08", "09", "010", "011", "012"}},
		{"[1-3]", []string{"1", "2", "3"}},
		{"[1-12]", seq("", 1, 12, 1)},
		// to narrower than from: the width of from still rules.
		{"[010-12]", []string{"010", "011", "012"}},
		// SRProxy expands nothing when from == to; one account is what the rule says.
		{"10[06-06]", []string{"1006"}},
		{"alice;bob.smith;agent-7", []string{"alice", "bob.smith", "agent-7"}},
		{"+86[1-2]", []string{"+861", "+862"}},
		{"[0-9999]", seq("", 0, 9999, 1)},
		{"20[01-05];1016;1017", append(seq("20", 1, 5, 2), "1016", "1017")},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got, err := ExpandAccRule(tt.rule)
			if err != nil {
				t.Fatalf("ExpandAccRule(%q): %v", tt.rule, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExpandAccRule(%q) = %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
}

func TestExpandAccRuleErrors(t *testing.T) {
	tests := []struct {
		rule string
		pos  int
		want string
	}{
		{"", 0, `acc_rule: want at least one account or prefix[from-to]`},
		{"1005;", 2, `acc_rule token 2 "": want an account or prefix[from-to], found an empty token (a stray ';')`},
		{"1005;;1006", 2, `acc_rule token 2 "": want an account or prefix[from-to], found an empty token (a stray ';')`},
		{"1005;10[06-19", 2, `acc_rule token 2 "10[06-19": want prefix[from-to] ending with ']'`},
		{"10[06-19]x", 1, `acc_rule token 1 "10[06-19]x": want prefix[from-to] ending with ']'`},
		{"1006]", 1, `acc_rule token 1 "1006]": want prefix[from-to], found ']' without '['`},
		{"1[0-9][0-9]", 1, `acc_rule token 1 "1[0-9][0-9]": want one [from-to] range at the end of the token`},
		{"10[06]", 1, `acc_rule token 1 "10[06]": want [from-to] with a '-' between two numbers`},
		{"10[a-9]", 1, `acc_rule token 1 "10[a-9]": want decimal digits on both sides of '-' in [from-to]`},
		{"10[-9]", 1, `acc_rule token 1 "10[-9]": want decimal digits on both sides of '-' in [from-to]`},
		{"10[1-2-3]", 1, `acc_rule token 1 "10[1-2-3]": want decimal digits on both sides of '-' in [from-to]`},
		{"10[19-06]", 1, `acc_rule token 1 "10[19-06]": want from <= to in [from-to]`},
		{"1006;10[06-19]", 2, `acc_rule token 2 "10[06-19]": want each account once: "1006" also comes from token 1 "1006"`},
		{"10[06-19];1019", 2, `acc_rule token 2 "1019": want each account once: "1019" also comes from token 1 "10[06-19]"`},
		{"1[0-9];1[5-6]", 2, `acc_rule token 2 "1[5-6]": want each account once: "15" also comes from token 1 "1[0-9]"`},
		{"[0-10000]", 1, `acc_rule token 1 "[0-10000]": want at most 10000 accounts in the pool`},
		{"[1-9999];[0-0]x;", 2, `acc_rule token 2 "[0-0]x": want prefix[from-to] ending with ']'`},
		{"[0-9999];x", 2, `acc_rule token 2 "x": want at most 10000 accounts in the pool`},
		{"x[1-1234567890123456789]", 1, `acc_rule token 1 "x[1-1234567890123456789]": want at most 18 digits in from and to`},
		{strings.Repeat("1", 63) + "[0-99]", 1, `acc_rule token 1 "` + strings.Repeat("1", 63) + `[0-99]": want accounts of at most 64 bytes`},
		{strings.Repeat("a", 65), 1, `acc_rule token 1 "` + strings.Repeat("a", 65) + `": want at most 64 bytes`},
		{"1000@pbx", 1, `acc_rule token 1 "1000@pbx": want a SIP user part without @domain (the domain is [global] sip_svr)`},
		{"10 06", 1, `acc_rule token 1 "10 06": want a SIP user part (letters, digits, -_.!~*'()&=+$,?/%), found " "`},
		{"a#b[1-2]", 1, `acc_rule token 1 "a#b[1-2]": prefix: want a SIP user part (letters, digits, -_.!~*'()&=+$,?/%), found "#"`},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got, err := ExpandAccRule(tt.rule)
			if err == nil {
				t.Fatalf("ExpandAccRule(%q) = %v, want error %q", tt.rule, got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ExpandAccRule(%q) error\n got: %s\nwant: %s", tt.rule, err, tt.want)
			}
			var ae *AccRuleError
			if !errors.As(err, &ae) || ae.Pos != tt.pos || !errors.Is(err, ErrAccRule) {
				t.Errorf("ExpandAccRule(%q) error %#v: want an *AccRuleError at position %d wrapping ErrAccRule", tt.rule, err, tt.pos)
			}
		})
	}
}

func FuzzExpandAccRule(f *testing.F) {
	for _, seed := range []string{"1005;10[06-19]", "0[8-12]", "[1-12]", "10[06", "]", "[-]", "1;1", "[0-9999]", "a[1-2];b[3-4]", ";", "[00000000000000000000-1]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rule string) {
		accounts, err := ExpandAccRule(rule)
		if err != nil {
			if !errors.Is(err, ErrAccRule) {
				t.Fatalf("ExpandAccRule(%q): error %v does not wrap ErrAccRule", rule, err)
			}
			return
		}
		if len(accounts) == 0 || len(accounts) > MaxPoolAccounts {
			t.Fatalf("ExpandAccRule(%q) gave %d accounts", rule, len(accounts))
		}
		seen := map[string]bool{}
		for _, acc := range accounts {
			if msg := checkAccount(acc); msg != "" {
				t.Fatalf("ExpandAccRule(%q) gave account %q: %s", rule, acc, msg)
			}
			if seen[acc] {
				t.Fatalf("ExpandAccRule(%q) gave %q twice", rule, acc)
			}
			seen[acc] = true
		}
	})
}
