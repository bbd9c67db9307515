package fsconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateDirectory(t *testing.T) {
	dir := writeConf(t, map[string]string{
		"directory/default.xml": `<include><domain name="$${domain}"><groups><group name="default"><users>
  <X-PRE-PROCESS cmd="include" data="default/*.xml"/>
</users></group></groups></domain></include>`,
		// A hand-written user outside the range: never removed.
		"directory/default/3000.xml": `<include><user id="3000"/></include>`,
	})
	if n, err := GenerateDirectory(dir, 1000, 1009); err != nil || n != 10 {
		t.Fatalf("GenerateDirectory: %d %v", n, err)
	}
	// Narrowing the range removes the generated files outside it.
	if n, err := GenerateDirectory(dir, 1000, 1004); err != nil || n != 5 {
		t.Fatalf("GenerateDirectory: %d %v", n, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "directory/default"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "1000.xml 1001.xml 1002.xml 1003.xml 1004.xml 3000.xml" {
		t.Fatalf("files %s", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "directory/default/1003.xml"))
	if !bytes.Equal(b, UserXML(1003)) {
		t.Errorf("1003.xml is not UserXML(1003)")
	}
	c, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := c.Directory.Lookup("1003", "example.org")
	if !ok || u.Params["vm-password"] != "1003" || u.Variables["accountcode"] != "1003" || len(c.Directory.Domains["example.org"].Users) != 6 {
		t.Errorf("generated users do not load: %+v", u)
	}
	for _, f := range c.Lint() {
		if f.Rule == RuleUndefinedVar && strings.HasPrefix(f.Pos.File, "directory/default/1") {
			return // default_password is not set in this small conf: expected
		}
	}
	t.Error("the template's $${default_password} should be reported undefined here")
}

func TestGenerateDirectoryErrors(t *testing.T) {
	dir := writeConf(t, nil)
	for _, r := range [][2]int{{2000, 1000}, {999, 1000}, {1000, 10000}, {0, 0}} {
		if _, err := GenerateDirectory(dir, r[0], r[1]); !errors.Is(err, ErrGenerate) {
			t.Errorf("GenerateDirectory(%d, %d): %v", r[0], r[1], err)
		}
	}
	if _, err := GenerateDirectory(t.TempDir(), 1000, 1001); !errors.Is(err, ErrGenerate) {
		t.Errorf("not a conf dir: %v", err)
	}
}
