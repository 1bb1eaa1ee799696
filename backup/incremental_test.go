//go:build e2e

package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kilnhq/kiln/backup/streamtest"
)

// mirror writes to dynalite and records the change in the stream server,
// playing the part of DynamoDB Streams.
type mirror struct {
	t   *testing.T
	db  *dynamodb.Client
	ss  *streamtest.Server
	arn string
}

func (m mirror) put(it Item) {
	m.t.Helper()
	ctx := context.Background()
	old, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: ptr("src"), Key: Item{"pk": it["pk"], "sk": it["sk"]}})
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: ptr("src"), Item: it}); err != nil {
		m.t.Fatal(err)
	}
	keys, _ := appendItemJSON(nil, Item{"pk": it["pk"], "sk": it["sk"]})
	img, _ := appendItemJSON(nil, it)
	event := "INSERT"
	if old.Item != nil {
		event = "MODIFY"
	}
	m.ss.Record(m.arn, event, keys, img, nil, it["pk"].(*types.AttributeValueMemberS).Value)
}

func (m mirror) del(it Item) {
	m.t.Helper()
	key := Item{"pk": it["pk"], "sk": it["sk"]}
	if _, err := m.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: ptr("src"), Key: key}); err != nil {
		m.t.Fatal(err)
	}
	keys, _ := appendItemJSON(nil, key)
	m.ss.Record(m.arn, "REMOVE", keys, nil, nil, it["pk"].(*types.AttributeValueMemberS).Value)
}

func ptr(s string) *string { return &s }

func modified(it Item, gen int) Item {
	out := Item{}
	for k, v := range it {
		out[k] = v
	}
	out["s"] = &types.AttributeValueMemberS{Value: fmt.Sprintf("generation %d", gen)}
	out["gen"] = &types.AttributeValueMemberN{Value: fmt.Sprint(gen)}
	return out
}

func TestIncrementalReplayInOrder(t *testing.T) {
	ctx := context.Background()
	endpoint, db := dynalite(t)
	_ = endpoint
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
	for i := range 120 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, db, "src", items[:100])
	st := dirStore(t)
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "d1", Store: st, DB: db, Share: SegmentShare{0, 3, 4}, VolumeItems: 30, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}

	// Changes after the dump: modify, delete, insert.
	for i := 0; i < 20; i++ {
		m.put(modified(items[i], 1))
	}
	for i := 20; i < 30; i++ {
		m.del(items[i])
	}
	for i := 100; i < 115; i++ {
		m.put(items[i])
	}
	// Expire the iterators the follower holds on its second read.
	ss.OnGetRecords = func(n int) {
		if n == 2 {
			ss.Advance(streamtest.IteratorTTL + time.Minute)
		}
	}
	inc := IncrementalConfig{Store: st, DumpID: "d1", StreamARN: arn, Streams: streams, VolumeRecords: 7, Log: testLog(t)}
	r1, err := Incremental(ctx, inc)
	if err != nil {
		t.Fatalf("incremental 1: %v", err)
	}
	if r1.Records != 45 {
		t.Fatalf("incremental 1 read %d records, want 45", r1.Records)
	}
	ss.OnGetRecords = nil

	// The shard splits; later changes to the same keys land in children.
	ss.Split(arn)
	for i := 0; i < 10; i++ {
		m.put(modified(items[i], 2))
	}
	for i := 100; i < 105; i++ {
		m.del(items[i])
	}
	for i := 20; i < 25; i++ {
		m.put(modified(items[i], 3))
	}
	m.put(items[119])
	ss.Split(arn) // children split again: grandchildren exist, some empty
	for i := 0; i < 5; i++ {
		m.put(modified(items[i], 4))
	}
	r2, err := Incremental(ctx, inc)
	if err != nil {
		t.Fatalf("incremental 2: %v", err)
	}
	if r2.Records != 26 {
		t.Fatalf("incremental 2 read %d records, want 26", r2.Records)
	}
	if _, err := Verify(ctx, st, "d1", 2, testLog(t)); err != nil {
		t.Fatalf("verify with changes: %v", err)
	}

	want := tableHashes(t, db, "src")
	state := filepath.Join(t.TempDir(), "state.json")
	res, err := Restore(ctx, RestoreConfig{Store: st, DumpID: "d1", Table: "dst", DB: db, Create: true, StateFile: state, Log: testLog(t)})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.Changes != 71 {
		t.Fatalf("replayed %d changes, want 71", res.Changes)
	}
	if got := tableHashes(t, db, "dst"); len(got) != len(want) || diffHashes(want, got) != "" {
		t.Fatalf("restored table differs from source (%d vs %d items): %s", len(got), len(want), diffHashes(want, got))
	}
	// Replaying everything again over the restored table changes nothing.
	if _, err := Restore(ctx, RestoreConfig{Store: st, DumpID: "d1", Table: "dst", DB: db, StateFile: filepath.Join(t.TempDir(), "again.json"), Log: testLog(t)}); err != nil {
		t.Fatalf("restore again: %v", err)
	}
	if got := tableHashes(t, db, "dst"); diffHashes(want, got) != "" {
		t.Fatalf("second replay changed the table: %s", diffHashes(want, got))
	}
}

func TestIncrementalTrimmedFailsLoudly(t *testing.T) {
	ctx := context.Background()
	awsEnv(t)
	ss := streamtest.New(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	t.Cleanup(ss.Close)
	streams, err := NewStreams(ctx, AWSOptions{StreamsEndpoint: ss.URL})
	if err != nil {
		t.Fatal(err)
	}
	arn := ss.CreateStream("src", "pk", "")
	rec := func(i int) {
		k := fmt.Appendf(nil, `{"pk":{"S":"k%d"}}`, i)
		ss.Record(arn, "INSERT", k, k, nil, fmt.Sprint(i))
	}
	rec(1)
	st := dirStore(t)
	inc := IncrementalConfig{Store: st, DumpID: "d", StreamARN: arn, Streams: streams, Log: testLog(t)}
	if r, err := Incremental(ctx, inc); err != nil || r.Records != 1 {
		t.Fatalf("first run: %v, %+v", err, r)
	}
	rec(2)
	ss.Advance(streamtest.Retention + time.Hour)
	rec(3)
	_, err = Incremental(ctx, inc)
	if !errors.Is(err, ErrTrimmed) {
		t.Fatalf("want ErrTrimmed after the retention passed, got %v", err)
	}
}
