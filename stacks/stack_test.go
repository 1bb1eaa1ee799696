package stacks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestClearDeadLocksRemovesOnlyLocksOfDeadEnginesOnThisHost(t *testing.T) {
	backend := t.TempDir()
	dir := filepath.Join(backend, ".pulumi", "locks", "organization", Project, "shop")
	os.MkdirAll(dir, 0o755)
	host, _ := os.Hostname()
	dead := exec.Command("true")
	dead.Run()
	write := func(name string, pid int, h string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(fmt.Sprintf(`{"pid":%d,"username":"u","hostname":%q,"timestamp":"2026-11-22T00:00:00Z"}`, pid, h)), 0o644)
		return p
	}
	deadLock := write("dead", dead.ProcessState.Pid(), host)
	liveLock := write("live", os.Getpid(), host)
	otherHost := write("other", dead.ProcessState.Pid(), host+"-elsewhere")
	if err := (fileBackend{dir: backend}).clearDeadLocks(Project, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deadLock); !os.IsNotExist(err) {
		t.Error("the lock of a dead engine stayed")
	}
	for _, p := range []string{liveLock, otherHost} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
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
