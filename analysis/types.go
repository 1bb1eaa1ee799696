// Package analysis measures metrics of a rollout's new instances and decides whether a
// release is healthy: Successful, Failed, or Inconclusive (too little data; the rollout engine
// pauses for a human instead of rolling back). Its model follows Argo Rollouts' AnalysisRun:
// every Interval each metric is measured once, and a Template's limits turn the measurements
// into an Outcome. Time comes from an injectable Clock.
//
// The numbers come from a Source: a request and error count over a window, a latency
// quantile, a gauge. Scrape reads them from every instance's Prometheus endpoint; a target
// whose instances the runner cannot reach brings a Source of its own (e.g. its load
// balancer's metrics in the cloud's metrics service). The Prometheus maths (increase across
// counter resets, histogram_quantile) is metrics/prommath's, shared with kiln-metrics.
//
// This package does not import manifests; manifests decodes kiln.yaml's analysis: section into
// its Template type.
package analysis

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/kilnhq/kiln/metrics/prommath"
)

// Defaults and limits of templates. manifests applies the defaults when decoding kiln.yaml.
const (
	DefaultInterval          = 10 * time.Second
	DefaultInconclusiveLimit = 1
	DefaultWindow            = time.Minute // errorRatio.window and latency.window
	DefaultAggregate         = AggregateMax

	// ConsecutiveErrorLimit is how many Error measurements (the source could not be read,
	// e.g. an endpoint could not be scraped) a metric tolerates in a row; one more fails the
	// analysis with ReasonScrapeErrors. Errors count neither as passes nor as failures, but
	// they break a run of passes (as Argo Rollouts' default consecutiveErrorLimit of 4).
	ConsecutiveErrorLimit = 4

	// MaxBodyBytes bounds one scrape's response body; a larger body is a scrape error.
	MaxBodyBytes = 8 << 20
	// MaxScrapeTimeout bounds one scrape; a shorter Interval bounds it further.
	MaxScrapeTimeout = 5 * time.Second
	// MaxWindowScrapes bounds the scrapes kept per endpoint, whatever window and interval say.
	MaxWindowScrapes = 1000
)

// Prometheus metric names Scrape reads for the built-in error ratio and latency metrics, as
// exposed by promhttp-instrumented servers (and kiln's demo app); declared in prommath.
const (
	RequestsMetric = prommath.RequestsMetric // counter with a "code" (or "status") label
	LatencyMetric  = prommath.LatencyMetric  // histogram
	CodeLabel      = prommath.CodeLabel      // HTTP status code label of RequestsMetric
)

// Template is a named analysis: which metrics to measure, how often, and when to stop.
type Template struct {
	// Interval is the time between two measurements, > 0.
	Interval time.Duration
	// Count is the number of measurements per metric after which it succeeds (if it has not
	// failed). 0 means no fixed count: ConsecutiveSuccessLimit must then be > 0. Error
	// measurements count toward it.
	Count int
	// FailureLimit is how many Failed measurements a metric tolerates; one more fails the
	// analysis.
	FailureLimit int
	// ConsecutiveSuccessLimit, when > 0, makes a metric succeed after that many Passed
	// measurements in a row.
	ConsecutiveSuccessLimit int
	// InconclusiveLimit is how many Inconclusive measurements in a row end the analysis as
	// Inconclusive, >= 1.
	InconclusiveLimit int
	// Metrics are measured every Interval; at least one, names unique.
	Metrics []Metric
}

// Metric is one measured quantity with its threshold. Exactly one of ErrorRatio, Latency and
// Gauge is set.
type Metric struct {
	Name       string
	ErrorRatio *ErrorRatio
	Latency    *Latency
	Gauge      *Gauge // kiln.yaml's "metric:" kind
}

// ErrorRatio is (5xx responses) / (all responses) over every instance across Window: with
// Scrape, the increase of the counter RequestsMetric.
type ErrorRatio struct {
	Max float64 // the measurement passes when the ratio is <= Max (0..1)
	// Window is how far back the increase is taken, >= the template's Interval: from the
	// newest scrape at or before now-Window (or the oldest kept, e.g. of a new instance).
	Window      time.Duration
	MinRequests int // fewer requests in the window make the measurement Inconclusive
}

// Latency is a quantile of request latency over every instance across Window: with Scrape,
// of the histogram LatencyMetric, from the increase of its buckets, as Prometheus'
// histogram_quantile does.
type Latency struct {
	Quantile    float64       // 0 < Quantile < 1, e.g. 0.99
	Max         time.Duration // the measurement passes when the quantile is <= Max
	Window      time.Duration // as ErrorRatio.Window
	MinRequests int           // fewer observations in the window make it Inconclusive
}

