package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchEndpoints is the fleet size of the benchmarks.
const benchEndpoints = 50

func benchTemplate() Template {
	hi := 100.0
	return Template{
		Interval: 10 * time.Second, Count: 6, InconclusiveLimit: 1,
		Metrics: []Metric{
			{Name: "error-ratio", ErrorRatio: &ErrorRatio{Max: 0.01, Window: 30 * time.Second, MinRequests: 20}},
			{Name: "p99", Latency: &Latency{Quantile: 0.99, Max: 250 * time.Millisecond, Window: 30 * time.Second, MinRequests: 20}},
			{Name: "queue", Gauge: &Gauge{Name: "queue_depth", Max: &hi, Aggregate: AggregateMax}},
		},
	}
}

// benchBody is a realistic /metrics page of a web app at its n-th scrape: 5 handlers x
// 3 methods x 4 codes of http_requests_total, a 12-bucket latency histogram per handler, a
// gauge, and 100 lines of Go runtime metrics nobody asked for.
func benchBody(n int) string {
	var b strings.Builder
	b.WriteString("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n")
	for h := range 5 {
		for _, m := range []string{"GET", "POST", "PUT"} {
			for c, code := range []string{"200", "304", "404", "500"} {
				fmt.Fprintf(&b, "http_requests_total{handler=\"/h%d\",method=%q,code=%q} %d\n", h, m, code, n*1000/(c*c*10+1))
			}
		}
	}
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	b.WriteString("# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n")
	for h := range 5 {
		for i, le := range bounds {
			fmt.Fprintf(&b, "http_request_duration_seconds_bucket{handler=\"/h%d\",le=%q} %d\n", h, le, n*100*(i+1))
		}
		fmt.Fprintf(&b, "http_request_duration_seconds_sum{handler=\"/h%d\"} %d\n", h, n*37)
		fmt.Fprintf(&b, "http_request_duration_seconds_count{handler=\"/h%d\"} %d\n", h, n*1200)
	}
	fmt.Fprintf(&b, "# TYPE queue_depth gauge\nqueue_depth %d\n", n%50)
	for i := range 100 {
		fmt.Fprintf(&b, "# TYPE go_runtime_metric_%d gauge\ngo_runtime_metric_%d %d\n", i, i, i*n)
	}
	return b.String()
}

// BenchmarkEvaluate measures one evaluation of the three built-in metric kinds over 50
// endpoints, each with the 4 snapshots a 30s window at a 10s interval holds.
func BenchmarkEvaluate(b *testing.B) {
	t := benchTemplate()
	src := NewScrape(t, nil)
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for e := range benchEndpoints {
		ep := Endpoint{Instance: fmt.Sprintf("i-%d", e), URL: fmt.Sprintf("http://127.0.0.1:%d/metrics", 40000+e)}
		src.order = append(src.order, ep)
		for n := range 4 {
			snap, err := src.needs.parse(strings.NewReader(benchBody(n+e)), now.Add(time.Duration(n)*t.Interval))
			if err != nil {
				b.Fatal(err)
			}
			src.snaps[ep] = append(src.snaps[ep], snap)
		}
	}
	at := now.Add(3 * t.Interval)
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range t.Metrics {
			if v := evaluate(ctx, m, src, at); v.result == Error {
				b.Fatal(v)
			}
		}
	}
}

// BenchmarkRound measures a whole measurement round over 50 endpoints: scraping each (real
// HTTP on 127.0.0.1, 16 in parallel), parsing, and evaluating every metric.
func BenchmarkRound(b *testing.B) {
	t := benchTemplate()
	// Pages are rendered up front so that the servers, in this process, cost little; after
	// the last page the counters start again, which the evaluators take as a restart.
	pages := make([][]byte, 16)
	for n := range pages {
		pages[n] = []byte(benchBody(n * 10))
	}
	var eps []Endpoint
	for e := range benchEndpoints {
		n := e
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n++
			_, _ = w.Write(pages[n%len(pages)])
		}))
		b.Cleanup(srv.Close)
		eps = append(eps, Endpoint{Instance: fmt.Sprintf("i-%d", e), URL: srv.URL + "/metrics"})
	}
	list := func(context.Context) ([]Endpoint, error) { return eps, nil }
	src := NewScrape(t, list)
	defer src.Close()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(t.Interval)
		if err := src.Collect(ctx, now); err != nil {
			b.Fatal(err)
		}
		for _, m := range t.Metrics {
			evaluate(ctx, m, src, now)
		}
	}
}

// BenchmarkParse measures parsing one endpoint's page (about 15 KB) into a snapshot.
func BenchmarkParse(b *testing.B) {
	n := needsOf(benchTemplate())
	body := benchBody(7)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.parse(strings.NewReader(body), time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
