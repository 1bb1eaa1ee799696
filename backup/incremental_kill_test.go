//go:build e2e

package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backup/streamtest"
)

// TestIncrementalSurvivesKill9 kills `kiln-backup incremental` at random
// moments while it reads a stream with split shards, then checks that the
// change volumes hold every record exactly once, in sequence order per
// shard.
func TestIncrementalSurvivesKill9(t *testing.T) {
	awsEnv(t)
	ss := streamtest.New(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	t.Cleanup(ss.Close)
	arn := ss.CreateStream("src", "pk", "")
	total := 0
	rec := func(n int) {
		for i := 0; i < n; i++ {
			k := fmt.Appendf(nil, `{"pk":{"S":"k%d"}}`, total%500)
			img := fmt.Appendf(nil, `{"pk":{"S":"k%d"},"v":{"N":"%d"}}`, total%500, total)
			ss.Record(arn, "MODIFY", k, img, nil, fmt.Sprint(total%500))
			total++
		}
	}
	rec(20000)
	ss.Split(arn)
	rec(20000)
	ss.Split(arn)
	rec(10000)
	root := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	kills := runKilled(t, []string{"incremental", "--stream-arn", arn, "--streams-endpoint", ss.URL, "--id", "inc", "--store", "file://" + root,
		"--volume-records", "300", "--progress-interval", "0"}, seed, nil)
	t.Logf("incremental killed %d times", kills)
	if kills < 2 {
		t.Fatalf("only %d kills landed", kills)
	}
	shards, err := loadShards(context.Background(), dirStoreAt(t, root), "inc")
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 7 {
		t.Fatalf("%d shard checkpoints, want 7", len(shards))
	}
	seen := map[string]bool{}
	s := dirStoreAt(t, root)
	for _, sh := range shards {
		last := ""
		for _, v := range sh.Volumes {
			rc, err := s.Get(context.Background(), objectKey("inc", v.Key))
			if err != nil {
				t.Fatal(err)
			}
			n, sum, _, err := readChanges(rc, func(c Change) error {
				if seen[c.Sequence] {
					return fmt.Errorf("record %s twice", c.Sequence)
				}
				if c.Sequence <= last {
					return fmt.Errorf("record %s after %s in shard %s", c.Sequence, last, sh.ShardID)
				}
				seen[c.Sequence], last = true, c.Sequence
				return nil
			})
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := checkVolume(v, n, sum, v.Bytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("change volumes hold %d records, the stream has %d", len(seen), total)
	}
}

// TestRestoreWithChangesSurvivesKill9 kills a restore at random moments,
// also while it replays change volumes; the resumed restore must end in
// exactly the source table.
func TestRestoreWithChangesSurvivesKill9(t *testing.T) {
	ctx := context.Background()
	endpoint, db := dynalite(t)
	ss := streamtest.New(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	t.Cleanup(ss.Close)
	streams, err := NewStreams(ctx, AWSOptions{StreamsEndpoint: ss.URL})
	if err != nil {
		t.Fatal(err)
	}
	createTable(t, db, "src")
	arn := ss.CreateStream("src", "pk", "sk")
	m := mirror{t, db, ss, arn}
	var items []Item
	for i := range 1500 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "src", items[:1000])
	root := t.TempDir()
	st := dirStoreAt(t, root)
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "d", Store: st, DB: db, Share: SegmentShare{0, 3, 4}, VolumeItems: 100, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		for i := 0; i < 400; i++ {
			m.put(modified(items[(i*7+round)%1500], round))
		}
		for i := 0; i < 30; i++ {
			m.del(items[(i*13+round*5)%1500])
		}
		if round == 2 {
			ss.Split(arn)
		}
	}
	if _, err := Incremental(ctx, IncrementalConfig{Store: st, DumpID: "d", StreamARN: arn, Streams: streams, VolumeRecords: 50, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	want := tableHashes(t, db, "src")
	man, err := LoadManifest(ctx, st, "d")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"restore", "--id", "d", "--store", "file://" + root, "--endpoint", endpoint, "--table", "dst",
		"--create", "--state", state, "--parallel", "2", "--progress-interval", "0",
		// A write budget bounds each run's progress, so kills land mid-replay.
		"--wcu", "1000"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	// First the dump volumes (killed too), then the replay alone, so every
	// kill of the second phase lands while change volumes are replayed.
	runKilled(t, append(args, "--skip-changes"), seed, nil)
	var rs RestoreState
	if b, err := os.ReadFile(state); err != nil || json.Unmarshal(b, &rs) != nil || len(rs.Volumes) != man.Volumes || len(rs.Changes) != 0 {
		t.Fatalf("after --skip-changes: %d of %d volumes, %d change volumes (%v)", len(rs.Volumes), man.Volumes, len(rs.Changes), err)
	}
	kills := runKilledWithin(t, args, seed+1, 300*time.Millisecond, nil)
	t.Logf("replay killed %d times", kills)
	if kills < 2 {
		t.Fatalf("only %d kills landed during the replay", kills)
	}
	if diff := diffHashes(want, tableHashes(t, db, "dst")); diff != "" {
		t.Fatalf("restored table differs after kills: %s", diff)
	}
}
