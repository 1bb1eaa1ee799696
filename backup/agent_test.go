//go:build e2e

package backup

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhq/kiln/backup/store"
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

// countingStore counts the writes of each key.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes map[string]int
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader) error {
	err := s.Store.Put(ctx, key, r)
	if err == nil {
		s.mu.Lock()
		s.writes[key]++
		s.mu.Unlock()
	}
	return err
}

// killableStore fails every call once its agent is "killed", so that agent
// can neither write nor release its lease: like kill -9.
type killableStore struct {
	store.Store
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (s *killableStore) check() error {
	if s.dead.Load() {
		return errKilled
	}
	return nil
}
func (s *killableStore) Put(ctx context.Context, key string, r io.Reader) error {
	return errors.Join(s.check(), s.Store.Put(ctx, key, r))
}
func (s *killableStore) Create(ctx context.Context, key string, r io.Reader) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.Create(ctx, key, r)
}
func (s *killableStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key)
}
func (s *killableStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, prefix)
}

// TestAgentsShareOneLease runs three agents of one table at once: one
// works, the others stand by. The worker is stopped (SIGTERM) mid-dump, the
// next is killed without releasing (its lease lapses), and the last one
// finishes the same dump: one dump, no volume written twice, every item.
func TestAgentsShareOneLease(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	items := seedTable(t, db, 3000, 0)
	want := tableHashes(t, db, "src")
	shared := &countingStore{Store: dirStore(t), writes: map[string]int{}}
	type agent struct {
		cancel context.CancelFunc
		done   chan error
		prog   *Progress
		store  *killableStore
	}
	start := func(name string) *agent {
		ctx, cancel := context.WithCancel(ctx)
		a := &agent{cancel: cancel, done: make(chan error, 1), prog: newProgress("agent"), store: &killableStore{Store: shared}}
		go func() {
			a.done <- Agent(ctx, AgentConfig{
				Dump: DumpConfig{Table: "src", Store: a.store, DB: db, Share: SegmentShare{0, 3, 4}, VolumeItems: 50, ReadBudget: 20,
					Log: testLog(t), Progress: a.prog},
				Holder: LeaseHolder{Instance: name}, LeaseTTL: 600 * time.Millisecond, RetryEvery: 50 * time.Millisecond,
			})
		}()
		return a
	}
	agents := map[string]*agent{"a": start("a"), "b": start("b"), "c": start("c")}
	active := func() []string {
		var out []string
		for name, a := range agents {
			if l := a.prog.Lease.Load(); l != nil && l.Status().State == LeaseActive && !a.store.dead.Load() {
				out = append(out, name)
			}
		}
		return out
	}
	volumes := func() int {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		n := 0
		for k := range shared.writes {
			if strings.Contains(k, "/data/") {
				n++
			}
		}
		return n
	}
	waitVolumes := func(n int) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			act := active()
			if len(act) > 1 {
				t.Fatalf("agents %v are active at once", act)
			}
			if volumes() >= n && len(act) == 1 {
				return act[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d volumes after a minute", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := waitVolumes(5)
	agents[first].cancel()
	if err := <-agents[first].done; err != nil {
		t.Fatalf("stopped agent: %v", err)
	}
	delete(agents, first)
	second := waitVolumes(15)
	killedAt := time.Now()
	agents[second].store.dead.Store(true)
	third := waitVolumes(16)
	if third == second {
		t.Fatal("the killed agent is still active")
	}
	t.Logf("%s took over %v after %s was killed (lease TTL 600ms)", third, time.Since(killedAt).Round(time.Millisecond), second)
	agents[second].cancel()
	<-agents[second].done
	delete(agents, second)

	var p autoPointer
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if found, _ := getJSON(ctx, shared, autoKey("src"), &p); found {
			if _, err := LoadManifest(ctx, shared, p.DumpID); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the last agent did not finish the dump")
		}
		time.Sleep(20 * time.Millisecond)
	}
	agents[third].cancel()
	<-agents[third].done

	keys, _ := shared.List(ctx, "")
	dumps := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/plan.json") {
			dumps++
		}
	}
	if dumps != 1 {
		t.Fatalf("%d dumps started, want 1", dumps)
	}
	for k, n := range shared.writes {
		if strings.Contains(k, "/data/") && n != 1 {
			t.Fatalf("volume %s written %d times", k, n)
		}
	}
	got := volumeItems(t, shared, p.DumpID)
	if d := diffHashes(want, itemsHashes(t, got)); d != "" || len(got) != len(items) {
		t.Fatalf("the dump holds %d items, the table %d: %s", len(got), len(items), d)
	}
}

// TestAdoptPlanKeepsTheDumpsSettings: a release that changes the agent's
// segments and volume size resumes the dump under way with the settings
// its plan fixed, and the dump completes whole.
func TestAdoptPlanKeepsTheDumpsSettings(t *testing.T) {
	ctx := context.Background()
	_, db := dynalite(t)
	seedTable(t, db, 600, 0)
	st := dirStore(t)
	// The old release's agent did half the segments.
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "x", Store: st, DB: db, Share: SegmentShare{0, 1, 4}, VolumeItems: 50, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "x", Store: st, DB: db, Share: SegmentShare{0, 7, 8}, VolumeItems: 30, Log: testLog(t)}); err == nil {
		t.Fatal("without AdoptPlan, other settings must be refused")
	}
	res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "x", Store: st, DB: db, Share: SegmentShare{0, 7, 8}, VolumeItems: 30, Log: testLog(t), AdoptPlan: true})
	if err != nil || res.Manifest == nil {
		t.Fatalf("adopting the plan: %v", err)
	}
	if res.Manifest.TotalSegments != 4 {
		t.Fatalf("the dump has %d segments, its plan 4", res.Manifest.TotalSegments)
	}
	for _, seg := range res.Manifest.Segments {
		for _, v := range seg.Volumes {
			if v.Items > 50 {
				t.Fatalf("volume %s has %d items, the plan cuts at 50", v.Key, v.Items)
			}
		}
	}
	if d := diffHashes(tableHashes(t, db, "src"), itemsHashes(t, volumeItems(t, st, "x"))); d != "" {
		t.Fatalf("dump differs: %s", d)
	}
}
