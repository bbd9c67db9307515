package browser_test

import (
	"log/slog"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/siprtc/siprtc/lab/scenario"
)

const confDir = "../../freeswitch/conf"

// world is lab/scenario's world on 127.0.0.1 in real time: the embedded PBX and the gateway,
// which the browser reaches over loopback.
type world struct {
	*scenario.World
	httpAddr string
}

func logger() *slog.Logger {
	level := slog.LevelWarn
	switch os.Getenv("BROWSER_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: level}))
}

// newWorld starts a world; on error nothing is left running (w is nil).
func newWorld() (*world, error) {
	sw, err := scenario.New(scenario.Config{ConfDir: confDir, Logger: logger()})
	if err != nil {
		return nil, err
	}
	return &world{World: sw, httpAddr: sw.HTTPAddr()}, nil
}

// quiesce waits until the gateway and the PBX hold no call.
func (w *world) quiesce() error { return w.Quiesce(10 * time.Second) }
