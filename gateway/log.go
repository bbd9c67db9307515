package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/siprtc/siprtc/gateway/config"
)

// NewLogger builds the logger [log] describes: its level (SRProxy's 0 SENSITIVE .. 5 NONE),
// text or JSON, to standard error or to a file rotated at max_file_size (the file is renamed
// FILE.1, replacing the previous one, and a new one started). The closer closes the file.
func NewLogger(c config.Log, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	if c.Off() {
		return slog.New(slog.DiscardHandler), io.NopCloser(nil), nil
	}
	var (
		w      io.Writer = stderr
		closer io.Closer = io.NopCloser(nil)
	)
	if c.File != "" {
		f, err := openRotating(c.File, c.MaxFileSize)
		if err != nil {
			return nil, nil, err
		}
		w, closer = f, f
	}
	opts := &slog.HandlerOptions{Level: c.Level, ReplaceAttr: levelNames}
	var h slog.Handler
	if c.Format == config.LogJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), closer, nil
}

// levelNames names the sensitive level instead of "DEBUG-4".
func levelNames(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey && len(groups) == 0 {
		if l, ok := a.Value.Any().(slog.Level); ok && l <= config.LevelSensitive {
			a.Value = slog.StringValue("SENSITIVE")
		}
	}
	return a
}

// rotatingFile is an append-only log file renamed to NAME.1 when a write would take it past
// max bytes (0: never).
type rotatingFile struct {
	name string
	max  int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openRotating(name string, max int64) (*rotatingFile, error) {
	r := &rotatingFile{name: name, max: max}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.max > 0 && r.size > 0 && r.size+int64(len(p)) > r.max {
		_ = r.f.Close()
		r.f = nil
		if err := os.Rename(r.name, r.name+".1"); err != nil {
			return 0, fmt.Errorf("log rotation: %w", err)
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
