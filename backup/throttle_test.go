package backup

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/clock"
)

func TestBucketHoldsBudget(t *testing.T) {
	for _, rate := range []float64{5, 100, 500} {
		clk := clock.NewFake(time.Unix(0, 0))
		b := NewBucket(rate, 0, clk)
		r := rand.New(rand.NewPCG(1, 2))
		start := clk.Now()
		estimate := 1.0
		// A demand far above the budget: pages costing 0.5 to 128 RCU.
		for range 5000 {
			if err := b.Reserve(context.Background(), estimate); err != nil {
				t.Fatal(err)
			}
			actual := 0.5 + r.Float64()*127.5
			b.Settle(estimate, actual)
			estimate = actual
			clk.Advance(time.Millisecond) // request latency
		}
		el := clk.Now().Sub(start).Seconds()
		achieved := b.Spent() / el
		if achieved > rate*1.0+(rate/4+128)/el || achieved < rate*0.95 {
			t.Errorf("rate %v: achieved %.2f RCU/s over %.0fs, want within 95-100%%", rate, achieved, el)
		}
	}
}

func TestBucketUnlimited(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	b := NewBucket(0, 0, clk)
	for range 100 {
		b.Reserve(context.Background(), 10)
		b.Settle(10, 50)
	}
	if clk.Now() != time.Unix(0, 0) {
		t.Fatal("an unlimited bucket slept")
	}
	if b.Spent() != 5000 {
		t.Fatalf("spent %v, want 5000", b.Spent())
	}
}

func TestThrottledDumpAndRestore(t *testing.T) {
	ctx := context.Background()
	endpoint, _ := dynalite(t)
	proxy := newThrottleProxy(t, endpoint, 3)
	db, err := NewDynamoDB(ctx, AWSOptions{Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := NewDynamoDB(ctx, AWSOptions{Endpoint: endpoint})
	createTable(t, direct, "src")
	var items []Item
	for i := range 4000 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, direct, "src", items)
	want := tableHashes(t, direct, "src")

	const budget = 15.0
	st := dirStore(t)
	prog := newProgress("dump")
	res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "t", Store: st, DB: db, Share: SegmentShare{0, 3, 4}, Parallel: 4,
		VolumeItems: 500, ReadBudget: budget, PageLimit: 100, Log: testLog(t), Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if prog.Throttles.Load() == 0 {
		t.Fatal("the proxy throttled nothing")
	}
	peak, total, span := proxy.maxWindow(3 * time.Second)
	t.Logf("dump: %.1f RCU in %v (%.1f RCU/s, budget %v), peak 3s window %.1f, throttles %d", total, span, total/span.Seconds(), budget, peak, prog.Throttles.Load())
	if total < 3*budget {
		t.Fatalf("test table too small: %.1f RCU consumed", total)
	}
	// Over any 3 s: the budget, plus the quarter-second burst, plus one page the estimate missed.
	if limit := budget*3 + budget/4 + 16; peak > limit {
		t.Fatalf("consumed %.1f RCU in a 3 s window, limit %.1f", peak, limit)
	}
	// On average, the rate never exceeds the budget.
	if steady := (total - budget/4 - 16) / span.Seconds(); steady > budget {
		t.Fatalf("steady rate %.1f RCU/s above the budget %v", steady, budget)
	}
	if res.Capacity < total*0.99 || res.Capacity > total*1.01 {
		t.Fatalf("dump counted %.1f RCU, the proxy saw %.1f", res.Capacity, total)
	}
	if diff := diffHashes(want, itemsHashes(t, volumeItems(t, st, "t"))); diff != "" {
		t.Fatalf("throttled dump lost items: %s", diff)
	}

	// Restore through the same proxy: throttled batches and half of every
	// batch handed back unprocessed; nothing may be dropped.
	createTable(t, direct, "dst")
	if _, err := Restore(ctx, RestoreConfig{Store: st, DumpID: "t", Table: "dst", DB: db, StateFile: filepath.Join(t.TempDir(), "s.json"),
		Parallel: 2, Log: testLog(t), Clock: clock.NewFake(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if diff := diffHashes(want, tableHashes(t, direct, "dst")); diff != "" {
		t.Fatalf("restore through throttling lost items: %s", diff)
	}

	// A table that never accepts writes: the restore fails loudly.
	proxy.unprocessAll = true
	createTable(t, direct, "stuck")
	_, err = Restore(ctx, RestoreConfig{Store: st, DumpID: "t", Table: "stuck", DB: db, StateFile: filepath.Join(t.TempDir(), "s.json"),
		MaxAttempts: 5, Log: testLog(t), Clock: clock.NewFake(time.Now())})
	if err == nil || !strings.Contains(err.Error(), "unprocessed after 5 BatchWriteItem attempts") {
		t.Fatalf("want a loud unprocessed-items failure, got %v", err)
	}
}

func TestRestoreWriteBudget(t *testing.T) {
	ctx := context.Background()
	endpoint, direct := dynalite(t)
	proxy := newThrottleProxy(t, endpoint, 0)
	proxy.wholeBatches = true
	db, err := NewDynamoDB(ctx, AWSOptions{Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}
	createTable(t, direct, "src")
	var items []Item
	for i := range 800 {
		items = append(items, makeItem(i, false))
	}
	putItems(t, direct, "src", items)
	st := dirStore(t)
	if _, err := Dump(ctx, DumpConfig{Table: "src", DumpID: "w", Store: st, DB: direct, Share: SegmentShare{0, 1, 2}, VolumeItems: 100, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	const budget = 200.0
	createTable(t, direct, "dst")
	res, err := Restore(ctx, RestoreConfig{Store: st, DumpID: "w", Table: "dst", DB: db, StateFile: filepath.Join(t.TempDir(), "s.json"),
		Parallel: 4, WriteBudget: budget, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	peak, total, span := proxy.maxWindow(2 * time.Second)
	t.Logf("restore: %.0f WCU in %v, peak 2s window %.0f, budget %v/s", total, span, peak, budget)
	if total < 3*budget {
		t.Fatalf("too few writes to test the budget: %.0f WCU", total)
	}
	if res.Capacity < total*0.99 || res.Capacity > total*1.01 {
		t.Fatalf("restore counted %.1f WCU, the proxy saw %.1f", res.Capacity, total)
	}
	if limit := budget*2 + budget/4 + 4*25; peak > limit {
		t.Fatalf("%.0f WCU in a 2 s window, limit %.0f", peak, limit)
	}
	if diff := diffHashes(tableHashes(t, direct, "src"), tableHashes(t, direct, "dst")); diff != "" {
		t.Fatal(diff)
	}
}
