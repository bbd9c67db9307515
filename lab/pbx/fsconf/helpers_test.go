package fsconf

import (
	"os"
	"path/filepath"
	"testing"
)

const baseTop = `<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="include" data="vars.xml"/>
  <section name="configuration" description="Various Configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
  <section name="dialplan" description="Regex/XML Dialplan">
    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>
  </section>
  <section name="directory" description="User Directory">
    <X-PRE-PROCESS cmd="include" data="directory/*.xml"/>
  </section>
</document>
`

// writeConf writes a small conf dir: a standard freeswitch.xml, a vars.xml setting
// domain=example.org, and the given files (an empty content deletes a default file).
func writeConf(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{
		"freeswitch.xml": baseTop,
		"vars.xml":       "<include>\n  <X-PRE-PROCESS cmd=\"set\" data=\"domain=example.org\"/>\n</include>\n",
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		if content == "" {
			continue
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dialplanConf loads a conf whose dialplan/t.xml holds context "t" with body.
func dialplanConf(t *testing.T, body string) *Config {
	t.Helper()
	dir := writeConf(t, map[string]string{
		"dialplan/t.xml": "<include>\n<context name=\"t\">\n" + body + "\n</context>\n</include>\n",
	})
	c, err := Load(dir, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}
