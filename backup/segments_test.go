//go:build e2e

package backup

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/testpeers"
)

func TestParseSegmentShare(t *testing.T) {
	good := map[string]SegmentShare{"0-7/32": {0, 7, 32}, "31/32": {31, 31, 32}, "16": {0, 15, 16}, "0-0/1": {0, 0, 1}}
	for in, want := range good {
		got, err := ParseSegmentShare(in)
		if err != nil || got != want {
			t.Errorf("ParseSegmentShare(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "7-0/32", "0-32/32", "a-b/3", "1/0", "-1-2/4", "x"} {
		if _, err := ParseSegmentShare(in); err == nil {
			t.Errorf("ParseSegmentShare(%q): want an error", in)
		}
	}
}

func TestMultiMachineSegments(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "src")
	var items []Item
	for i := range 1500 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "src", items)
	want := tableHashes(t, db, "src")
	s, err := store.Open(ctx, "s3://shared-backups/fleet", store.Options{S3Endpoint: testpeers.S3(t), S3PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	dump := func(share SegmentShare) (*DumpResult, error) {
		return Dump(ctx, DumpConfig{Table: "src", DumpID: "multi", Store: s, DB: db, Share: share, Parallel: 2, VolumeItems: 90, Log: testLog(t)})
	}
	// Two of three machines finish: no manifest yet.
	for _, sh := range []SegmentShare{{0, 2, 8}, {6, 7, 8}} {
		res, err := dump(sh)
		if err != nil {
			t.Fatal(err)
		}
		if res.Manifest != nil {
			t.Fatalf("share %v wrote a manifest while segments 3-5 were missing", sh)
		}
	}
	if _, missing, err := Finalize(ctx, s, "multi", nil); !errors.Is(err, ErrIncomplete) || len(missing) != 3 || missing[0] != 3 {
		t.Fatalf("Finalize with 3 missing segments: %v, missing %v", err, missing)
	}
	if _, err := Restore(ctx, RestoreConfig{Store: s, DumpID: "multi", Table: "x", DB: db, Create: true, StateFile: filepath.Join(t.TempDir(), "s")}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore of an incomplete dump: want ErrIncomplete, got %v", err)
	}
	if _, err := dump(SegmentShare{0, 3, 4}); err == nil {
		t.Fatal("a share with another segment total was accepted")
	}
	// The last machine finishes and writes the manifest.
	res, err := dump(SegmentShare{3, 5, 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest == nil || res.Manifest.Items != int64(len(want)) || len(res.Manifest.Segments) != 8 {
		t.Fatalf("last finisher's manifest: %+v", res.Manifest)
	}
	got := volumeItems(t, s, "multi")
	if len(got) != len(want) || diffHashes(want, itemsHashes(t, got)) != "" {
		t.Fatalf("split dump holds %d items, want %d: %s", len(got), len(want), diffHashes(want, itemsHashes(t, got)))
	}

	// Three machines at once.
	var wg sync.WaitGroup
	var manifests atomic.Int32
	for _, sh := range []SegmentShare{{0, 4, 12}, {5, 8, 12}, {9, 11, 12}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "concurrent", Store: s, DB: db, Share: sh, Parallel: 2, VolumeItems: 90, Log: testLog(t)})
			if err != nil {
				t.Error(err)
				return
			}
			if res.Manifest != nil {
				manifests.Add(1)
			}
		}()
	}
	wg.Wait()
	if _, _, err := Finalize(ctx, s, "concurrent", nil); err != nil {
		t.Fatalf("finalize after all machines: %v", err)
	}
	if got := volumeItems(t, s, "concurrent"); diffHashes(want, itemsHashes(t, got)) != "" || len(got) != len(want) {
		t.Fatalf("concurrent split dump differs")
	}
}

// slowStore makes uploads slow so local volumes pile up if nothing bounds them.
type slowStore struct {
	store.Store
	onPut func()
}

func (s slowStore) Put(ctx context.Context, key string, r io.Reader) error {
	s.onPut()
	time.Sleep(15 * time.Millisecond)
	return s.Store.Put(ctx, key, r)
}

func TestLocalDiskBound(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "src")
	var items []Item
	for i := range 1200 {
		it := makeItem(i, false)
		pad := make([]byte, 2000) // incompressible, so the byte bound means something
		rand.Read(pad)
		it["pad"] = &types.AttributeValueMemberB{Value: pad}
		items = append(items, it)
	}
	putItems(t, db, "src", items)
	const volBytes = 64 << 10
	for _, k := range []int{0, 1, 2, 3} {
		spool := filepath.Join(t.TempDir(), "spool")
		var maxFiles int
		var maxBytes int64
		measure := func() {
			ents, _ := os.ReadDir(spool)
			var n int64
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					n += fi.Size()
				}
			}
			maxFiles, maxBytes = max(maxFiles, len(ents)), max(maxBytes, n)
		}
		var mu sync.Mutex
		s := slowStore{Store: dirStore(t), onPut: func() { mu.Lock(); measure(); mu.Unlock() }}
		stop := make(chan struct{})
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
					mu.Lock()
					measure()
					mu.Unlock()
				}
			}
		}()
		res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "disk", Store: s, DB: db, Share: SegmentShare{0, 5, 6}, Parallel: 6,
			VolumeBytes: volBytes, LocalVolumes: k, SpoolDir: spool, Log: testLog(t)})
		close(stop)
		<-polled
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("K=%d: at most %d local volume files, %d bytes (dump's own count %d), %d volumes", k, maxFiles, maxBytes, res.MaxLocalVolumes, res.Manifest.Volumes)
		if maxFiles > k || res.MaxLocalVolumes > int64(k) {
			t.Fatalf("K=%d: %d volume files existed at once (dump counted %d)", k, maxFiles, res.MaxLocalVolumes)
		}
		if k > 0 && res.MaxLocalVolumes < int64(k) {
			t.Fatalf("K=%d: the bound was never reached (max %d); the test does not test it", k, res.MaxLocalVolumes)
		}
		if limit := int64(k+1) * volBytes; maxBytes > limit {
			t.Fatalf("K=%d: %d bytes on local disk, limit (K+1) volumes = %d", k, maxBytes, limit)
		}
		if res.Manifest.Volumes < 20 {
			t.Fatalf("only %d volumes", res.Manifest.Volumes)
		}
	}
}
