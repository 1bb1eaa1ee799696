package analysis_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/clock"
)

var start = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// app is an instance's /metrics endpoint whose counters the test controls: before answering
// its n-th scrape (0 is Run's baseline) it calls step(n, a).
type app struct {
	mu       sync.Mutex
	ok, errs float64    // http_requests_total{code="200"} and {code="500"}
	buckets  [4]float64 // http_request_duration_seconds cumulative: le 0.1, 0.25, 1, +Inf
	queue    float64
	fail     bool // answer 500 instead of metrics
	scrapes  int
	step     func(n int, a *app)
}

// serve adds requests: ok good and bad 5xx ones, all observed at latency bucket le.
func (a *app) serve(ok, bad float64, le int) {
	a.ok += ok
	a.errs += bad
	for i := le; i < 4; i++ {
		a.buckets[i] += ok + bad
	}
}

func (a *app) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.step != nil {
		a.step(a.scrapes, a)
	}
	a.scrapes++
	if a.fail {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "# TYPE http_requests_total counter\n")
	fmt.Fprintf(w, "http_requests_total{code=\"200\",method=\"GET\"} %v\n", a.ok)
	if a.errs > 0 { // like promhttp, the series exists only once a 500 happened
		fmt.Fprintf(w, "http_requests_total{code=\"500\",method=\"GET\"} %v\n", a.errs)
	}
	fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
	for i, le := range []string{"0.1", "0.25", "1", "+Inf"} {
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=%q} %v\n", le, a.buckets[i])
	}
	fmt.Fprintf(w, "http_request_duration_seconds_sum 0\nhttp_request_duration_seconds_count %v\n", a.buckets[3])
	fmt.Fprintf(w, "# TYPE queue_depth gauge\nqueue_depth %v\n", a.queue)
}

// fleet starts one httptest server per app (stopped when the test ends) and returns its
// endpoints.
func fleet(t *testing.T, apps ...*app) analysis.EndpointsFunc {
	t.Helper()
	var eps []analysis.Endpoint
	for i, a := range apps {
		srv := httptest.NewServer(a)
		t.Cleanup(srv.Close)
		eps = append(eps, analysis.Endpoint{Instance: fmt.Sprintf("i-%d", i), URL: srv.URL + "/metrics"})
	}
	return func(context.Context) ([]analysis.Endpoint, error) { return eps, nil }
}

func f(v float64) *float64 { return &v }

// template is issue 3's example: error ratio, p99 latency and a queue gauge every 10s.
func template(count int) analysis.Template {
	return analysis.Template{
		Interval: 10 * time.Second, Count: count, InconclusiveLimit: 1,
		Metrics: []analysis.Metric{
			{Name: "error-ratio", ErrorRatio: &analysis.ErrorRatio{Max: 0.01, Window: 10 * time.Second, MinRequests: 20}},
			{Name: "p99", Latency: &analysis.Latency{Quantile: 0.99, Max: 250 * time.Millisecond, Window: 30 * time.Second, MinRequests: 20}},
			{Name: "queue", Gauge: &analysis.Gauge{Name: "queue_depth", Max: f(100), Aggregate: analysis.AggregateSum}},
		},
	}
}

// healthy serves 100 fast requests per interval and keeps the queue short.
func healthy(_ int, a *app) {
	a.serve(100, 0, 0)
	a.queue = 10
}

func run(t *testing.T, tmpl analysis.Template, eps analysis.EndpointsFunc) (analysis.Summary, []analysis.Measurement) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []analysis.Measurement
	src := analysis.NewScrape(tmpl, eps)
	defer src.Close()
	s, err := analysis.Run(ctx, tmpl, src, clock.NewFake(start), func(m analysis.Measurement) { got = append(got, m) })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return s, got
}

// results lists the results of one metric's measurements.
func results(ms []analysis.Measurement, metric string) string {
	var out []string
	for _, m := range ms {
		if m.Metric == metric {
			out = append(out, string(m.Result))
		}
	}
	return strings.Join(out, ",")
}

func TestRunSuccessful(t *testing.T) {
	a, b := &app{step: healthy}, &app{step: healthy}
	s, ms := run(t, template(3), fleet(t, a, b))
	if s.Outcome != analysis.OutcomeSuccessful || s.Reason != analysis.ReasonCountReached {
		t.Fatalf("summary = %+v", s)
	}
	if len(ms) != 9 {
		t.Fatalf("%d measurements, want 3 metrics x 3: %+v", len(ms), ms)
	}
	for i, m := range ms {
		if want := start.Add(time.Duration(i/3+1) * 10 * time.Second); !m.At.Equal(want) || m.Result != analysis.Passed {
			t.Errorf("measurement %d = %+v, want Passed at %s", i, m, want)
		}
	}
	last := s.Measurements
	if len(last) != 3 || last[0].Value != 0 || last[0].Threshold != "<= 0.01" || last[0].Passed != 3 ||
		last[1].Value != 0.099 || last[1].Threshold != "<= 250ms" || last[2].Value != 20 || last[2].Threshold != "<= 100" {
		t.Errorf("last measurements = %+v", last)
	}
	if a.scrapes != 4 || b.scrapes != 4 {
		t.Errorf("scrapes = %d, %d; want a baseline and 3", a.scrapes, b.scrapes)
	}
}

