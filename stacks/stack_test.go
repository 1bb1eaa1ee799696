package stacks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/procstat"
)

// fakeEngine starts a process of an executable named like the Pulumi CLI (a copy of
// sleep), as an engine a killed kiln left running.
func fakeEngine(t *testing.T) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), engineName)
	if err := os.WriteFile(bin, b, 0o700); err != nil {
		t.Fatal(err)
	}
	return startProcess(t, bin)
}

func startProcess(t *testing.T, bin string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// writeLock writes an update lock as the engine does, taken at when.
func writeLock(t *testing.T, backend, name string, pid int, host string, when time.Time) string {
	t.Helper()
	dir := filepath.Join(backend, ".pulumi", "locks", "organization", Project, "shop")
	os.MkdirAll(dir, 0o700)
	p := filepath.Join(dir, name+".json")
	body := fmt.Sprintf(`{"pid":%d,"username":"u","hostname":%q,"timestamp":%q}`, pid, host, when.Format(time.RFC3339Nano))
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClearDeadLocksRemovesOnlyLocksOfDeadEnginesOnThisHost(t *testing.T) {
	backend := t.TempDir()
	host, _ := os.Hostname()
	dead := exec.Command("true")
	dead.Run()
	engine := fakeEngine(t)
	now := time.Now()
	deadLock := writeLock(t, backend, "dead", dead.ProcessState.Pid(), host, now)
	liveLock := writeLock(t, backend, "live", engine.Process.Pid, host, now)
	otherHost := writeLock(t, backend, "other", dead.ProcessState.Pid(), host+"-elsewhere", now)
	// A lock whose pid was reused: by a process that is no engine, and by an engine that
	// started after the lock was written.
	reused := writeLock(t, backend, "reused", os.Getpid(), host, now)
	later := writeLock(t, backend, "later", engine.Process.Pid, host, now.Add(-time.Hour))
	if err := (fileBackend{dir: backend}).clearDeadLocks(Project, "shop"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{deadLock, reused, later} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s, the lock of an engine that is gone, stayed", filepath.Base(p))
		}
	}
	for _, p := range []string{liveLock, otherHost} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// TakeOver signals the engine a lock names only while the lock's pid still is that
// engine: a pid reused since by another process is left alone.
func TestTakeOverSignalsOnlyTheEngineThatWroteTheLock(t *testing.T) {
	backend := t.TempDir()
	host, _ := os.Hostname()
	engine := fakeEngine(t)
	bystander := startProcess(t, "sleep")
	lateEngine := fakeEngine(t)
	now := time.Now()
	locks := []string{
		writeLock(t, backend, "engine", engine.Process.Pid, host, now),
		writeLock(t, backend, "reused", bystander.Process.Pid, host, now),
		writeLock(t, backend, "before-its-engine", lateEngine.Process.Pid, host, now.Add(-time.Hour)),
	}
	s := &Stack{opts: Options{Backend: "file://" + backend, Stack: "shop"}}
	if err := s.TakeOver(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := engine.Wait(); err == nil || !strings.Contains(err.Error(), "interrupt") {
		t.Errorf("the engine that wrote its lock ended with %v, want an interrupt", err)
	}
	for name, cmd := range map[string]*exec.Cmd{"a process that reused the pid": bystander, "an engine started after the lock": lateEngine} {
		if st, err := procstat.Read(cmd.Process.Pid); err != nil || st.Gone() {
			t.Errorf("%s was signalled: it has exited (%v)", name, err)
		}
	}
	for _, p := range locks {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("lock %s stayed", filepath.Base(p))
		}
	}
}

func TestReadRetryStopsAtTheFirstSuccessAndGivesUpAfterFourTries(t *testing.T) {
	calls := 0
	err := readRetry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("failed to select stack")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the third", err, calls)
	}
	calls = 0
	err = readRetry(context.Background(), func() error { calls++; return fmt.Errorf("still broken") })
	if err == nil || calls != 4 {
		t.Fatalf("err %v after %d calls, want the error after 4", err, calls)
	}
}
