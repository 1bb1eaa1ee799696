//go:build e2e

package backup

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/testpeers"
)

// copyDump copies every object of dump from in src to dump to in dst.
func copyDump(t *testing.T, src store.Store, from string, dst store.Store, to string) {
	t.Helper()
	ctx := context.Background()
	keys, err := src.List(ctx, from+"/")
	if err != nil || len(keys) == 0 {
		t.Fatalf("list %s: %d keys, %v", from, len(keys), err)
	}
	for _, k := range keys {
		rc, err := src.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.Put(ctx, to+"/"+strings.TrimPrefix(k, from+"/"), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDumpIsRelocatable copies a dump to a new id in another bucket: verify
// and restore read the copy (a corrupt copy fails although the original is
// fine), and once the original is deleted the copy restores every item.
func TestDumpIsRelocatable(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	seedTable(t, db, 300, 7)
	endpoint := testpeers.S3(t)
	open := func(url string) store.Store {
		s, err := store.Open(ctx, url, store.Options{S3Endpoint: endpoint, S3PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	orig, moved := open("s3://backups/shop"), open("s3://archive/old-shop")
	res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "d1", Store: orig, DB: db, Share: SegmentShare{0, 1, 2}, VolumeItems: 50, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	copyDump(t, orig, "d1", moved, "d2")

	victim := res.Manifest.Segments[1].Volumes[1]
	if strings.Contains(victim.Key, "d1") {
		t.Fatalf("manifest names volume %q with the dump's id", victim.Key)
	}
	good := readAll(t, moved, objectKey("d2", victim.Key))
	put := func(b []byte) {
		if err := moved.Put(ctx, objectKey("d2", victim.Key), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	put(flip(good, len(good)/2))
	if _, err := Verify(ctx, moved, "d2", 2, testLog(t)); !IsCorrupt(err) {
		t.Fatalf("verify of the corrupt copy: %v, want a corrupt-volume error", err)
	}
	_, err = Restore(ctx, RestoreConfig{Store: moved, DumpID: "d2", Table: "from-corrupt", DB: db, Create: true,
		StateFile: filepath.Join(t.TempDir(), "s.json"), Log: testLog(t)})
	if !IsCorrupt(err) {
		t.Fatalf("restore of the corrupt copy: %v, want a corrupt-volume error", err)
	}

	put(good)
	keys, err := orig.List(ctx, "d1/")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := orig.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(ctx, moved, "d2", 2, testLog(t)); err != nil {
		t.Fatalf("verify of the copy without its original: %v", err)
	}
	state := filepath.Join(t.TempDir(), "s.json")
	if _, err := Restore(ctx, RestoreConfig{Store: moved, DumpID: "d2", Table: "from-copy", DB: db, Create: true,
		StateFile: state, Log: testLog(t)}); err != nil {
		t.Fatalf("restore of the copy without its original: %v", err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restore state file: %v, mode %v, want 0600", err, fi.Mode())
	}
	if d := diffHashes(tableHashes(t, db, "src"), tableHashes(t, db, "from-copy")); d != "" {
		t.Fatalf("restored copy differs from the table: %s", d)
	}
}

func readAll(t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