func TestRunFailsAtTheNthMeasurement(t *testing.T) {
	bad := func(n int, a *app) {
		if n == 3 { // the third measurement sees 1 in 4 requests fail, slowly
			a.serve(75, 25, 3)
			return
		}
		healthy(n, a)
	}
	s, ms := run(t, template(10), fleet(t, &app{step: healthy}, &app{step: bad}))
	if s.Outcome != analysis.OutcomeFailed || s.Reason != analysis.ReasonFailureLimit {
		t.Fatalf("summary = %+v", s)
	}
	if got := results(ms, "error-ratio"); got != "Passed,Passed,Failed" {
		t.Errorf("error-ratio results = %s", got)
	}
	if got := results(ms, "p99"); got != "Passed,Passed,Failed" {
		t.Errorf("p99 results = %s", got)
	}
	er := s.Measurements[0]
	if er.Value != 25.0/200 || er.Failed != 1 || !er.At.Equal(start.Add(30*time.Second)) {
		t.Errorf("error-ratio = %+v", er)
	}
	if !strings.Contains(s.Message, "metric error-ratio: 1 failed measurements, more than failureLimit 0") {
		t.Errorf("message = %q", s.Message)
	}
}

func TestRunToleratesFailureLimit(t *testing.T) {
	tmpl := template(4)
	tmpl.FailureLimit = 1
	flaky := func(n int, a *app) {
		if n == 2 {
			a.serve(50, 50, 0)
			return
		}
		healthy(n, a)
	}
	s, ms := run(t, tmpl, fleet(t, &app{step: flaky}))
	if s.Outcome != analysis.OutcomeSuccessful || results(ms, "error-ratio") != "Passed,Failed,Passed,Passed" {
		t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
	}
}

func TestRunInconclusiveWithTooLittleTraffic(t *testing.T) {
	tmpl := template(10)
	tmpl.InconclusiveLimit = 2
	trickle := func(_ int, a *app) { a.serve(5, 0, 0) }
	s, ms := run(t, tmpl, fleet(t, &app{step: trickle}))
	if s.Outcome != analysis.OutcomeInconclusive || s.Reason != analysis.ReasonInconclusiveLimit {
		t.Fatalf("summary = %+v", s)
	}
	if got := results(ms, "error-ratio"); got != "Inconclusive,Inconclusive" {
		t.Errorf("error-ratio results = %s", got)
	}
	if m := s.Measurements[0]; !strings.Contains(m.Reason, "5 requests in the last 10s, fewer than minRequests 20") {
		t.Errorf("reason = %q", m.Reason)
	}
}

func TestRunScrapeErrors(t *testing.T) {
	t.Run("too many in a row fail the analysis", func(t *testing.T) {
		down := func(n int, a *app) {
			healthy(n, a)
			a.fail = n >= 2
		}
		s, ms := run(t, template(20), fleet(t, &app{step: healthy}, &app{step: down}))
		if s.Outcome != analysis.OutcomeFailed || s.Reason != analysis.ReasonScrapeErrors {
			t.Fatalf("summary = %+v", s)
		}
		if got := results(ms, "queue"); got != "Passed,Error,Error,Error,Error,Error" {
			t.Errorf("queue results = %s", got)
		}
		if m := s.Measurements[2]; m.Errors != 5 || !strings.Contains(m.Reason, "scrape i-1") || !strings.Contains(m.Reason, "500") {
			t.Errorf("last queue measurement = %+v", m)
		}
	})
	t.Run("a transient error is tolerated", func(t *testing.T) {
		blip := func(n int, a *app) {
			healthy(n, a)
			a.fail = n == 2
		}
		s, ms := run(t, template(3), fleet(t, &app{step: blip}))
		if s.Outcome != analysis.OutcomeSuccessful || results(ms, "error-ratio") != "Passed,Error,Passed" {
			t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
		}
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close() // nothing listens there any more
		eps := func(context.Context) ([]analysis.Endpoint, error) {
			return []analysis.Endpoint{{Instance: "gone", URL: url + "/metrics"}}, nil
		}
		s, _ := run(t, template(20), eps)
		if s.Outcome != analysis.OutcomeFailed || s.Reason != analysis.ReasonScrapeErrors || !strings.Contains(s.Message, "scrape gone") {
			t.Fatalf("summary = %+v", s)
		}
	})
	t.Run("no endpoints", func(t *testing.T) {
		eps := func(context.Context) ([]analysis.Endpoint, error) { return nil, nil }
		s, _ := run(t, template(20), eps)
		if s.Outcome != analysis.OutcomeFailed || !strings.Contains(s.Message, "no endpoints to scrape") {
			t.Fatalf("summary = %+v", s)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		huge := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			line := "# " + strings.Repeat("x", 1<<16) + "\n"
			for written := 0; written <= analysis.MaxBodyBytes; written += len(line) {
				if _, err := w.Write([]byte(line)); err != nil {
					return
				}
			}
		})
		srv := httptest.NewServer(huge)
		defer srv.Close()
		eps := func(context.Context) ([]analysis.Endpoint, error) {
			return []analysis.Endpoint{{Instance: "big", URL: srv.URL}}, nil
		}
		s, _ := run(t, template(20), eps)
		if s.Outcome != analysis.OutcomeFailed || !strings.Contains(s.Message, "larger than") {
			t.Fatalf("summary = %+v", s)
		}
	})
}

