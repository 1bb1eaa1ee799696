//go:build e2e

package backup

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnhq/kiln/backup/store"
)

// flakyStore fails volume uploads after the first few.
type flakyStore struct {
	store.Store
	okVolumes int64
	puts      atomic.Int64
}

var errStoreDown = errors.New("store is down")

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader) error {
	if strings.Contains(key, "/data/") && f.puts.Add(1) > f.okVolumes {
		io.Copy(io.Discard, io.LimitReader(r, 100)) // fail mid-stream
		return errStoreDown
	}
	return f.Store.Put(ctx, key, r)
}

func TestUploadFailureThenResume(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "src")
	var items []Item
	for i := range 1000 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "src", items)
	want := tableHashes(t, db, "src")
	for _, k := range []int{0, 2} {
		base := dirStore(t)
		cfg := DumpConfig{Table: "src", DumpID: "f", DB: db, Share: SegmentShare{0, 2, 3}, Parallel: 3, VolumeItems: 40,
			LocalVolumes: k, SpoolDir: t.TempDir(), Log: testLog(t)}
		cfg.Store = &flakyStore{Store: base, okVolumes: 5}
		if _, err := Dump(ctx, cfg); !errors.Is(err, errStoreDown) {
			t.Fatalf("K=%d: dump with a failing store: want errStoreDown, got %v", k, err)
		}
		cfg.Store = base
		res, err := Dump(ctx, cfg)
		if err != nil {
			t.Fatalf("K=%d: resume: %v", k, err)
		}
		got := volumeItems(t, base, "f")
		if res.Manifest.Items != int64(len(want)) || len(got) != len(want) || diffHashes(want, itemsHashes(t, got)) != "" {
			t.Fatalf("K=%d: resumed dump holds %d items (manifest %d), want %d", k, len(got), res.Manifest.Items, len(want))
		}
	}
}
