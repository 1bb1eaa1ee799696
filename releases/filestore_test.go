package releases

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

func TestDir(t *testing.T) {
	if got, want := Dir("/srv/kiln", "shop"), filepath.FromSlash("/srv/kiln/pulumi/.kiln/shop"); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
}

func TestLockExcludesUntilUnlocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	a, b := openStore(t, dir), openStore(t, dir)
	me := CurrentHolder("kiln rollout")
	unlock, err := a.Lock(context.Background(), me)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Lock(context.Background(), CurrentHolder("kiln rollback"))
	le := lockedError(t, err)
	if !le.Holder.Same(me) || le.Stale || le.OtherHost || le.Stack != "shop" {
		t.Fatalf("LockedError %+v, want holder %+v, live, stack shop", le, me)
	}
	if h, ok, err := b.lockHolder(); err != nil || !ok || !h.Same(me) {
		t.Fatalf("lockHolder = %+v, %v, %v", h, ok, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatalf("second unlock: %v", err)
	}
	if _, ok, err := b.lockHolder(); ok || err != nil {
		t.Fatalf("lockHolder after unlock = %v, %v", ok, err)
	}
	unlock, err = b.Lock(context.Background(), CurrentHolder("kiln rollback"))
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock()
}

func TestLockSetsSinceFromTheClock(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "shop"))
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	s.Now = func() time.Time { return at }
	h := CurrentHolder("kiln rollout")
	h.Since = time.Time{}
	unlock, err := s.Lock(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got, _, _ := s.lockHolder()
	if !got.Since.Equal(at) {
		t.Errorf("Since = %v, want %v", got.Since, at)
	}
	_, err = s.Lock(context.Background(), h)
	if le := lockedError(t, err); !le.At.Equal(at) {
		t.Errorf("At = %v, want %v", le.At, at)
	}
}

func TestLockWithCancelledContext(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "shop"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Lock(ctx, CurrentHolder("kiln rollout")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock = %v, want context.Canceled", err)
	}
	if _, ok, _ := s.lockHolder(); ok {
		t.Fatal("a cancelled Lock left a lock")
	}
}

// writeLock puts a lock file in place as another process would have.
func writeLock(t *testing.T, dir string, h Holder) {
	t.Helper()
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, lockFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHolderOnAnotherHostIsNeverStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	h := Holder{Host: "build-7.example", PID: 1, User: "ci", Command: "kiln rollout", Since: time.Now().Add(-48 * time.Hour).UTC()}
	writeLock(t, dir, h)
	_, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	le := lockedError(t, err)
	if le.Stale || !le.OtherHost {
		t.Fatalf("%+v: want OtherHost and not Stale", le)
	}
	if !strings.Contains(le.Error(), "if it is no longer running, clear it with --break-lock") {
		t.Errorf("message %q does not tell how to clear it", le.Error())
	}
	if err := s.BreakLock(h); err != nil {
		t.Fatalf("BreakLock of a holder on another host: %v", err)
	}
	if _, ok, _ := s.lockHolder(); ok {
		t.Fatal("lock still there")
	}
}

func TestReusedPIDIsStale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	h := CurrentHolder("kiln rollout") // this very PID, alive, but another start time
	if h.StartTime == 0 {
		t.Fatal("no start time for this process: /proc/self/stat unreadable")
	}
	h.StartTime++
	writeLock(t, dir, h)
	_, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	if le := lockedError(t, err); !le.Stale {
		t.Fatalf("%+v: a PID with another start time must be stale", le)
	}
	if err := s.BreakLock(h); err != nil {
		t.Fatal(err)
	}
}

// A process whose lock was broken (it ran on another host and was believed gone) must
// stop: its writes and its unlock fail, and the new holder's lock stays.
func TestBrokenHolderStopsWriting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	old, thief := openStore(t, dir), openStore(t, dir)
	gone := CurrentHolder("kiln rollout")
	gone.Host = "laptop.example"
	unlockOld, err := old.Lock(context.Background(), gone)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SaveState(State{ID: "r1", Phase: "deploy"}); err != nil {
		t.Fatalf("SaveState while holding the lock: %v", err)
	}
	if err := thief.BreakLock(gone); err != nil {
		t.Fatal(err)
	}
	// Between the break and the thief's Lock nobody holds it; the old holder must notice.
	if err := old.SaveState(State{ID: "r1", Phase: "switch"}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("SaveState after the break: %v, want ErrLockLost", err)
	}
	me := CurrentHolder("kiln rollout")
	unlock, err := thief.Lock(context.Background(), me)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for name, err := range map[string]error{
		"SaveState":  old.SaveState(State{ID: "r1", Phase: "switch"}),
		"Record":     old.Record(Record{ID: "r1"}),
		"ClearState": old.ClearState(),
		"unlock":     unlockOld(),
	} {
		if !errors.Is(err, ErrLockLost) {
			t.Errorf("%s after the lock changed hands: %v, want ErrLockLost", name, err)
		}
	}
	if h, ok, _ := thief.lockHolder(); !ok || !h.Same(me) {
		t.Fatalf("the new holder's lock is gone or changed: %+v %v", h, ok)
	}
	if st, _, _ := thief.LoadState(); st.Phase != "deploy" {
		t.Errorf("the broken holder's write landed: phase %q", st.Phase)
	}
}

