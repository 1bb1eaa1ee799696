package summary

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// appText renders what the demo app would serve: requests by code and a latency histogram
// with the cumulative bucket counts given (le 0.1, 0.5, 1, +Inf).
func appText(ok, errs float64, buckets [4]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE http_requests_total counter\n")
	fmt.Fprintf(&b, "http_requests_total{code=\"200\",method=\"GET\"} %v\n", ok*0.75)
	fmt.Fprintf(&b, "http_requests_total{code=\"200\",method=\"POST\"} %v\n", ok*0.25)
	fmt.Fprintf(&b, "http_requests_total{code=\"503\",method=\"GET\"} %v\n", errs)
	fmt.Fprintf(&b, "# TYPE http_request_duration_seconds histogram\n")
	for i, le := range []string{"0.1", "0.5", "1", "+Inf"} {
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=%q} %v\n", le, buckets[i])
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_sum 1\nhttp_request_duration_seconds_count %v\n", buckets[3])
	return b.String()
}

func observe(t *testing.T, w *Window, at time.Time, text string) {
	t.Helper()
	fams, err := collect.ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	w.Observe(at, fams)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestSummaryRateErrorsQuantiles(t *testing.T) {
	w := New(Options{Target: "app", Service: "web", Version: "v1", Instance: "i-1"})
	observe(t, w, t0, appText(0, 0, [4]float64{0, 0, 0, 0}))
	observe(t, w, t0.Add(10*time.Second), appText(95, 5, [4]float64{25, 75, 95, 100}))
	observe(t, w, t0.Add(20*time.Second), appText(190, 10, [4]float64{50, 150, 190, 200}))

	d := w.Summarize(t0.Add(20*time.Second), time.Minute)
	if !d.Ready || d.Samples != 3 || d.CoveredSeconds != 20 {
		t.Fatalf("ready=%v samples=%d covered=%v", d.Ready, d.Samples, d.CoveredSeconds)
	}
	if d.Requests.Count != 200 || d.Requests.RatePerSecond != 10 || d.Requests.Errors != 10 {
		t.Errorf("requests = %+v", d.Requests)
	}
	if d.Requests.ErrorRatio == nil || !near(*d.Requests.ErrorRatio, 0.05) {
		t.Errorf("error ratio = %v", d.Requests.ErrorRatio)
	}
	// rank 100 lies in (0.1, 0.5] holding 100 of them after 50: 0.1 + 0.4*50/100.
	// rank 180 lies in (0.5, 1] holding 40 after 150: 0.5 + 0.5*30/40.
	// rank 198 lies in the +Inf bucket: the highest finite bound.
	if d.Latency == nil || !near(d.Latency.P50, 0.3) || !near(d.Latency.P90, 0.875) || !near(d.Latency.P99, 1) || d.Latency.Count != 200 {
		t.Errorf("latency = %+v", d.Latency)
	}
	if d.Source.Target != "app" || !d.Source.Up || d.Service != "web" || d.Schema != Schema {
		t.Errorf("doc = %+v", d)
	}
}

func TestSummaryWindowSelectsRecentSamples(t *testing.T) {
	w := New(Options{})
	observe(t, w, t0, appText(0, 0, [4]float64{}))
	observe(t, w, t0.Add(time.Minute), appText(600, 0, [4]float64{600, 600, 600, 600}))
	// A slow last minute: 60 more requests, all errors, all slow.
	observe(t, w, t0.Add(2*time.Minute), appText(600, 60, [4]float64{600, 600, 600, 660}))

	d := w.Summarize(t0.Add(2*time.Minute), time.Minute)
	if d.Samples != 2 || d.Requests.Count != 60 || *d.Requests.ErrorRatio != 1 || d.Latency.P50 != 1 {
		t.Errorf("1m window: samples %d, requests %+v, latency %+v", d.Samples, d.Requests, d.Latency)
	}
	d = w.Summarize(t0.Add(2*time.Minute), 5*time.Minute)
	if d.Samples != 3 || d.Requests.Count != 660 || !near(d.Requests.RatePerSecond, 5.5) || !near(*d.Requests.ErrorRatio, 60.0/660) {
		t.Errorf("5m window: %+v", d.Requests)
	}
	// Past the window nothing is left: not ready, no ratio, no latency, valid JSON.
	d = w.Summarize(t0.Add(time.Hour), time.Minute)
	if d.Ready || d.Requests.ErrorRatio != nil || d.Latency != nil {
		t.Errorf("stale window should be empty: %+v", d)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatal(err)
	}
}

func TestSummaryCounterReset(t *testing.T) {
	w := New(Options{})
	observe(t, w, t0, appText(100, 0, [4]float64{100, 100, 100, 100}))
	observe(t, w, t0.Add(10*time.Second), appText(150, 0, [4]float64{150, 150, 150, 150}))
	// The app restarted: counters start again from zero.
	observe(t, w, t0.Add(20*time.Second), appText(20, 0, [4]float64{0, 20, 20, 20}))
	observe(t, w, t0.Add(30*time.Second), appText(70, 0, [4]float64{0, 70, 70, 70}))
	d := w.Summarize(t0.Add(30*time.Second), time.Minute)
	if d.Requests.Count != 120 {
		t.Errorf("count across a reset = %v, want 50+20+50", d.Requests.Count)
	}
	if d.Latency == nil || d.Latency.Count != 120 {
		t.Fatalf("latency = %+v", d.Latency)
	}
	// 50 requests <= 0.1, 70 in (0.1, 0.5]: rank 60 lies 10/70 into the second bucket.
	if want := 0.1 + 0.4*10/70; !near(d.Latency.P50, want) {
		t.Errorf("p50 = %v, want %v", d.Latency.P50, want)
	}
}

func TestSummaryHistogramOnlyApp(t *testing.T) {
	w := New(Options{})
	text := func(n float64) string {
		return fmt.Sprintf("# TYPE http_request_duration_seconds histogram\nhttp_request_duration_seconds_bucket{le=\"1\"} %v\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} %v\nhttp_request_duration_seconds_sum 0\nhttp_request_duration_seconds_count %v\n", n, n, n)
	}
	observe(t, w, t0, text(10))
	observe(t, w, t0.Add(10*time.Second), text(30))
	d := w.Summarize(t0.Add(10*time.Second), time.Minute)
	if d.Requests.Count != 20 || d.Requests.Errors != 0 || d.Latency == nil || d.Latency.P50 != 0.5 {
		t.Errorf("requests %+v latency %+v", d.Requests, d.Latency)
	}
}

func TestSummaryRestartsFromStatusFile(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	write := func(app, metrics int) {
		t.Helper()
		b := fmt.Sprintf(`{"instance":"i-1","units":[{"name":"app","restarts":%d,"state":"running"},{"name":"kiln-metrics","restarts":%d}]}`, app, metrics)
		if err := os.WriteFile(status, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := New(Options{StatusFile: status})
	write(1, 0)
	observe(t, w, t0, appText(0, 0, [4]float64{}))
	write(3, 0)
	observe(t, w, t0.Add(10*time.Second), appText(0, 0, [4]float64{}))
	write(3, 1)
	d := w.Summarize(t0.Add(10*time.Second), time.Minute)
	if d.Restarts.Total != 4 || d.Restarts.InWindow != 2 || d.Restarts.Units["app"] != 3 || d.Restarts.Units["kiln-metrics"] != 1 || d.Restarts.Error != "" {
		t.Errorf("restarts = %+v", d.Restarts)
	}
	os.WriteFile(status, []byte("{not json"), 0o644)
	d = w.Summarize(t0.Add(10*time.Second), time.Minute)
	if !strings.Contains(d.Restarts.Error, "status.json") {
		t.Errorf("a broken status file should be reported, got %+v", d.Restarts)
	}
}

func TestWindowIsBounded(t *testing.T) {
	w := New(Options{Retention: time.Hour, MaxSamples: 50})
	fams, _ := collect.ParseText(strings.NewReader(appText(1, 0, [4]float64{1, 1, 1, 1})))
	for i := range 10_000 {
		w.Observe(t0.Add(time.Duration(i)*time.Second), fams)
	}
	if n, c := len(w.points), cap(w.points); n != 50 || c > 200 {
		t.Errorf("points len %d cap %d, want 50 kept and a bounded backing array", n, c)
	}
	w2 := New(Options{Retention: time.Minute, MaxSamples: 1000})
	for i := range 1000 {
		w2.Observe(t0.Add(time.Duration(i)*time.Second), fams)
	}
	if n := len(w2.points); n != 61 {
		t.Errorf("retention kept %d points, want the last 61 (one minute at 1/s, both ends)", n)
	}
}

func TestScrapeFailureIsReported(t *testing.T) {
	w := New(Options{Target: "app"})
	w.ObserveFailure(t0, fmt.Errorf("connection refused"))
	d := w.Summarize(t0, time.Minute)
	if d.Source.Up || d.Source.LastError != "connection refused" || d.Source.LastScrape == nil {
		t.Errorf("source = %+v", d.Source)
	}
}

// TestSummaryCountsSeriesCreatedInTheWindow: promhttp creates a series on its first request,
// so an app's first scrape may have no counter at all; what comes after counts from zero,
// as in the rollout analysis (package prommath).
func TestSummaryCountsSeriesCreatedInTheWindow(t *testing.T) {
	w := New(Options{})
	observe(t, w, t0, "# TYPE up gauge\nup 1\n")
	observe(t, w, t0.Add(10*time.Second), "# TYPE http_requests_total counter\nhttp_requests_total{status=\"200\"} 8\nhttp_requests_total{status=\"502\"} 2\nhttp_requests_total{code=\"404\",status=\"500\"} 5\n")
	d := w.Summarize(t0.Add(10*time.Second), time.Minute)
	if d.Requests.Count != 15 || d.Requests.Errors != 2 {
		t.Errorf("requests = %+v, want 15 of which 2 errors (a status label counts when there is no code label)", d.Requests)
	}
}