func TestRunConsecutiveSuccessLimit(t *testing.T) {
	tmpl := template(0)
	tmpl.ConsecutiveSuccessLimit = 2
	tmpl.FailureLimit = 1
	tmpl.Metrics = tmpl.Metrics[:1]
	recovering := func(n int, a *app) {
		if n == 1 {
			a.serve(50, 50, 0)
			return
		}
		healthy(n, a)
	}
	s, ms := run(t, tmpl, fleet(t, &app{step: recovering}))
	if s.Outcome != analysis.OutcomeSuccessful || s.Reason != analysis.ReasonConsecutiveSuccesses || results(ms, "error-ratio") != "Failed,Passed,Passed" {
		t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
	}

	// With a count as well, the run of passes must come within it.
	tmpl.Count = 3
	tmpl.FailureLimit = 5
	alternating := func(n int, a *app) {
		if n%2 == 1 {
			a.serve(50, 50, 0)
			return
		}
		healthy(n, a)
	}
	s, ms = run(t, tmpl, fleet(t, &app{step: alternating}))
	if s.Outcome != analysis.OutcomeInconclusive || s.Reason != analysis.ReasonNoSuccessStreak || results(ms, "error-ratio") != "Failed,Passed,Failed" {
		t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
	}
}

func TestRunCounterReset(t *testing.T) {
	// The instance restarts before the second measurement: counters start again from 0.
	restarting := func(n int, a *app) {
		if n == 2 {
			a.ok, a.errs, a.buckets = 0, 0, [4]float64{}
		}
		healthy(n, a)
	}
	s, ms := run(t, template(3), fleet(t, &app{step: restarting}))
	if s.Outcome != analysis.OutcomeSuccessful || results(ms, "error-ratio") != "Passed,Passed,Passed" {
		t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
	}
}

func TestRunEndpointsChange(t *testing.T) {
	// A second instance joins at the second round; the first leaves at the third.
	a, b := &app{step: healthy}, &app{step: healthy}
	all := fleet(t, a, b)
	round := 0
	eps := func(ctx context.Context) ([]analysis.Endpoint, error) {
		list, _ := all(ctx)
		round++
		switch {
		case round == 1:
			return list[:1], nil
		case round >= 3:
			return list[1:], nil
		}
		return list, nil
	}
	s, _ := run(t, template(3), eps)
	if s.Outcome != analysis.OutcomeSuccessful {
		t.Fatalf("summary = %+v", s)
	}
	if a.scrapes != 2 || b.scrapes != 3 {
		t.Errorf("scrapes = %d, %d; want 2, 3", a.scrapes, b.scrapes)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	eps := fleet(t, &app{step: func(n int, a *app) {
		healthy(n, a)
		if n == 2 {
			cancel()
		}
	}})
	s, err := analysis.Run(ctx, template(10), analysis.NewScrape(template(10), eps), clock.NewFake(start), nil)
	if !errors.Is(err, context.Canceled) || s.Reason != analysis.ReasonCanceled || s.Outcome != "" {
		t.Fatalf("Run = %+v, %v; want canceled", s, err)
	}
	if len(s.Measurements) != 3 || s.Measurements[0].Passed != 1 {
		t.Errorf("measurements so far = %+v", s.Measurements)
	}
}

func TestRunRejectsInvalidTemplate(t *testing.T) {
	for _, tmpl := range []analysis.Template{
		{},
		{Interval: time.Second, Count: 1, InconclusiveLimit: 1},
		{Interval: time.Second, InconclusiveLimit: 1, Metrics: template(1).Metrics},
		{Interval: time.Minute, Count: 1, InconclusiveLimit: 1, Metrics: template(1).Metrics}, // windows shorter than the interval
		{Interval: time.Second, Count: 1, InconclusiveLimit: 1, Metrics: []analysis.Metric{{Name: "x"}}},
		{Interval: time.Second, Count: 1, InconclusiveLimit: 1, Metrics: []analysis.Metric{{Name: "x", Gauge: &analysis.Gauge{Name: "up"}}}},
	} {
		if _, err := analysis.Run(context.Background(), tmpl, analysis.NewScrape(tmpl, nil), clock.NewFake(start), nil); err == nil || !strings.Contains(err.Error(), "invalid template") {
			t.Errorf("Run(%+v) = %v, want an invalid template error", tmpl, err)
		}
	}
	if err := template(1).Validate(); err != nil {
		t.Errorf("valid template: %v", err)
	}
}