func TestBreakLockOfNoLock(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "shop"))
	if err := s.BreakLock(CurrentHolder("kiln rollout")); err != nil {
		t.Fatalf("BreakLock without a lock: %v", err)
	}
}

func TestUnreadableLockFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	if err := os.WriteFile(filepath.Join(dir, lockFile), []byte("{\"host\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Lock(context.Background(), CurrentHolder("kiln rollout"))
	le := lockedError(t, err)
	if le.Err == nil || !strings.Contains(le.Error(), "cannot be read") || !strings.Contains(le.Error(), "--break-lock") {
		t.Fatalf("LockedError %q, want an unreadable lock file and --break-lock", le.Error())
	}
	if _, _, err := s.lockHolder(); err == nil {
		t.Error("lockHolder of an unreadable lock file: no error")
	}
	if err := s.BreakLock(CurrentHolder("kiln rollout")); !errors.Is(err, ErrLockChanged) {
		t.Fatalf("BreakLock(a holder) of an unreadable lock: %v, want ErrLockChanged", err)
	}
	if err := s.BreakLock(Holder{}); err != nil {
		t.Fatalf("BreakLock(Holder{}): %v", err)
	}
	if _, ok, _ := s.lockHolder(); ok {
		t.Fatal("unreadable lock file still there")
	}
}

func TestLockedErrorMessages(t *testing.T) {
	since := time.Date(2026, 11, 22, 12, 0, 1, 0, time.Local)
	h := Holder{Host: "h", PID: 1234, User: "u", Command: "kiln rollout", Since: since}
	base := "stack shop is locked by kiln rollout (pid 1234 on host h, user u) since 12:00:01 (3m ago)"
	for _, c := range []struct {
		name string
		err  LockedError
		want string
	}{
		{"live", LockedError{Stack: "shop", Holder: h, At: since.Add(3*time.Minute + 20*time.Second)}, base},
		{"stale", LockedError{Stack: "shop", Holder: h, Stale: true, At: since.Add(3 * time.Minute)},
			base + "; that process is gone; clear it with --break-lock"},
		{"other host", LockedError{Stack: "shop", Holder: h, OtherHost: true, At: since.Add(3 * time.Minute)},
			base + "; kiln cannot see processes on that host: if it is no longer running, clear it with --break-lock"},
		{"yesterday", LockedError{Stack: "shop", Holder: h, At: since.Add(26*time.Hour + 5*time.Minute)},
			"stack shop is locked by kiln rollout (pid 1234 on host h, user u) since 2026-11-22 12:00:01 (1d2h ago)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.err.Error(); got != c.want {
				t.Errorf("\ngot  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                   "0s",
		45 * time.Second:               "45s",
		3*time.Minute + 59*time.Second: "3m",
		2 * time.Hour:                  "2h",
		2*time.Hour + 5*time.Minute:    "2h5m",
		72 * time.Hour:                 "3d",
		76 * time.Hour:                 "3d4h",
	} {
		if got := ago(d); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCurrentHolder(t *testing.T) {
	h := CurrentHolder("kiln rollout")
	host, _ := os.Hostname()
	if h.PID != os.Getpid() || h.Host != host || h.User == "" || h.Command != "kiln rollout" || h.Since.IsZero() {
		t.Fatalf("CurrentHolder = %+v", h)
	}
	if got := judge(h, host); got != holderAlive {
		t.Fatalf("this process judged %v, want alive", got)
	}
}

func TestParseStat(t *testing.T) {
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3\n"
	st, alive, err := parseStat([]byte(line))
	if err != nil || !alive || st != 987654 {
		t.Fatalf("parseStat = %d, %v, %v; want 987654, alive", st, alive, err)
	}
	if _, alive, _ := parseStat([]byte(strings.Replace(line, ") S ", ") Z ", 1))); alive {
		t.Error("a zombie counts as alive")
	}
	if _, _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short stat line: no error")
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "shop"))
	if _, ok, err := s.LoadState(); ok || err != nil {
		t.Fatalf("LoadState of a new store = %v, %v", ok, err)
	}
	at := time.Date(2026, 11, 22, 0, 30, 0, 0, time.UTC)
	want := State{ID: "r7", Phase: "traffic", Step: 2,
		Stable:    &Release{Version: "1.0.0", Digest: "sha256:aa", Location: "/images/aa"},
		Desired:   &Release{Version: "1.1.0", Digest: "sha256:bb", Location: "/images/bb"},
		StartedAt: at, UpdatedAt: at.Add(time.Minute), Reason: "InconclusiveAnalysis",
		Extra: json.RawMessage(`{"weights":[10,50,100]}`)}
	if err := s.SaveState(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LoadState()
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadState = %+v, %v, %v\nwant %+v", got, ok, err, want)
	}
	if err := s.SaveState(State{}); err == nil || !strings.Contains(err.Error(), "field id") {
		t.Errorf("SaveState without an ID: %v", err)
	}
	if err := s.ClearState(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LoadState(); ok {
		t.Fatal("state after ClearState")
	}
	if err := s.ClearState(); err != nil {
		t.Fatalf("ClearState of no state: %v", err)
	}
}

func TestCorruptStateNamesTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o644)
	if _, _, err := s.LoadState(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, stateFile)) {
		t.Fatalf("LoadState of a corrupt file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, historyFile), []byte("[]"), 0o644)
	if _, err := s.History(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, historyFile)) {
		t.Fatalf("History of a corrupt file: %v", err)
	}
}

func TestRecordUpsertsByID(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "shop"))
	t0 := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	r1 := Record{ID: "a", Version: "1.0.0", Started: t0, Outcome: "running", User: "u", Host: "h"}
	r2 := Record{ID: "b", Version: "1.1.0", Started: t0.Add(time.Hour), Outcome: "running"}
	for _, r := range []Record{r1, r2} {
		if err := s.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	// The resumed rollout a finishes: its record is replaced, not added.
	r1.Finished, r1.Outcome, r1.Reason = t0.Add(5*time.Minute), "rolled-back", "AnalysisFailed"
	if err := s.Record(r1); err != nil {
		t.Fatal(err)
	}
	got, err := s.History()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Record{r2, r1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("History =\n%+v\nwant\n%+v", got, want)
	}
	if err := s.Record(Record{Version: "2.0.0"}); err == nil || !strings.Contains(err.Error(), "field id") {
		t.Errorf("Record without an ID: %v", err)
	}
}

func TestHistoryKeepsTheNewest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	s := openStore(t, dir)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for i := MaxHistory - 1; i >= 0; i-- {
		recs = append(recs, Record{ID: "r" + strconv.Itoa(i), Started: t0.Add(time.Duration(i) * time.Hour)})
	}
	if err := os.WriteFile(filepath.Join(dir, historyFile), encodeHistory(recs), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := MaxHistory; i < MaxHistory+5; i++ {
		if err := s.Record(Record{ID: "r" + strconv.Itoa(i), Started: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.History()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxHistory || got[0].ID != "r"+strconv.Itoa(MaxHistory+4) || got[len(got)-1].ID != "r5" {
		t.Fatalf("%d records from %s to %s, want %d from r%d to r5", len(got), got[0].ID, got[len(got)-1].ID, MaxHistory, MaxHistory+4)
	}
	checkHistory(t, got)
}

func TestOpenRemovesOldTemporaryFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	openStore(t, dir)
	old := []string{".state.json.123", ".history.json.456", ".lock.json.789"}
	fresh, other := ".state.json.999", "notes.txt"
	for _, n := range append(old, fresh, other) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range append(old, other) {
		past := time.Now().Add(-2 * tempMaxAge)
		os.Chtimes(filepath.Join(dir, n), past, past)
	}
	openStore(t, dir)
	for _, n := range old {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept: %v", n, err)
		}
	}
	for _, n := range []string{fresh, other} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
}

func TestFleetConversion(t *testing.T) {
	fr := &fleet.Release{Version: "1.2.3", Image: fleet.Image{Digest: "sha256:ab", Location: "/img"}}
	if got := FromFleet(fr).Fleet(); !reflect.DeepEqual(got, fr) {
		t.Fatalf("round trip = %+v", got)
	}
	if FromFleet(nil) != nil || (*Release)(nil).Fleet() != nil {
		t.Fatal("nil does not stay nil")
	}
}
