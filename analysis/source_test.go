package analysis_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/clock"
)

// cloudSource is a Source shaped like a cloud metrics service (a load balancer's request
// count, 5xx count and response-time percentiles, summed over periods): no scrapes, no
// counters, no histograms. Each 10s period since start holds what the test says.
type cloudSource struct {
	periods    map[int]period // by period index: start+10s*i ends period i
	collectErr error          // returned by every Collect after the baseline when set
	latencyErr error          // returned by Latency when set
	collects   int
	calls      []string // the readers' arguments, for the test to check
}

type period struct {
	requests, errors, p99, queue float64
}

var _ analysis.Source = (*cloudSource)(nil)

func (c *cloudSource) Collect(context.Context, time.Time) error {
	c.collects++
	if c.collects > 1 {
		return c.collectErr
	}
	return nil
}

// in returns the periods that end in (now-window, now].
func (c *cloudSource) in(now time.Time, window time.Duration) []period {
	var out []period
	for i := int(now.Sub(start) / (10 * time.Second)); i >= 1 && start.Add(time.Duration(i)*10*time.Second).After(now.Add(-window)); i-- {
		out = append(out, c.periods[i])
	}
	return out
}

func (c *cloudSource) Requests(_ context.Context, now time.Time, window time.Duration) (analysis.RequestCount, error) {
	c.calls = append(c.calls, "requests "+window.String())
	var rc analysis.RequestCount
	for _, p := range c.in(now, window) {
		rc.Total += p.requests
		rc.Errors += p.errors
	}
	return rc, nil
}

func (c *cloudSource) Latency(_ context.Context, now time.Time, window time.Duration, q float64) (analysis.LatencyQuantile, error) {
	c.calls = append(c.calls, "latency "+window.String()+" q"+strconv.FormatFloat(q, 'g', -1, 64))
	if c.latencyErr != nil {
		return analysis.LatencyQuantile{}, c.latencyErr
	}
	lq := analysis.LatencyQuantile{Seconds: math.NaN()}
	for _, p := range c.in(now, window) {
		lq.Requests += p.requests
		if p.requests > 0 && (math.IsNaN(lq.Seconds) || p.p99 > lq.Seconds) {
			lq.Seconds = p.p99 // the worst period's: a coarse stand-in for a windowed percentile
		}
	}
	return lq, nil
}

func (c *cloudSource) Gauge(_ context.Context, now time.Time, name string) (analysis.GaugeReading, error) {
	c.calls = append(c.calls, "gauge "+name)
	p, ok := c.periods[int(now.Sub(start)/(10*time.Second))]
	if !ok {
		return analysis.GaugeReading{}, nil
	}
	return analysis.GaugeReading{Values: []float64{p.queue, p.queue / 2}, Instances: 2}, nil
}

// steady is n periods of 100 requests, fast, with a short queue.
func steady(n int) map[int]period {
	ps := map[int]period{}
	for i := 1; i <= n; i++ {
		ps[i] = period{requests: 100, p99: 0.05, queue: 10}
	}
	return ps
}

func runSource(t *testing.T, tmpl analysis.Template, src analysis.Source) (analysis.Summary, []analysis.Measurement) {
	t.Helper()
	var got []analysis.Measurement
	s, err := analysis.Run(context.Background(), tmpl, src, clock.NewFake(start), func(m analysis.Measurement) { got = append(got, m) })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return s, got
}

