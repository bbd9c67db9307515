package lab

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVirtualRunsInVirtualTime(t *testing.T) {
	wall := time.Now()
	got, err := Virtual(t, func() (time.Duration, error) {
		start := time.Now()
		time.Sleep(time.Hour)
		return time.Since(start), nil
	})
	if err != nil || got != time.Hour {
		t.Fatalf("Virtual = %v, %v; want 1h of virtual time", got, err)
	}
	if d := time.Since(wall); d > 10*time.Second {
		t.Errorf("an hour of virtual time took %v of wall time", d)
	}
}

func TestVirtualReturnsErrorsAndPanics(t *testing.T) {
	errBoom := errors.New("boom")
	if _, err := Virtual(t, func() (int, error) { return 0, errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("error = %v, want %v", err, errBoom)
	}
	if _, err := Virtual(t, func() (int, error) { panic("kaput") }); err == nil || !strings.Contains(err.Error(), "kaput") {
		t.Errorf("panic came back as %v", err)
	}
	if t.Failed() {
		t.Fatal("Virtual failed the test instead of returning the error")
	}
}
