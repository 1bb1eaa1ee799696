package releases

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two processes race for the lock 50 times: exactly one wins each round, the other is
// told who holds it, and the winner's unlock leaves no lock behind.
func TestLockRaceBetweenProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	for round := range 50 {
		a, b := startHelper(t, "race", dir), startHelper(t, "race", dir)
		a.line()
		b.line()
		a.send("go")
		b.send("go")
		ra, rb := a.line(), b.line()
		var winner, loser *helper
		var lost string
		switch {
		case ra == "won" && rb != "won":
			winner, loser, lost = a, b, rb
		case rb == "won" && ra != "won":
			winner, loser, lost = b, a, ra
		default:
			t.Fatalf("round %d: %q and %q, want exactly one winner", round, ra, rb)
		}
		want := "locked " + strconv.Itoa(winner.cmd.Process.Pid) + " false"
		if lost != want {
			t.Fatalf("round %d: loser %d said %q, want %q", round, loser.cmd.Process.Pid, lost, want)
		}
		loser.finish()
		winner.finish()
		if _, err := os.Stat(filepath.Join(dir, lockFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: lock file after unlock: %v", round, err)
		}
	}
}

// A holder killed with SIGKILL leaves a lock that is reported stale; BreakLock refuses
// any other holder, and also the holder while it still ran.
func TestKilledHolderIsStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	h := startHelper(t, "hold", dir)
	h.line()
	pid := h.cmd.Process.Pid

	_, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	le := lockedError(t, err)
	if le.Stale || le.OtherHost || le.Holder.PID != pid {
		t.Fatalf("live holder: %+v, want pid %d, not stale", le, pid)
	}
	if le.Holder.StartTime == 0 {
		t.Errorf("holder has no start time")
	}
	if err := s.BreakLock(le.Holder); !errors.Is(err, ErrHolderAlive) {
		t.Fatalf("BreakLock of a live holder: %v, want ErrHolderAlive", err)
	}

	h.kill()
	_, err = s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	le = lockedError(t, err)
	if !le.Stale || le.Holder.PID != pid {
		t.Fatalf("killed holder: %+v, want stale pid %d", le, pid)
	}
	if !strings.Contains(le.Error(), "that process is gone; clear it with --break-lock") {
		t.Errorf("message %q does not say how to clear the lock", le.Error())
	}

	other := le.Holder
	other.Since = other.Since.Add(time.Second)
	if err := s.BreakLock(other); !errors.Is(err, ErrLockChanged) {
		t.Fatalf("BreakLock of another holder: %v, want ErrLockChanged", err)
	}
	if _, ok, _ := s.lockHolder(); !ok {
		t.Fatal("a refused BreakLock removed the lock")
	}
	if err := s.BreakLock(le.Holder); err != nil {
		t.Fatalf("BreakLock of the stale holder: %v", err)
	}
	unlock, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	if err != nil {
		t.Fatalf("Lock after the break: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

// A process killed at a random moment of a SaveState/Record loop leaves files that
// decode, with every finished write kept; the next process resumes from them.
func TestKillDuringWritesLeavesWholeFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	lastStep, torn := 0, 0
	for round := range 25 {
		h := startHelper(t, "churn", dir)
		h.line()
		// Not a timing assertion: the delay only moves the kill to a random instruction.
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		h.kill()

		st, ok, err := s.LoadState()
		if err != nil || !ok {
			t.Fatalf("round %d: LoadState: %v, %v", round, ok, err)
		}
		if st.Step <= lastStep || st.Desired == nil || st.Desired.Version != "1.0."+strconv.Itoa(st.Step) || len(st.Extra) < 64<<10 {
			t.Fatalf("round %d: state step %d (was %d), desired %+v, extra %d bytes", round, st.Step, lastStep, st.Desired, len(st.Extra))
		}
		lastStep = st.Step
		recs, err := s.History()
		if err != nil {
			t.Fatalf("round %d: History: %v", round, err)
		}
		checkHistory(t, recs)
		if len(recs) == 0 || len(recs) > 7 {
			t.Fatalf("round %d: %d records, want 1..7", round, len(recs))
		}

		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".state.json.") || strings.HasPrefix(e.Name(), ".history.json.") {
				torn++ // a write the kill interrupted
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}

		_, err = s.Lock(context.Background(), CurrentHolder("kiln rollout"))
		le := lockedError(t, err)
		if !le.Stale {
			t.Fatalf("round %d: lock of the killed writer not stale: %v", round, le)
		}
		if err := s.BreakLock(le.Holder); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d of 25 kills interrupted a write", torn)
}

func openStore(t *testing.T, dir string) *FileStore {
	t.Helper()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lockedError(t *testing.T, err error) *LockedError {
	t.Helper()
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *LockedError", err)
	}
	return le
}

// checkHistory asserts unique IDs, newest first.
func checkHistory(t *testing.T, recs []Record) {
	t.Helper()
	seen := map[string]bool{}
	for i, r := range recs {
		if seen[r.ID] {
			t.Fatalf("record %s twice", r.ID)
		}
		seen[r.ID] = true
		if i > 0 && r.Started.After(recs[i-1].Started) {
			t.Fatalf("records %d and %d not newest first", i-1, i)
		}
	}
}

// Processes recording at the same time never lose each other's records: each upsert
// reads, changes and rewrites history.json under the guard.
func TestConcurrentRecordsAreAllKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	var hs []*helper
	for range 3 {
		hs = append(hs, startHelper(t, "record", dir))
	}
	for _, h := range hs {
		h.finish()
	}
	recs, err := s.History()
	if err != nil {
		t.Fatal(err)
	}
	checkHistory(t, recs)
	if len(recs) != 90 {
		t.Fatalf("%d records, want 90 (30 from each of 3 processes)", len(recs))
	}
}

// A process killed at a random moment of taking or releasing the lock leaves either no
// lock or its own whole lock file, which is stale; never a torn or foreign one.
func TestKillDuringLockAndUnlock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	held := 0
	for round := range 25 {
		h := startHelper(t, "lockloop", dir)
		h.line()
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // moves the kill only
		pid := h.cmd.Process.Pid
		h.kill()
		holder, ok, err := s.lockHolder()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		unlock, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
		if !ok {
			if err != nil {
				t.Fatalf("round %d: no lock file, yet Lock: %v", round, err)
			}
			if err := unlock(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		held++
		le := lockedError(t, err)
		if !le.Stale || le.Holder.PID != pid || !le.Holder.Same(holder) {
			t.Fatalf("round %d: %+v, want the killed %d, stale", round, le, pid)
		}
		if err := s.BreakLock(le.Holder); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the killed process held the lock in %d of 25 rounds", held)
}
