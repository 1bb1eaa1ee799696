//go:build e2e

package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets tests run kiln-backup as a separate process (this test
// binary re-executed) that they can kill -9 at any moment.
func TestMain(m *testing.M) {
	if args := os.Getenv("KILN_BACKUP_TEST_MAIN"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			panic(err)
		}
		os.Exit(Main(a))
	}
	os.Exit(m.Run())
}

// runKilled runs kiln-backup args again and again, each time killing it
// with SIGKILL after a random delay, until one run finishes on its own. It
// calls between after each killed run and returns the number of kills.
func runKilled(t *testing.T, args []string, seed uint64, between func()) int {
	return runKilledWithin(t, args, seed, 250*time.Millisecond, between)
}

// runKilledWithin is runKilled with kill delays up to maxDelay.
func runKilledWithin(t *testing.T, args []string, seed uint64, maxDelay time.Duration, between func()) int {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	enc, _ := json.Marshal(args)
	kills := 0
	for round := 0; ; round++ {
		if round > 60 {
			t.Fatalf("no run finished after %d kills", kills)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "KILN_BACKUP_TEST_MAIN="+string(enc))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		delay := 10*time.Millisecond + time.Duration(r.Int64N(int64(maxDelay)))
		if round >= 12 {
			delay = time.Minute // enough kills: let it finish
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("kiln-backup %s (round %d) failed: %v\n%s", args[0], round, err, stderr.String())
			}
			return kills
		case <-time.After(delay):
			cmd.Process.Kill()
			<-exited
			kills++
			if between != nil {
				between()
			}
		}
	}
}

func snapshotVolumes(t *testing.T, root string, seen map[string]os.FileInfo) {
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".json.zst") {
			return nil
		}
		if _, ok := seen[p]; !ok {
			if fi, err := os.Stat(p); err == nil {
				seen[p] = fi
			}
		}
		return nil
	})
}

func TestDumpAndRestoreSurviveKill9(t *testing.T) {
	ctx := context.Background()
	endpoint, db := dynalite(t)
	createTable(t, db, "src")
	var items []Item
	for i := range 5000 {
		items = append(items, Item{"pk": makeItem(i, false)["pk"], "sk": makeItem(i, false)["sk"], "v": makeItem(i, false)["s"]})
	}
	putItems(t, db, "src", items)
	want := tableHashes(t, db, "src")

	root := t.TempDir()
	spool := filepath.Join(t.TempDir(), "spool")
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	seen := map[string]os.FileInfo{}
	kills := runKilled(t, []string{"dump", "--table", "src", "--id", "k", "--store", "file://" + root, "--endpoint", endpoint,
		"--segments", "6", "--parallel", "3", "--page-limit", "20", "--volume-items", "100", "--volume-bytes", "0",
		"--local-volumes", "2", "--spool-dir", spool, "--progress-interval", "0",
		// A read budget bounds each run's progress, so kills always land mid-dump.
		"--rcu", "100"}, seed, func() { snapshotVolumes(t, root, seen) })
	t.Logf("dump killed %d times; %d volumes existed at kill times", kills, len(seen))
	if kills < 3 {
		t.Fatalf("only %d kills landed during the dump; the test did not test resume", kills)
	}
	got := volumeItems(t, dirStoreAt(t, root), "k")
	if len(got) != len(want) {
		t.Fatalf("volumes hold %d items, table has %d (duplicates or losses)", len(got), len(want))
	}
	if diff := diffHashes(want, itemsHashes(t, got)); diff != "" {
		t.Fatalf("dumped items differ: %s", diff)
	}
	for p, before := range seen {
		after, err := os.Stat(p)
		if err != nil {
			t.Fatalf("volume %s vanished: %v", p, err)
		}
		if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
			t.Fatalf("volume %s was uploaded again after a restart", p)
		}
	}
	if _, err := Verify(ctx, dirStoreAt(t, root), "k", 2, testLog(t)); err != nil {
		t.Fatal(err)
	}

	state := filepath.Join(t.TempDir(), "restore.json")
	kills = runKilled(t, []string{"restore", "--id", "k", "--store", "file://" + root, "--endpoint", endpoint, "--table", "dst",
		"--create", "--state", state, "--parallel", "2", "--progress-interval", "0", "--wcu", "2000"}, seed+1, nil)
	t.Logf("restore killed %d times", kills)
	if kills < 3 {
		t.Fatalf("only %d kills landed during the restore", kills)
	}
	if diff := diffHashes(want, tableHashes(t, db, "dst")); diff != "" {
		t.Fatalf("restored table differs: %s", diff)
	}
	_ = fmt.Sprint
}

func dirStoreAt(t *testing.T, root string) *storeDir {
	s, err := newStoreDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
