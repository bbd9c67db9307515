package astconf

import (
	"reflect"
	"regexp"
	"strconv"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		expr     string
		extens   []string
		captures []map[int]string
	}{
		{`^0(.*)$`, []string{"_0!"}, []map[int]string{{1: "${EXTEN:1}"}}},
		{`^(1[0-9][0-9][0-9]|20[0-9][0-9])$`, []string{"_1XXX", "_20XX"}, []map[int]string{{1: "${EXTEN}"}, {1: "${EXTEN}"}}},
		{`^(2[1-5][0-9][0-9])$`, []string{"_2[1-5]XX"}, []map[int]string{{1: "${EXTEN}"}}},
		{`^9196$`, []string{"9196"}, []map[int]string{{}}},
		{`^(10[01][0-9])$`, []string{"_10[01]X"}, []map[int]string{{1: "${EXTEN}"}}},
		{`^\*(\d{2})(\d+)$`, nil, nil}, // \d+ is an open repetition of a class: not expressible
		{`^(\d{3})(\d{4})$`, []string{"_XXXXXXX"}, []map[int]string{{1: "${EXTEN:0:3}", 2: "${EXTEN:3:4}"}}},
		{`^1(2)?3$`, []string{"_13", "_123"}, nil},
		{`^9(.+)$`, []string{"_9."}, []map[int]string{{1: "${EXTEN:1}"}}},
		{`^555`, []string{"_555!"}, nil},
		{`^[2-9]X$`, []string{"_N[X]"}, nil},
		{`1000`, nil, nil}, // not anchored
		{`^(a|b)+$`, nil, nil},
	}
	for _, tt := range tests {
		got, err := Patterns(tt.expr)
		if tt.extens == nil {
			if err == nil {
				t.Errorf("Patterns(%q) = %v, want an error", tt.expr, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("Patterns(%q): %v", tt.expr, err)
			continue
		}
		var extens []string
		for _, p := range got {
			extens = append(extens, p.Exten)
		}
		if tt.expr == `^1(2)?3$` {
			// Plain extensions need no '_'; the order follows the expansion.
			tt.extens = []string{"13", "123"}
		}
		if !reflect.DeepEqual(extens, tt.extens) {
			t.Errorf("Patterns(%q) = %v, want %v", tt.expr, extens, tt.extens)
		}
		if tt.captures != nil {
			for i, p := range got {
				if !reflect.DeepEqual(p.Captures, tt.captures[i]) {
					t.Errorf("Patterns(%q)[%d] captures = %v, want %v", tt.expr, i, p.Captures, tt.captures[i])
				}
			}
		}
	}
}

// TestPatternsMatchLikeTheRegex checks the translation of the configuration's expressions on
// every number of a range: a number matches one of the patterns exactly when it matches the
// regular expression.
func TestPatternsMatchLikeTheRegex(t *testing.T) {
	numbers := []string{"0", "01", "0123456789", "00", "9196", "91961", "9190", "999", "1", "10", "100", "1000",
		"1019", "1099", "1999", "2000", "2099", "2100", "2599", "2600", "3000", "10000", "*98", "#1", "+4930"}
	for n := 0; n < 10000; n += 7 {
		numbers = append(numbers, strconv.Itoa(n))
	}
	for _, expr := range []string{`^0(.*)$`, `^(1[0-9][0-9][0-9]|20[0-9][0-9])$`, `^(2[1-5][0-9][0-9])$`, `^9196$`, `^9190$`, `^(\d{3})(\d{4})$`, `^9(.+)$`, `^555`} {
		pats, err := Patterns(expr)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(expr)
		for _, n := range numbers {
			want := re.MatchString(n)
			got := false
			for _, p := range pats {
				got = got || p.Match(n)
			}
			if got != want {
				t.Errorf("%q on %q: patterns %v match %v, the expression %v", expr, n, pats, got, want)
			}
		}
	}
}
