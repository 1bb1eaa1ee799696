package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	unitEnv = "KILN_BOOT_TEST_UNIT" // set: the test binary acts as a unit
	bootEnv = "KILN_BOOT_TEST_BOOT" // set to a spec path: the test binary runs boot
)

func TestMain(m *testing.M) {
	if os.Getenv(unitEnv) != "" {
		os.Exit(runUnit(os.Args[1:]))
	}
	if spec := os.Getenv(bootEnv); spec != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := Run(ctx, spec, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runUnit is the behaviour of the test binary started as a unit.
func runUnit(args []string) int {
	if len(args) == 0 {
		return 2
	}
	switch args[0] {
	case "env": // env OUTFILE ARGS...: record args, env and cwd, then serve
		wd, _ := os.Getwd()
		b, _ := json.Marshal(map[string]any{"args": args[2:], "env": os.Environ(), "cwd": wd})
		if err := os.WriteFile(args[1], b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return waitTerm()
	case "serve": // write to both streams, then serve until SIGTERM
		fmt.Println("hello on stdout")
		fmt.Fprintln(os.Stderr, "hello on stderr")
		return waitTerm()
	case "http": // http ADDR: the demo app, serving its instance id
		l, err := net.Listen("tcp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, os.Getenv("KILN_INSTANCE"))
			}))
		}()
		return waitTerm()
	case "exit": // exit N
		n, _ := strconv.Atoi(args[1])
		return n
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		for {
			time.Sleep(time.Hour)
		}
	case "sched": // sched DIR: one scheduled run that takes a while
		dir := args[1]
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			_ = os.WriteFile(filepath.Join(dir, "overlap"), []byte(err.Error()), 0o644)
			return 1
		}
		lock.Close()
		f, _ := os.OpenFile(filepath.Join(dir, "runs"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		fmt.Fprintln(f, os.Getpid())
		f.Close()
		time.Sleep(60 * time.Millisecond) // longer than the test's 20ms period
		os.Remove(filepath.Join(dir, "lock"))
		return 0
	}
	return 2
}

func waitTerm() int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	return 0
}

// testUnit is a unit running the test binary in the given mode.
func testUnit(name, restart string, args ...string) Unit {
	return Unit{Name: name, Command: "bin/unit", Args: args, Restart: restart, Mode: ModeService,
		// Under -race a test binary sleeps 1s at exit unless told not to,
		// which would outlast the drain timeouts of these tests.
		Env: map[string]string{unitEnv: "1", "GORACE": "atexit_sleep_ms=0"}}
}

type instance struct {
	t        testing.TB
	imageDir string
	dataDir  string
	specPath string
	cancel   context.CancelFunc
	done     chan error
	logs     *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newInstance writes an image with the given units (bin/unit is this test
// binary) and a spec.
func newInstance(t testing.TB, drain time.Duration, units ...Unit) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, imageDir: filepath.Join(dir, "image"), dataDir: filepath.Join(dir, "run", "hello-green-0"),
		specPath: filepath.Join(dir, "spec.json"), done: make(chan error, 1), logs: &lockedBuffer{}}
	if err := os.MkdirAll(filepath.Join(in.imageDir, "units"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(in.imageDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(in.imageDir, "bin", "unit")); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		writeJSON(t, filepath.Join(in.imageDir, "units", u.Name+".json"), u)
	}
	writeJSON(t, in.specPath, Spec{
		Instance: "hello-green-0", ImageDir: in.imageDir, DataDir: in.dataDir,
		Env: map[string]string{"PORT": "41234", "KILN_PORT_METRICS": "41235", "KILN_SERVICE": "hello",
			"KILN_VERSION": "1.0.0", "KILN_INSTANCE": "hello-green-0"},
		DrainTimeout: Duration(drain),
	})
	return in
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs boot in this process.
func (in *instance) start(opts Options) {
	in.t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(in.logs, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- RunWith(ctx, in.specPath, opts) }()
	in.t.Cleanup(func() {
		cancel()
		select {
		case err := <-in.done:
			if err != nil {
				in.t.Errorf("boot: %v", err)
			}
		case <-time.After(30 * time.Second):
			in.t.Error("boot did not stop")
		}
		if in.t.Failed() {
			in.t.Logf("boot logs:\n%s", in.logs.String())
		}
	})
}

// stop cancels boot and waits for Run to return.
func (in *instance) stop() {
	in.t.Helper()
	in.cancel()
	if err := <-in.done; err != nil {
		in.t.Fatalf("boot: %v", err)
	}
	in.done <- nil // for the cleanup
}

func (in *instance) status() (Status, error) {
	var st Status
	b, err := os.ReadFile(filepath.Join(in.dataDir, "status.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (in *instance) unit(name string) UnitStatus {
	st, _ := in.status()
	for _, u := range st.Units {
		if u.Name == name {
			return u
		}
	}
	return UnitStatus{}
}

func (in *instance) waitUnit(what string, name string, cond func(UnitStatus) bool) UnitStatus {
	in.t.Helper()
	var u UnitStatus
	waitFor(in.t, name+" "+what, func() bool {
		u = in.unit(name)
		return u.Name != "" && cond(u)
	})
	return u
}

// fastAfter records the waits boot asks for and fires at once, so backoff
// and schedules are checked without sleeping.
type fastAfter struct {
	mu sync.Mutex
	ds []time.Duration
}

func (f *fastAfter) after(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	f.ds = append(f.ds, d)
	f.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func (f *fastAfter) waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.ds...)
}

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

// gone reports whether pid no longer runs (absent, or a zombie nobody
// reaped yet).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}