// Gauge compares the current value of any metric, aggregated over every series of every
// instance, with Min and/or Max (at least one is set).
type Gauge struct {
	Name      string    // the Prometheus metric name
	Min       *float64  // the measurement passes when the value is >= Min
	Max       *float64  // and <= Max
	Aggregate Aggregate // how series are combined; "" means DefaultAggregate
}

// Aggregate combines the values of several series into one.
type Aggregate string

// Aggregates of Gauge.
const (
	AggregateSum Aggregate = "sum"
	AggregateMax Aggregate = "max"
	AggregateAvg Aggregate = "avg"
)

// Endpoint is one instance's Prometheus text endpoint, scraped by Scrape.
type Endpoint struct {
	Instance string // instance ID, for messages
	URL      string // e.g. http://127.0.0.1:41234/metrics
}

// EndpointsFunc returns the endpoints to scrape now; Scrape calls it before every round, so
// instances may come and go. An error makes that round's measurements Error.
type EndpointsFunc func(ctx context.Context) ([]Endpoint, error)

// Result is the verdict of one measurement.
type Result string

// Results of a Measurement.
const (
	Passed       Result = "Passed"       // within the threshold
	Failed       Result = "Failed"       // outside the threshold
	Inconclusive Result = "Inconclusive" // too little data to judge (e.g. fewer than minRequests)
	Error        Result = "Error"        // no value: the source could not be read (e.g. an endpoint could not be scraped)
)

// Measurement is one evaluation of one metric.
type Measurement struct {
	At        time.Time
	Metric    string  // Metric.Name
	Value     float64 // the measured value (a ratio, a latency in seconds, or the aggregate); NaN when none
	Threshold string  // the passing condition, e.g. "<= 0.01" or ">= 1 and <= 100"
	Result    Result
	Reason    string // why, for humans: e.g. "12 requests in 30s, fewer than minRequests 20"
	// Running counts of this metric's results so far, this measurement included.
	Passed, Failed, Inconclusive, Errors int
}

// Outcome is how an analysis ended.
type Outcome string

// Outcomes of Run.
const (
	OutcomeSuccessful   Outcome = "Successful"
	OutcomeFailed       Outcome = "Failed"
	OutcomeInconclusive Outcome = "Inconclusive"
)

// Reason says why an analysis reached its Outcome.
type Reason string

// Reasons of a Summary.
const (
	// ReasonCountReached: every metric took Count measurements within FailureLimit.
	ReasonCountReached Reason = "CountReached"
	// ReasonConsecutiveSuccesses: every metric passed ConsecutiveSuccessLimit times in a row
	// (within Count measurements, when Count is also set).
	ReasonConsecutiveSuccesses Reason = "ConsecutiveSuccesses"
	// ReasonFailureLimit: a metric failed more than FailureLimit times.
	ReasonFailureLimit Reason = "FailureLimitExceeded"
	// ReasonScrapeErrors: a metric had more than ConsecutiveErrorLimit Error measurements in a row.
	ReasonScrapeErrors Reason = "ConsecutiveErrorLimitExceeded"
	// ReasonInconclusiveLimit: a metric was Inconclusive InconclusiveLimit times in a row.
	ReasonInconclusiveLimit Reason = "InconclusiveLimitReached"
	// ReasonNoSuccessStreak: with both Count and ConsecutiveSuccessLimit set, a metric took
	// Count measurements within FailureLimit but never passed ConsecutiveSuccessLimit times in
	// a row: not bad enough to roll back, not good enough to go on, so a human decides.
	ReasonNoSuccessStreak Reason = "ConsecutiveSuccessLimitNotReached"
	// ReasonCanceled: the context ended before an outcome (Run also returns its error).
	ReasonCanceled Reason = "Canceled"
)

// Summary is the result of Run.
type Summary struct {
	Outcome Outcome // "" when Run returns an error
	Reason  Reason
	Message string // for humans: which metric decided it and its last measurement
	// Measurements holds the last measurement of each metric, in template order (metrics
	// never measured are left out).
	Measurements []Measurement
}

// metricNameRE matches a classic Prometheus metric name.
var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// CheckMetricName returns an error unless s is a Prometheus metric name.
func CheckMetricName(s string) error {
	if !metricNameRE.MatchString(s) {
		return fmt.Errorf("invalid metric name %q (letters, digits, '_' and ':', not starting with a digit)", s)
	}
	return nil
}
