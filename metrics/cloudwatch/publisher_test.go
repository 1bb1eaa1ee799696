package cloudwatch

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhq/kiln/metrics/cloudwatch/cwfake"
)

// t0 is recent: datums older than two weeks are never sent.
var t0 = time.Now().UTC().Truncate(time.Millisecond)

func datums(n int, start int) []Datum {
	ds := make([]Datum, n)
	for i := range ds {
		ds[i] = Datum{Name: "kiln_test_value", Dims: []Dim{{"Instance", "i-1"}, {"Series", fmt.Sprint((start + i) % 7)}},
			Value: float64(start + i), Unit: "Count", At: t0.Add(time.Duration(start+i) * time.Millisecond), Resolution: 60}
	}
	return ds
}

func TestBatchesWithinCountLimitAndGzip(t *testing.T) {
	f := newFake(t)
	p := New(Options{Namespace: "Kiln/Test", Client: client(t, f), BufferSize: 5000})
	p.Add(datums(2500, 0)...)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) != 3 || len(reqs[0].Datums) != 1000 || len(reqs[1].Datums) != 1000 || len(reqs[2].Datums) != 500 {
		t.Fatalf("requests carried %v datums, want 1000, 1000, 500", counts(reqs))
	}
	for i, r := range reqs {
		if !r.Gzip {
			t.Errorf("request %d (%d bytes) was not gzipped", i, r.BodyBytes)
		}
		if r.Namespace != "Kiln/Test" {
			t.Errorf("namespace = %q", r.Namespace)
		}
	}
	got := f.Accepted()
	for i, d := range got {
		if d.Value != float64(i) || d.Name != "kiln_test_value" || d.Dims["Series"] != fmt.Sprint(i%7) ||
			d.Unit != "Count" || d.Resolution != 60 || !d.At.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("datum %d arrived as %+v", i, d)
		}
	}
	if s := p.Stats(); s.Sent != 2500 || s.Requests != 3 || s.Buffered != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBatchesWithinByteLimit(t *testing.T) {
	f := newFake(t)
	p := New(Options{Namespace: "Kiln", Client: client(t, f), BufferSize: 2000})
	big := strings.Repeat("v", maxDimValueLen)
	ds := datums(1200, 0)
	for i := range ds {
		for j := range 28 {
			ds[i].Dims = append(ds[i].Dims, Dim{fmt.Sprintf("Dim%02d", j), big})
		}
	}
	p.Add(ds...)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	total := 0
	for i, r := range reqs {
		total += len(r.Datums)
		if r.BodyBytes > 1_000_000 {
			t.Errorf("request %d body is %d bytes, over 1 MB", i, r.BodyBytes)
		}
		if len(r.Datums[0].Dims) != 30 {
			t.Errorf("request %d: %d dimensions arrived, want 30", i, len(r.Datums[0].Dims))
		}
	}
	if total != 1200 || len(reqs) < 30 {
		t.Errorf("%d datums in %d requests; want all 1200 split into many requests", total, len(reqs))
	}
}

