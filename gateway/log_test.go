package gateway_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/siprtc/siprtc/gateway/config"
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
