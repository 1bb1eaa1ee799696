// Package testpeers starts real third-party servers for tests: dynalite (a
// DynamoDB API server, installed from npm at a pinned version on first use)
// and an in-process S3 server (gofakes3). Every peer listens on 127.0.0.1 on
// a free port and is stopped by t.Cleanup, also when the test fails.
package testpeers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// DynaliteVersion is the pinned npm version of dynalite the helpers install.
const DynaliteVersion = "4.0.0"

// TB is the part of testing.TB the helpers need; benchmarks and tests both fit.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

var _ TB = (testing.TB)(nil)

// PeersDir is where pinned peers are installed: os.UserCacheDir()/kiln/peers.
func PeersDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find user cache dir: %w", err)
	}
	return filepath.Join(base, "kiln", "peers"), nil
}

// InstallDynalite installs dynalite@DynaliteVersion with npm into PeersDir
// unless it is already there, and returns the path of a script that runs
// its cli.js (see dynaliteWrapper). Concurrent
// callers (several test binaries) are serialised by a file lock.
func InstallDynalite(ctx context.Context) (string, error) {
	peers, err := PeersDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(peers, "dynalite-"+DynaliteVersion)
	cli := filepath.Join(dir, "node_modules", "dynalite", "cli.js")
	done := filepath.Join(dir, ".installed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install dynalite: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(peers, "dynalite.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("install dynalite: open lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("install dynalite: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	wrapper := filepath.Join(dir, "kiln-dynalite.js")
	if err := os.WriteFile(wrapper, []byte(dynaliteWrapper), 0o644); err != nil {
		return "", fmt.Errorf("install dynalite: %w", err)
	}
	if _, err := os.Stat(done); err == nil {
		return wrapper, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("install dynalite: npm is not on PATH (install Node.js 20 and npm): %w", err)
	}
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "dynalite@"+DynaliteVersion)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("install dynalite: npm install: %w\n%s", err, out.String())
	}
	if _, err := os.Stat(cli); err != nil {
		return "", fmt.Errorf("install dynalite: npm finished but %s is missing: %w", cli, err)
	}
	if err := os.WriteFile(done, []byte(DynaliteVersion+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("install dynalite: %w", err)
	}
	return wrapper, nil
}

// dynaliteWrapper starts dynalite's cli.js but survives clients that
// disconnect mid-request: dynalite 4.0.0 rethrows the request's 'aborted'
// error (index.js: req.on('error', function (err) { throw err })), which
// kills the whole server, and kiln's kill -9 tests do exactly that.
const dynaliteWrapper = `'use strict'
process.on('uncaughtException', function (err) {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) return
  console.error(err)
  process.exit(1)
})
require('./node_modules/dynalite/cli.js')
`

// Dynalite starts a fresh in-memory dynalite on 127.0.0.1 and returns its
// endpoint URL (http://127.0.0.1:port). It is stopped on t.Cleanup.
func Dynalite(t TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := InstallDynalite(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("dynalite needs node on PATH: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("%v", err)
		}
		cmd := exec.Command(node, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start dynalite: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
		if err := waitHTTP(ctx, endpoint, exited); err != nil {
			stop()
			lastErr = fmt.Errorf("dynalite on port %d: %w\n%s", port, err, out.String())
			continue
		}
		t.Cleanup(func() {
			select {
			case <-exited:
				t.Logf("dynalite exited during the test:\n%s", out.String())
			default:
			}
			stop()
		})
		return endpoint
	}
	t.Fatalf("start dynalite: %v", lastErr)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitHTTP(ctx context.Context, endpoint string, exited <-chan struct{}) error {
	deadline := time.After(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited before it answered")
		case <-deadline:
			return fmt.Errorf("no answer within 30s: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
