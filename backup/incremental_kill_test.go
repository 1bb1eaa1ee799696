package backup

import (
	"context"
	"fmt"
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
			rc, err := s.Get(context.Background(), v.Key)
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
