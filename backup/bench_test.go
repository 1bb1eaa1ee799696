//go:build e2e

package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/internal/testpeers"
)

// Benchmarks run against one dynalite per benchmark; tables are filled
// once per size. Run them with `go tool task -t taskfiles/backup.yml bench`
// (see docs/benchmarks.md).

func benchEnv(b *testing.B) (string, *dynamodb.Client) {
	b.Helper()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "kiln-bench", "AWS_SECRET_ACCESS_KEY": "kiln-bench", "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		b.Setenv(k, v)
	}
	ep := testpeers.Dynalite(b)
	db, err := NewDynamoDB(context.Background(), AWSOptions{Endpoint: ep})
	if err != nil {
		b.Fatal(err)
	}
	return ep, db
}

// benchItem is a typical small item of about 200 bytes.
func benchItem(i int) Item {
	return Item{
		"pk":      &types.AttributeValueMemberS{Value: fmt.Sprintf("customer#%08d", i)},
		"sk":      &types.AttributeValueMemberN{Value: fmt.Sprint(i % 1000)},
		"name":    &types.AttributeValueMemberS{Value: fmt.Sprintf("Customer number %d with a name", i)},
		"balance": &types.AttributeValueMemberN{Value: fmt.Sprintf("%d.%02d", i*37%100000, i%100)},
		"active":  &types.AttributeValueMemberBOOL{Value: i%3 != 0},
		"tags":    &types.AttributeValueMemberSS{Value: []string{"bench", fmt.Sprint("t", i%17)}},
		"addr": &types.AttributeValueMemberM{Value: Item{
			"city": &types.AttributeValueMemberS{Value: "Springfield"}, "zip": &types.AttributeValueMemberS{Value: fmt.Sprintf("%05d", i%99999)},
		}},
	}
}

func fillParallel(b *testing.B, db *dynamodb.Client, table string, n int) {
	b.Helper()
	createTable(b, db, table)
	start := time.Now()
	g := new(errgroup.Group)
	g.SetLimit(6)
	for lo := 0; lo < n; lo += 25 {
		g.Go(func() error {
			var reqs []types.WriteRequest
			for i := lo; i < min(lo+25, n); i++ {
				reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: benchItem(i)}})
			}
			for len(reqs) > 0 {
				out, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
				if err != nil {
					return err
				}
				reqs = out.UnprocessedItems[table]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %s with %d items in %v", table, n, time.Since(start).Round(time.Millisecond))
}

// bareScan reads the whole table with a parallel Scan and discards it: the
// ceiling a dump can reach on this peer.
func bareScan(ctx context.Context, db *dynamodb.Client, table string, segments int) (int64, error) {
	var mu sync.Mutex
	var total int64
	g, ctx := errgroup.WithContext(ctx)
	for s := range segments {
		g.Go(func() error {
			p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: &table, Segment: aws.Int32(int32(s)), TotalSegments: aws.Int32(int32(segments))})
			var n int64
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					return err
				}
				n += int64(len(out.Items))
			}
			mu.Lock()
			total += n
			mu.Unlock()
			return nil
		})
	}
	return total, g.Wait()
}

// BenchmarkDumpVsBareScan alternates a bare parallel scan and a full dump
// (encode, zstd, upload to a file store, checkpoints) of the same table.
func BenchmarkDumpVsBareScan(b *testing.B) {
	const n, segments = 100000, 4
	ctx := context.Background()
	_, db := benchEnv(b)
	fillParallel(b, db, "src", n)
	var scanTime, dumpTime time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		got, err := bareScan(ctx, db, "src", segments)
		if err != nil || got != n {
			b.Fatalf("bare scan: %d items, %v", got, err)
		}
		scanTime += time.Since(t0)
		t0 = time.Now()
		res, err := Dump(ctx, DumpConfig{Table: "src", DumpID: fmt.Sprint("bench-", i), Store: dirStore(b), DB: db,
			Share: SegmentShare{0, segments - 1, segments}, Parallel: segments, VolumeBytes: 8 << 20, LocalVolumes: 2,
			SpoolDir: filepath.Join(b.TempDir(), "spool"), Log: testLog(b)})
		if err != nil || res.Manifest.Items != n {
			b.Fatalf("dump: %v", err)
		}
		dumpTime += time.Since(t0)
	}
	scanRate := float64(n*b.N) / scanTime.Seconds()
	dumpRate := float64(n*b.N) / dumpTime.Seconds()
	b.ReportMetric(scanRate, "scan-items/s")
	b.ReportMetric(dumpRate, "dump-items/s")
	b.ReportMetric(100*dumpRate/scanRate, "dump-%-of-scan")
}