func TestRetriesWithExponentialBackoffAndJitter(t *testing.T) {
	f := newFake(t)
	f.Respond(func(n int) (int, string) {
		switch n {
		case 0:
			return http.StatusInternalServerError, "InternalServiceError"
		case 1, 2, 3:
			return http.StatusServiceUnavailable, "ServiceUnavailable"
		}
		return http.StatusOK, ""
	})
	var sl sleeps
	jitter := []float64{0, 0.5, 0.999, 0.25}
	p := New(Options{Namespace: "Kiln", Client: client(t, f), BackoffMin: time.Second, BackoffMax: 5 * time.Second,
		Sleep: sl.sleep, Jitter: func() float64 { j := jitter[0]; jitter = append(jitter[1:], j); return j }})
	p.Add(datums(10, 0)...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	waitFor(t, func() bool { return p.Stats().Sent == 10 })
	cancel()
	<-done

	// Backoff caps 1s, 2s, 4s, 5s (capped); half is fixed, the other half scaled by jitter.
	want := []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 2*time.Second + time.Duration(0.999*float64(2*time.Second)), 2500*time.Millisecond + 625*time.Millisecond}
	if got := sl.got(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backoffs = %v, want %v", got, want)
	}
	reqs := f.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 4 failures and 1 success", len(reqs))
	}
	for i, r := range reqs {
		if r.DatumCount != 10 || r.Datums[0].Value != 0 {
			t.Errorf("attempt %d carried %d datums starting at %v; every retry must resend the same oldest datums", i, r.DatumCount, r.Datums[0].Value)
		}
	}
	if s := p.Stats(); s.Failures != 4 || s.Sent != 10 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestInvalidDataIsDroppedNotRetried(t *testing.T) {
	f := newFake(t)
	f.Respond(func(n int) (int, string) {
		if n == 0 {
			return http.StatusBadRequest, "InvalidParameterValueException"
		}
		return http.StatusOK, ""
	})
	p := New(Options{Namespace: "Kiln", Client: client(t, f), BufferSize: 2000})
	p.Add(datums(1500, 0)...)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Rejected != 1000 || s.Sent != 500 || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestFlushReportsAnUnreachableSink(t *testing.T) {
	f := newFake(t)
	c := client(t, f)
	f.Close() // connection refused from now on
	p := New(Options{Namespace: "Kiln", Client: c})
	p.Add(datums(5, 0)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err == nil {
		t.Fatal("flush to a closed endpoint should fail")
	}
	if s := p.Stats(); s.Buffered != 5 || s.Failures != 1 {
		t.Errorf("stats = %+v; data must stay buffered", s)
	}
}

// TestSinkDownMemoryFlatDropsCountedThenRecovers feeds a long outage worth of data (a day
// of 60s intervals with 600 series) through a publisher whose sink answers 503, retrying
// between intervals as Run would, and checks that the heap does not grow, every datum
// beyond the buffer is counted as dropped, and the newest data is delivered once the sink
// returns.
func TestSinkDownMemoryFlatDropsCountedThenRecovers(t *testing.T) {
	f := newFake(t)
	var up atomic.Bool
	f.Respond(func(int) (int, string) {
		if !up.Load() {
			return http.StatusServiceUnavailable, "ServiceUnavailable"
		}
		return http.StatusOK, ""
	})
	const capacity, perInterval, intervals = 10_000, 600, 1440
	p := New(Options{Namespace: "Kiln", Client: client(t, f), BufferSize: capacity})
	ctx := context.Background()

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var warm uint64
	for i := range intervals {
		p.Add(datums(perInterval, i*perInterval)...)
		if i%60 == 0 {
			if _, err := p.sendOne(ctx); err == nil {
				t.Fatal("send to a down sink succeeded")
			}
		}
		if i%200 == 0 && testing.Verbose() {
			t.Logf("interval %d heap %d", i, heap())
		}
		if i == 100 { // the ring has been full for a while: the steady state
			warm = heap()
		}
	}
	end := heap()
	if end > warm+2<<20 {
		t.Errorf("heap grew from %d to %d bytes while the sink was down", warm, end)
	}
	s := p.Stats()
	if want := uint64(intervals*perInterval - capacity); s.Dropped != want || s.Buffered != capacity {
		t.Errorf("dropped %d buffered %d, want %d and %d", s.Dropped, s.Buffered, want, capacity)
	}

	up.Store(true)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.Accepted()
	if len(got) != capacity {
		t.Fatalf("delivered %d datums after recovery, want the %d newest", len(got), capacity)
	}
	if first, last := got[0].Value, got[len(got)-1].Value; first != float64(intervals*perInterval-capacity) || last != float64(intervals*perInterval-1) {
		t.Errorf("delivered values %v..%v, want the newest", first, last)
	}
	if s := p.Stats(); s.Buffered != 0 || s.Sent != capacity {
		t.Errorf("after recovery: %+v", s)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counts(reqs []cwfake.Request) []int {
	var n []int
	for _, r := range reqs {
		n = append(n, len(r.Datums))
	}
	return n
}

func TestExpiredDatumsAreDroppedUnsent(t *testing.T) {
	f := newFake(t)
	now := t0.Add(15 * 24 * time.Hour)
	p := New(Options{Namespace: "Kiln", Client: client(t, f), Now: func() time.Time { return now }})
	old := datums(3, 0)     // stamped t0: 15 days before now
	fresh := datums(2, 100) // also t0-based ...
	for i := range fresh {
		fresh[i].At = now.Add(-time.Minute) // ... but restamped a minute ago
	}
	p.Add(append(old, fresh...)...)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.Accepted(); len(got) != 2 || got[0].Value != 100 {
		t.Errorf("accepted %+v, want only the two fresh datums", got)
	}
	if s := p.Stats(); s.Expired != 3 || s.Sent != 2 || s.Buffered != 0 {
		t.Errorf("stats = %+v", s)
	}
	// A batch of nothing but expired datums sends no request at all.
	p.Add(datums(4, 0)...)
	n := len(f.Requests())
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.Requests()) != n || p.Stats().Expired != 7 {
		t.Errorf("requests %d -> %d, stats %+v", n, len(f.Requests()), p.Stats())
	}
}
