package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhq/kiln/metrics/cloudwatch/cwfake"
)

// TestTickCadences drives the loop's tick with a fake clock: probes and scrapes run every
// interval, publishing every cloudwatch.interval, independently.
func TestTickCadences(t *testing.T) {
	app := newFakeApp(t)
	cw := cwfake.New(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
interval: 15s
host: {enabled: false}
textfile: {dir: ""}
scrape: [{name: app, url: "%s/metrics"}]
cloudwatch: {enabled: true, region: us-east-1, endpoint: %s, interval: 1s, include: ["^kiln_metrics_scrape_up$"]}
`, app.srv.URL, cw.URL())), 0o644)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	d, err := NewDaemon(context.Background(), DaemonOptions{ConfigPath: cfg, Getenv: env("AWS_ACCESS_KEY_ID", "a", "AWS_SECRET_ACCESS_KEY", "b"),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for range 31 { // t = 0s .. 30s
		d.tick(context.Background())
		now = now.Add(time.Second)
	}
	app.mu.Lock()
	scrapes := app.scrapes
	app.mu.Unlock()
	if scrapes != 3 {
		t.Errorf("app scraped %d times in 30s at a 15s interval, want 3 (0s, 15s, 30s)", scrapes)
	}
	// The publisher is not running (no Run), so every published datum is still buffered.
	if got := d.state().pub.Stats().Buffered; got != 31 {
		t.Errorf("%d datums published in 31 one-second ticks, want 31", got)
	}
}

// TestRunStopsWhenTheListenerFails: a failing listener ends Run (and its loop) instead of
// leaving the daemon half alive.
func TestRunStopsWhenTheListenerFails(t *testing.T) {
	d, err := NewDaemon(context.Background(), DaemonOptions{Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	ln := &failingListener{}
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background(), ln) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run should report the listener's failure")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its listener failed")
	}
}

type failingListener struct{}

func (failingListener) Accept() (net.Conn, error) { return nil, errors.New("listener broke") }
func (failingListener) Close() error              { return nil }
func (failingListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestUntilDue(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	d, err := NewDaemon(context.Background(), DaemonOptions{Getenv: env(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d.lastRefresh = now.Add(-4 * time.Second) // a tick that took time still keeps the 15s cadence
	if got := d.untilDue(); got != 11*time.Second {
		t.Errorf("untilDue = %v, want 11s", got)
	}
}