// BenchmarkThrottledDump dumps with a read budget and reports the achieved
// RCU/s as a share of it.
func BenchmarkThrottledDump(b *testing.B) {
	const n = 250000
	ctx := context.Background()
	_, db := benchEnv(b)
	fillParallel(b, db, "src", n)
	for _, budget := range []float64{50, 500} {
		b.Run(fmt.Sprintf("rcu=%v", budget), func(b *testing.B) {
			var pct float64
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				// Stop after ~6 s: the point is the rate, not the whole table.
				cctx, cancel := context.WithTimeout(ctx, 6*time.Second)
				d := DumpConfig{Table: "src", DumpID: fmt.Sprint("thr-", budget, "-", i), Store: dirStore(b), DB: db,
					Share: SegmentShare{0, 3, 4}, Parallel: 4, VolumeBytes: 8 << 20, ReadBudget: budget, PageLimit: 200, Log: testLog(b)}
				d.Progress = newProgress("dump")
				_, err := Dump(cctx, d)
				cancel()
				el := time.Since(start).Seconds()
				spent := d.Progress.Capacity()
				if err == nil && el < 5.5 {
					b.Fatalf("table too small for the budget: dump finished in %.1fs", el)
				}
				pct = 100 * spent / el / budget
				b.Logf("budget %v RCU/s: spent %.1f RCU in %.1fs -> %.1f%% of budget", budget, spent, el, pct)
			}
			b.ReportMetric(pct, "%-of-budget")
		})
	}
}

// BenchmarkDumpRSS runs kiln-backup dump as a separate process on tables of
// 100k and 1M items and reports its peak RSS and the most local disk its
// volumes used (K=2, 4 MiB volumes).
func BenchmarkDumpRSS(b *testing.B) {
	ep, db := benchEnv(b)
	for _, n := range []int{100000, 1000000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			table := fmt.Sprint("t", n)
			fillParallel(b, db, table, n)
			for i := 0; b.Loop(); i++ {
				root, spool := b.TempDir(), filepath.Join(b.TempDir(), "spool")
				args := []string{"dump", "--table", table, "--id", fmt.Sprint("rss-", i), "--store", "file://" + root, "--endpoint", ep,
					"--segments", "4", "--parallel", "4", "--volume-bytes", fmt.Sprint(4 << 20), "--local-volumes", "2", "--spool-dir", spool, "--progress-interval", "0"}
				enc, _ := json.Marshal(args)
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "KILN_BACKUP_TEST_MAIN="+string(enc))
				cmd.Stderr = os.Stderr
				stop := make(chan struct{})
				var maxDisk int64
				var maxFiles int
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						case <-time.After(2 * time.Millisecond):
						}
						ents, _ := os.ReadDir(spool)
						var sum int64
						for _, e := range ents {
							if fi, err := e.Info(); err == nil {
								sum += fi.Size()
							}
						}
						maxDisk, maxFiles = max(maxDisk, sum), max(maxFiles, len(ents))
					}
				}()
				start := time.Now()
				err := cmd.Run()
				close(stop)
				wg.Wait()
				if err != nil {
					b.Fatal(err)
				}
				rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
				b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
				b.ReportMetric(float64(maxFiles), "max-local-volumes")
				b.ReportMetric(float64(maxDisk)/(1<<20), "max-local-MiB")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "items/s")
			}
		})
	}
}

// BenchmarkFirstWave dumps a 100,000-item table (about 27 s of budget) at --rcu 60 with the agent's
// defaults (16 segments, 4 in parallel, no page limit) through a capacity
// meter, and reports the most capacity consumed in any 10 s window and in
// the first 6 s: before pages were sized by their estimated cost, every
// segment's first page was a full 1 MB read and the dump took 634 units in
// its first 6 s.
func BenchmarkFirstWave(b *testing.B) {
	const n, budget = 100000, 60.0
	endpoint, db := benchEnv(b)
	fillParallel(b, db, "src", n)
	for i := 0; b.Loop(); i++ {
		meter := testpeers.NewCapacityMeter(b, endpoint)
		mdb, err := NewDynamoDB(context.Background(), AWSOptions{Endpoint: meter.URL})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := Dump(context.Background(), DumpConfig{Table: "src", DumpID: fmt.Sprint("wave-", i), Store: dirStore(b), DB: mdb,
			Share: SegmentShare{0, 15, 16}, Parallel: 4, ReadBudget: budget, Log: testLog(b)}); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		peak, total, _ := meter.MaxWindow(10 * time.Second)
		first := meter.Sum(start, 6*time.Second)
		b.Logf("budget %v RCU/s: %.1f RCU in %v; first 6 s %.1f RCU; peak 10 s window %.1f RCU = %.1f%% of budget x 10 s",
			budget, total, el.Round(100*time.Millisecond), first, peak, 100*peak/(budget*10))
		b.ReportMetric(100*peak/(budget*10), "peak-10s-%-of-budget")
		b.ReportMetric(first, "RCU-in-first-6s")
	}
}
