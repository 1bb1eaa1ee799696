package backup

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backup/streamtest"
)

func TestAgentDumpsAndFollows(t *testing.T) {
	_, db := dynalite(t)
	ss := streamtest.New(time.Now())
	t.Cleanup(ss.Close)
	streams, err := NewStreams(context.Background(), AWSOptions{StreamsEndpoint: ss.URL})
	if err != nil {
		t.Fatal(err)
	}
	createTable(t, db, "src")
	arn := ss.CreateStream("src", "pk", "sk")
	m := mirror{t, db, ss, arn}
	var items []Item
	for i := range 200 {
		items = append(items, makeItem(i, false))
	}
	for _, it := range items[:150] {
		m.put(it)
	}
	st := dirStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- Agent(ctx, AgentConfig{
			Dump:             DumpConfig{Table: "src", Store: st, DB: db, Share: SegmentShare{0, 1, 2}, VolumeItems: 40, SpoolDir: t.TempDir(), LocalVolumes: 1, Log: testLog(t)},
			DumpEvery:        24 * time.Hour,
			IncrementalEvery: 20 * time.Millisecond,
			Incremental:      IncrementalConfig{Streams: streams, StreamARN: arn, VolumeRecords: 25},
			RetryEvery:       20 * time.Millisecond,
		})
	}()
	// Changes while the agent runs.
	for i := range 40 {
		m.put(modified(items[i], 1))
	}
	for _, it := range items[150:] {
		m.put(it)
	}
	for i := 40; i < 50; i++ {
		m.del(items[i])
	}
	var id string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var p autoPointer
		if found, _ := getJSON(ctx, st, autoKey("src"), &p); found {
			id = p.DumpID
			var n int64
			shards, _ := loadShards(ctx, st, id)
			for _, sh := range shards {
				n += sh.Records
			}
			if _, err := LoadManifest(ctx, st, id); err == nil && n == 150+40+50+10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not finish a dump and read all 250 stream records within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("agent: %v", err)
	}
	var p autoPointer
	getJSON(context.Background(), st, autoKey("src"), &p)
	if p.DumpID != id {
		t.Fatalf("the agent started another dump %q within DumpEvery", p.DumpID)
	}
	want := tableHashes(t, db, "src")
	if _, err := Restore(context.Background(), RestoreConfig{Store: st, DumpID: id, Table: "dst", DB: db, Create: true, StateFile: filepath.Join(t.TempDir(), "s"), Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if diff := diffHashes(want, tableHashes(t, db, "dst")); diff != "" {
		t.Fatalf("dump + incrementals restored differ from the table: %s", diff)
	}
}
