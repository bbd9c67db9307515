package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siprtc/siprtc/gateway"
	"github.com/siprtc/siprtc/gateway/config"
	"github.com/siprtc/siprtc/gateway/signaling"
)

func configLog(file string, max int64) config.Log {
	return config.Log{Level: slog.LevelInfo, File: file, MaxFileSize: max, Format: config.LogJSON}
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return st.Size()
}

// TestLogLevels: [log] level is SRProxy's 0 SENSITIVE .. 5 NONE; each lets through its own level
// and the ones above.
func TestLogLevels(t *testing.T) {
	if config.LevelSensitive != signaling.LevelSensitive {
		t.Fatalf("config's and signaling's SENSITIVE levels differ: %v, %v", config.LevelSensitive, signaling.LevelSensitive)
	}
	emit := []struct {
		level slog.Level
		name  string
	}{{config.LevelSensitive, "sensitive"}, {slog.LevelDebug, "debug"}, {slog.LevelInfo, "info"}, {slog.LevelWarn, "warn"}, {slog.LevelError, "error"}}
	for srproxy := 0; srproxy <= 5; srproxy++ {
		path := filepath.Join(t.TempDir(), "rtx.conf")
		conf := fmt.Sprintf("[global]\nsip_svr=127.0.0.1:5060\n[proxy]\non=1\nsip_account=1000\nsip_pwd=secret\n[log]\nlevel=%d\n", srproxy)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		log, closer, err := gateway.NewLogger(cfg.Log, &out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range emit {
			log.Log(context.Background(), e.level, e.name)
		}
		_ = closer.Close()
		for i, e := range emit {
			want := srproxy < 5 && i >= srproxy // level N shows emit[N:]; 5 shows nothing
			if got := strings.Contains(out.String(), "msg="+e.name); got != want {
				t.Errorf("level=%d: a %s line logged %v, want %v\n%s", srproxy, e.name, got, want, out.String())
			}
		}
		if srproxy == 0 && !strings.Contains(out.String(), "level=SENSITIVE") {
			t.Errorf("level=0 names its lines SENSITIVE:\n%s", out.String())
		}
	}
}
