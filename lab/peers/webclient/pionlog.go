package webclient

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion's logs to the client's logger: pion's trace, debug and info as Debug,
// its warnings and errors as such. pion's default factory would print to stderr on its own.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l pionLogger) emitf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.emitf(slog.LevelDebug-4, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug-2, msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.emitf(slog.LevelDebug-2, format, args...) }
func (l pionLogger) Info(msg string)                   { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.emitf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, format, args...) }
func (l pionLogger) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }
