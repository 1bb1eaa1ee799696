//go:build e2e

package backup

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/testpeers"
)

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	var items []Item
	for i := range 400 {
		items = append(items, makeItem(i, i%150 == 7)) // three ~350 KB items
	}
	createTable(t, db, "src")
	putItems(t, db, "src", items)
	createTable(t, db, "empty")
	want := tableHashes(t, db, "src")
	if len(want) != len(items) {
		t.Fatalf("source table has %d items, want %d", len(want), len(items))
	}

	s3s, err := store.Open(ctx, "s3://kiln-backups/team", store.Options{S3Endpoint: testpeers.S3(t), S3PathStyle: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		table string
		store store.Store
		local int
		share SegmentShare
		want  map[string]string
	}{
		{"file-stream", "src", dirStore(t), 0, SegmentShare{0, 3, 4}, want},
		{"s3-spool", "src", s3s, 2, SegmentShare{0, 6, 7}, want},
		{"s3-one-segment", "src", s3s, 1, SegmentShare{0, 0, 1}, want},
		{"empty-table", "empty", dirStore(t), 0, SegmentShare{0, 2, 3}, map[string]string{}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("dump-%d", i)
			res, err := Dump(ctx, DumpConfig{
				Table: tc.table, DumpID: id, Store: tc.store, DB: db, Share: tc.share, Parallel: 3,
				VolumeItems: 37, VolumeBytes: 1 << 20, LocalVolumes: tc.local, SpoolDir: filepath.Join(t.TempDir(), "spool"),
				Log: testLog(t),
			})
			if err != nil {
				t.Fatalf("dump: %v", err)
			}
			m := res.Manifest
			if m == nil {
				t.Fatalf("dump finished without a manifest, missing %v", res.MissingSegments)
			}
			if m.Items != int64(len(tc.want)) {
				t.Fatalf("manifest items = %d, want %d", m.Items, len(tc.want))
			}
			if m.TotalSegments != tc.share.Total || len(m.Segments) != tc.share.Total {
				t.Fatalf("manifest segments = %d/%d, want %d", len(m.Segments), m.TotalSegments, tc.share.Total)
			}
			for _, seg := range m.Segments {
				for _, v := range seg.Volumes {
					if v.Items > 37 {
						t.Fatalf("volume %s has %d items, limit 37", v.Key, v.Items)
					}
				}
			}
			if len(tc.want) > 0 && m.Volumes < 11 {
				t.Fatalf("%d volumes for %d items at 37 per volume", m.Volumes, len(tc.want))
			}
			if got := itemsHashes(t, volumeItems(t, tc.store, id)); len(got) != len(tc.want) || diffHashes(tc.want, got) != "" {
				t.Fatalf("volumes differ from the table: %s", diffHashes(tc.want, got))
			}
			if _, err := Verify(ctx, tc.store, id, 2, testLog(t)); err != nil {
				t.Fatalf("verify: %v", err)
			}
			dst := "restored-" + tc.name
			rr, err := Restore(ctx, RestoreConfig{Store: tc.store, DumpID: id, Table: dst, DB: db, Create: true,
				StateFile: filepath.Join(t.TempDir(), "state.json"), Parallel: 3, Log: testLog(t)})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if rr.Items != int64(len(tc.want)) {
				t.Fatalf("restored %d items, want %d", rr.Items, len(tc.want))
			}
			if got := tableHashes(t, db, dst); diffHashes(tc.want, got) != "" {
				t.Fatalf("restored table differs: %s", diffHashes(tc.want, got))
			}
		})
	}
}

// TestLargeVolumesMultipart streams (K=0) volumes larger than the S3 part
// size, so each is a multipart upload of unknown length.
func TestLargeVolumesMultipart(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "big")
	var items []Item
	for i := range 24 {
		items = append(items, makeItem(i, true)) // ~350 KB of random bytes each
	}
	putItems(t, db, "big", items)
	want := tableHashes(t, db, "big")
	s, err := store.Open(ctx, "s3://big-backups", store.Options{S3Endpoint: testpeers.S3(t), S3PathStyle: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Dump(ctx, DumpConfig{Table: "big", DumpID: "big", Store: s, DB: db, Share: SegmentShare{0, 0, 1}, VolumeBytes: 12 << 20, LocalVolumes: 0, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Volumes != 1 || res.Manifest.Bytes < 6<<20 {
		t.Fatalf("want one volume over the 5 MiB part size, got %d volumes, %d bytes", res.Manifest.Volumes, res.Manifest.Bytes)
	}
	if _, err := Verify(ctx, s, "big", 1, testLog(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, RestoreConfig{Store: s, DumpID: "big", Table: "big2", DB: db, Create: true, StateFile: filepath.Join(t.TempDir(), "s"), Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if diff := diffHashes(want, tableHashes(t, db, "big2")); diff != "" {
		t.Fatal(diff)
	}
}
