package lb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const childEnv = "KILN_LB_TEST_BACKEND"

func TestMain(m *testing.M) {
	if id := os.Getenv(childEnv); id != "" {
		os.Exit(runChildBackend(id))
	}
	os.Exit(m.Run())
}

// runChildBackend is a tiny HTTP server in a child process, so that tests
// can kill a target for real. It prints its address and exits when its
// stdin closes (the test process is gone).
func runChildBackend(id string) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(l.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", id)
		if r.Method == http.MethodPost {
			_, _ = io.Copy(w, r.Body)
			return
		}
		_, _ = io.WriteString(w, id)
	}))
	return 0
}

// startChild starts a child backend and returns its address and process.
func startChild(t testing.TB, id string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+id)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child backend %s: %v", id, err)
	}
	return strings.TrimSpace(line), cmd
}

// backend is an in-process target whose health and slowness the test controls.
type backend struct {
	id      string
	srv     *httptest.Server
	hits    atomic.Int64 // non-health requests
	conns   atomic.Int64 // open connections
	sick    atomic.Bool
	started chan struct{} // receives when a /slow request arrives
	release chan struct{} // closed to let /slow requests finish
}

func newBackend(t testing.TB, id string) *backend {
	t.Helper()
	b := &backend{id: id, started: make(chan struct{}, 16), release: make(chan struct{})}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if b.sick.Load() {
				http.Error(w, "sick", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		b.hits.Add(1)
		if r.URL.Path == "/slow" {
			b.started <- struct{}{}
			<-b.release
		}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			_, _ = w.Write(body)
			return
		}
		_, _ = io.WriteString(w, b.id)
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.conns.Add(-1)
		}
	}
	b.srv.Start()
	t.Cleanup(func() {
		b.releaseSlow()
		b.srv.Close()
	})
	return b
}

var releaseMu sync.Mutex

func (b *backend) releaseSlow() {
	releaseMu.Lock()
	defer releaseMu.Unlock()
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) target() Target { return Target{ID: b.id, Address: b.addr()} }

// baseConfig has fast health checks so tests wait little.
func baseConfig(gen int64, groups ...Group) Config {
	return Config{
		Generation:   gen,
		Listen:       "127.0.0.1:0",
		Admin:        "127.0.0.1:0",
		DrainTimeout: Duration(10 * time.Second),
		Health: HealthCheck{Path: "/healthz", Interval: Duration(20 * time.Millisecond), Timeout: Duration(time.Second),
			HealthyThreshold: 2, UnhealthyThreshold: 2},
		Proxy:  Proxy{ExposeTarget: true}, // tests read which target answered
		Groups: groups,
	}
}

type harness struct {
	t       testing.TB
	cfgPath string
	ready   Ready
	srv     *Server
	cancel  context.CancelFunc
	done    chan error
	client  *http.Client
	logs    *logBuffer
}

// logBuffer collects log output so tests can look for events.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startLB(t testing.TB, cfg Config, opts Options) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, cfgPath: filepath.Join(dir, "lb.json"), done: make(chan error, 1), logs: &logBuffer{}}
	h.writeConfig(cfg)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(h.cfgPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	readyPath := filepath.Join(dir, "ready.json")
	go func() { h.done <- srv.Run(ctx, readyPath) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("lb did not stop")
		}
		if t.Failed() {
			t.Logf("lb logs:\n%s", h.logs.String())
		}
	})
	waitFor(t, "ready file", func() bool {
		b, err := os.ReadFile(readyPath)
		return err == nil && json.Unmarshal(b, &h.ready) == nil
	})
	h.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(h.client.CloseIdleConnections)
	return h
}

func (h *harness) writeConfig(cfg Config) {
	h.t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		h.t.Fatal(err)
	}
	tmp := h.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.cfgPath); err != nil {
		h.t.Fatal(err)
	}
}

// reload posts /reload and returns the status code and body.
func (h *harness) reload() (int, string) {
	h.t.Helper()
	resp, err := h.client.Post("http://"+h.ready.Admin+"/reload", "", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) status() Status {
	h.t.Helper()
	resp, err := h.client.Get("http://" + h.ready.Admin + "/status")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) target(id string) (TargetStatus, bool) {
	for _, g := range h.status().Groups {
		for _, ts := range g.Targets {
			if ts.ID == id {
				return ts, true
			}
		}
	}
	return TargetStatus{}, false
}

func (h *harness) waitHealth(id string, want Health) {
	h.t.Helper()
	waitFor(h.t, id+" "+string(want), func() bool {
		ts, ok := h.target(id)
		return ok && ts.Health == want
	})
}

type result struct {
	code   int
	group  string
	target string
	body   string
	err    error
}

func (h *harness) get(path string) result {
	resp, err := h.client.Get("http://" + h.ready.Listen + path)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, group: resp.Header.Get(HeaderGroup), target: resp.Header.Get(HeaderTarget), body: string(b), err: err}
}

// waitFor polls cond until it holds; it fails the test after a generous
// bound, which only a broken lb reaches.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
