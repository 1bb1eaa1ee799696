package analysis

import (
	"context"
	"time"
)

// Source is where Run reads the quantities it measures. Scrape reads every instance's
// Prometheus endpoint; a target whose instances the runner cannot reach (a CI runner outside
// a cloud network) gives Run another Source, e.g. one reading the load balancer's metrics from
// the cloud's metrics service. Run asks for quantities, not samples: a request count and an
// error count over a window, a latency quantile over a window, a gauge's current values.
// Counter resets and histogram buckets are the Source's business.
//
// Run calls Collect once at start (the baseline) and once every Interval; after each Collect
// but the first, it asks for what each metric still being measured reads, with the same now,
// on Run's goroutine. A Source that queries a remote service may do it in Collect (one
// batch per round) or in the readers.
type Source interface {
	// Collect takes the round's data at now. An error makes every metric measured in that
	// round an Error measurement, with the error as its reason.
	Collect(ctx context.Context, now time.Time) error
	// Requests returns the requests served over every instance in the window (now-window,
	// now], and how many of them were answered with a 5xx.
	Requests(ctx context.Context, now time.Time, window time.Duration) (RequestCount, error)
	// Latency returns the q-quantile (0 < q < 1) of request latency over every instance in
	// the window ending at now, and the number of requests it was computed over.
	Latency(ctx context.Context, now time.Time, window time.Duration, q float64) (LatencyQuantile, error)
	// Gauge returns the values of the metric called name at now: one per series of every
	// instance that has it.
	Gauge(ctx context.Context, now time.Time, name string) (GaugeReading, error)
}

// RequestCount is how many requests were served in a window, and how many failed.
type RequestCount struct {
	Total  float64 // every request
	Errors float64 // those answered 5xx
}

// LatencyQuantile is a latency quantile over a window.
type LatencyQuantile struct {
	Seconds  float64 // the quantile; NaN when it cannot be computed (no requests)
	Requests float64 // the requests (observations) it was computed over
}

// GaugeReading is the current values of a metric.
type GaugeReading struct {
	Values    []float64 // one per series; NaN values are left out of the aggregate
	Instances int       // how many instances the values came from
}
