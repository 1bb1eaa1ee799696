//go:build e2e

package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestCorruptVolumeDetected(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "src")
	var items []Item
	for i := range 300 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "src", items)
	root := t.TempDir()
	s := dirStoreAt(t, root)
	res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "c", Store: s, DB: db, Share: SegmentShare{0, 1, 2}, VolumeItems: 50, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	victim := res.Manifest.Segments[1].Volumes[1]
	path := filepath.Join(root, filepath.FromSlash(objectKey("c", victim.Key)))
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string][]byte{
		"bit-flip":  flip(orig, len(orig)/2),
		"truncated": orig[:len(orig)*2/3],
		"empty":     {},
	}
	for name, bad := range damage {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(ctx, s, "c", 2, testLog(t))
			if !IsCorrupt(err) || !strings.Contains(err.Error(), victim.Key) {
				t.Fatalf("verify: want a corrupt-volume error naming %s, got %v", victim.Key, err)
			}
			var out strings.Builder
			if code := run(ctx, []string{"verify", "--store", "file://" + root, "--id", "c"}, &out); code != ExitCorrupt || !strings.Contains(out.String(), victim.Key) {
				t.Fatalf("kiln-backup verify: exit %d, want %d naming %s:\n%s", code, ExitCorrupt, victim.Key, out.String())
			}
			table := "restored-" + name
			_, err = Restore(ctx, RestoreConfig{Store: s, DumpID: "c", Table: table, DB: db, Create: true,
				StateFile: filepath.Join(t.TempDir(), "s.json"), Parallel: 1, Log: testLog(t)})
			if !IsCorrupt(err) || !strings.Contains(err.Error(), victim.Key) {
				t.Fatalf("restore: want a corrupt-volume error naming %s, got %v", victim.Key, err)
			}
			// Not one item of the bad volume reached the table.
			restored := tableHashes(t, db, table)
			bad := volumeKeys(t, orig)
			for k := range bad {
				if _, ok := restored[k]; ok {
					t.Fatalf("item %s of the corrupt volume was written", k)
				}
			}
		})
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, s, "c", 2, testLog(t)); err != nil {
		t.Fatalf("verify after repair: %v", err)
	}
	if err := os.Remove(filepath.Join(root, "c", "manifest.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, s, "c", 2, testLog(t)); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("verify without a manifest: want ErrIncomplete, got %v", err)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x10
	return out
}

func volumeKeys(t *testing.T, vol []byte) map[string]bool {
	keys := map[string]bool{}
	if _, _, _, err := readVolume(strings.NewReader(string(vol)), func(it Item) error { keys[itemKey(it)] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestRestoreRefusesOtherKeySchema(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	createTable(t, db, "src")
	putItems(t, db, "src", []Item{makeItem(1, false)})
	s := dirStore(t)
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "d", Store: s, DB: db, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            ptr("other"),
		KeySchema:            []types.KeySchemaElement{{AttributeName: ptr("id"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: ptr("id"), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, RestoreConfig{Store: s, DumpID: "d", Table: "other", DB: db, StateFile: filepath.Join(t.TempDir(), "s"), Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "key schema") {
		t.Fatalf("restore into a table with another key: want a key schema error, got %v", err)
	}
	_, err = Restore(ctx, RestoreConfig{Store: s, DumpID: "d", Table: "missing", DB: db, StateFile: filepath.Join(t.TempDir(), "s"), Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "--create") {
		t.Fatalf("restore into a missing table without --create: got %v", err)
	}
}