func TestRunReadsQuantitiesFromASource(t *testing.T) {
	src := &cloudSource{periods: steady(3)}
	s, ms := runSource(t, template(3), src)
	if s.Outcome != analysis.OutcomeSuccessful || s.Reason != analysis.ReasonCountReached || len(ms) != 9 {
		t.Fatalf("summary = %+v, %d measurements", s, len(ms))
	}
	// Each metric asks for its own window, quantile and name, once per round.
	want := "requests 10s,latency 30s q0.99,gauge queue_depth"
	if got := strings.Join(src.calls[:3], ","); got != want {
		t.Errorf("first round's reads = %s, want %s", got, want)
	}
	if src.collects != 4 {
		t.Errorf("Collect called %d times, want 4 (the baseline and 3 rounds)", src.collects)
	}
	// The p99 window spans every period so far: 300 requests by the third round; the
	// queue gauge sums both instances' values (10 + 5).
	if m := ms[7]; m.Metric != "p99" || m.Value != 0.05 || !strings.Contains(m.Reason, "over 300 requests") {
		t.Errorf("third p99 measurement = %+v", m)
	}
	if m := ms[8]; m.Metric != "queue" || m.Value != 15 || !strings.Contains(m.Reason, "2 series of 2 endpoints") {
		t.Errorf("third queue measurement = %+v", m)
	}
}

func TestRunFailsOnASourcesErrorRatio(t *testing.T) {
	ps := steady(5)
	ps[2] = period{requests: 100, errors: 5, p99: 0.05, queue: 10}
	s, ms := runSource(t, template(5), &cloudSource{periods: ps})
	if s.Outcome != analysis.OutcomeFailed || s.Reason != analysis.ReasonFailureLimit {
		t.Fatalf("summary = %+v", s)
	}
	if got := results(ms, "error-ratio"); got != "Passed,Failed" {
		t.Errorf("error-ratio results = %s", got)
	}
	if m := s.Measurements[0]; m.Value != 0.05 || !strings.Contains(m.Reason, "5 of 100 requests failed") {
		t.Errorf("deciding measurement = %+v", m)
	}
}

func TestRunTooLittleTrafficFromASourceIsInconclusive(t *testing.T) {
	ps := steady(3)
	ps[1] = period{requests: 5, p99: 0.05, queue: 10}
	s, ms := runSource(t, template(3), &cloudSource{periods: ps})
	if s.Outcome != analysis.OutcomeInconclusive || results(ms, "error-ratio") != "Inconclusive" {
		t.Fatalf("summary = %+v, results %s", s, results(ms, "error-ratio"))
	}
}

func TestSourceErrors(t *testing.T) {
	t.Run("a reader's error is that metric's Error", func(t *testing.T) {
		src := &cloudSource{periods: steady(3), latencyErr: errors.New("GetMetricData: throttled")}
		s, ms := runSource(t, template(3), src)
		if got := results(ms, "p99"); got != "Error,Error,Error" {
			t.Errorf("p99 results = %s", got)
		}
		if got := results(ms, "error-ratio"); got != "Passed,Passed,Passed" {
			t.Errorf("error-ratio results = %s (the other metrics are read as usual)", got)
		}
		if m := s.Measurements[1]; !strings.Contains(m.Reason, "throttled") || m.Threshold != "<= 250ms" || !math.IsNaN(m.Value) {
			t.Errorf("p99 measurement = %+v", m)
		}
	})
	t.Run("a failed Collect errs every metric of the round", func(t *testing.T) {
		src := &cloudSource{periods: steady(10), collectErr: errors.New("metrics service unreachable")}
		s, ms := runSource(t, template(10), src)
		if s.Outcome != analysis.OutcomeFailed || s.Reason != analysis.ReasonScrapeErrors || !strings.Contains(s.Message, "unreachable") {
			t.Fatalf("summary = %+v", s)
		}
		if got := results(ms, "queue"); got != "Error,Error,Error,Error,Error" {
			t.Errorf("queue results = %s", got)
		}
		if len(src.calls) != 0 {
			t.Errorf("readers called after a failed Collect: %v", src.calls)
		}
	})
	t.Run("no source", func(t *testing.T) {
		if _, err := analysis.Run(context.Background(), template(1), nil, clock.NewFake(start), nil); err == nil || !strings.Contains(err.Error(), "no source") {
			t.Errorf("Run without a source = %v", err)
		}
	})
}
