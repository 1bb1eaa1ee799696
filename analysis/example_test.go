package analysis_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/clock"
)

// Run measures an instance's error ratio three times, 10s apart. The rollout engine passes
// nil (the wall clock) instead of a fake clock, and the new slot's /metrics URLs.
func ExampleRun() {
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served += 100 // 100 requests between two scrapes, 1 in 100 failing
		fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
		fmt.Fprintf(w, "http_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n", served*99/100, served/100)
	}))
	defer srv.Close()

	tmpl := analysis.Template{
		Interval: 10 * time.Second, Count: 3, InconclusiveLimit: 1,
		Metrics: []analysis.Metric{{Name: "error-ratio", ErrorRatio: &analysis.ErrorRatio{Max: 0.02, Window: 30 * time.Second, MinRequests: 20}}},
	}
	endpoints := func(context.Context) ([]analysis.Endpoint, error) {
		return []analysis.Endpoint{{Instance: "i-1", URL: srv.URL + "/metrics"}}, nil
	}
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	src := analysis.NewScrape(tmpl, endpoints)
	defer src.Close()
	s, err := analysis.Run(context.Background(), tmpl, src, clk, func(m analysis.Measurement) {
		fmt.Printf("%s %s %.3g (%s): %s\n", m.At.Format("15:04:05"), m.Metric, m.Value, m.Threshold, m.Result)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Outcome, s.Reason)
	// Output:
	// 00:00:10 error-ratio 0.01 (<= 0.02): Passed
	// 00:00:20 error-ratio 0.01 (<= 0.02): Passed
	// 00:00:30 error-ratio 0.01 (<= 0.02): Passed
	// Successful CountReached
}
