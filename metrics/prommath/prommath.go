// Package prommath is the arithmetic kiln does on Prometheus counters and classic histograms,
// once for both of its readers: the rollout analysis (package analysis, in the kiln CLI) and
// kiln-metrics' /v1/summary (package summary, on every instance).
//
//   - Counter and Increase follow a counter through a window the way PromQL's increase() does,
//     without extrapolation: a drop means the process restarted and the counter began again
//     from 0, so the new value is all increase.
//   - HistogramIncrease sums the increase of every bucket by upper bound, as
//     sum by (le) (increase(x_bucket[w])) does.
//   - Quantile is histogram_quantile() for classic histograms.
//
// It also declares the request metrics kiln reads from an app, and which status codes are
// errors. It imports nothing but the standard library's maths and slices: it is linked into
// kiln-metrics, whose resident memory is budgeted (metrics/deps_test.go).
package prommath

import (
	"cmp"
	"iter"
	"math"
	"slices"
)

// The metrics kiln reads from an app, as promhttp-instrumented servers (and kiln's demo app)
// expose them.
const (
	RequestsMetric = "http_requests_total"           // counter of requests, labelled by status code
	LatencyMetric  = "http_request_duration_seconds" // histogram of request latency in seconds
	CodeLabel      = "code"                          // the label of RequestsMetric holding the HTTP status
)

// StatusLabel holds the HTTP status of RequestsMetric when CodeLabel is absent (some
// instrumentation libraries name it so).
const StatusLabel = "status"

// StatusCode returns the HTTP status of a RequestsMetric series, given its label values by
// name: CodeLabel's, else StatusLabel's.
func StatusCode(label func(name string) string) string {
	if c := label(CodeLabel); c != "" {
		return c
	}
	return label(StatusLabel)
}

// IsServerError reports whether an HTTP status code, as written in a label, is a 5xx: the
// requests that count as errors.
func IsServerError(code string) bool { return len(code) == 3 && code[0] == '5' }

// Increase is the growth of a counter from prev to cur. A decrease is a reset (the process
// restarted), after which the counter counted cur from zero.
func Increase(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// Counter follows one counter series through a window, oldest value first, and sums its
// increase. The zero value counts from 0, so a series that first appears inside the window
// (the first 500 of an instance creates the series code="500") counts whole; Start sets the
// window's baseline instead. Prometheus would miss the first case; kiln does not.
type Counter struct {
	last, sum float64
}

// Start sets the value the increase is counted from: the series' value in the window's
// first sample.
func (c *Counter) Start(v float64) { c.last = v }

// Add feeds the series' next value.
func (c *Counter) Add(v float64) {
	c.sum += Increase(c.last, v)
	c.last = v
}

// Feed is Start for the window's first sample (first is true) and Add for the others.
func (c *Counter) Feed(v float64, first bool) {
	if first {
		c.Start(v)
	} else {
		c.Add(v)
	}
}

// Increase returns the increase fed so far.
func (c *Counter) Increase() float64 { return c.sum }

// Bucket is one cumulative bucket of a classic histogram: how many observations were at most
// Upper.
type Bucket struct {
	Upper float64 // the le label
	Count float64 // cumulative count
}

// SortBuckets sorts buckets by upper bound.
func SortBuckets(bs []Bucket) {
	slices.SortFunc(bs, func(a, b Bucket) int { return cmp.Compare(a.Upper, b.Upper) })
}

// Counters follows many counter series through a window, each by its key, as Counter does.
// The zero value is ready to use.
type Counters[K comparable] struct {
	m map[K]Counter
}

// Add feeds one value of the series key; start says it is the window's first sample (the
// baseline).
func (cs *Counters[K]) Add(key K, start bool, v float64) {
	if cs.m == nil {
		cs.m = map[K]Counter{}
	}
	c := cs.m[key]
	c.Feed(v, start)
	cs.m[key] = c
}

// Reset forgets every series, keeping the memory for the next window's.
func (cs *Counters[K]) Reset() { clear(cs.m) }

// All yields every series fed so far with its increase, in no particular order.
func (cs *Counters[K]) All() iter.Seq2[K, float64] {
	return func(yield func(K, float64) bool) {
		for k, c := range cs.m {
			if !yield(k, c.Increase()) {
				return
			}
		}
	}
}

// HistogramIncrease follows the buckets of any number of histogram series through a window
// and sums the increase of each bucket by upper bound: every bucket is a counter of its own,
// as in Prometheus, so a reset is seen bucket by bucket. K names a series (for example its
// label set). Several windows (one per instance) are summed by calling NextWindow between
// them. The zero value is ready to use.
type HistogramIncrease[K comparable] struct {
	counters Counters[bucketKey[K]]
	closed   map[float64]float64 // increases of the windows already closed, by upper bound
}

type bucketKey[K comparable] struct {
	series K
	upper  float64
}

// Add feeds one sample of a series' buckets; start says the sample is the window's first
// (its counts are the baseline).
func (h *HistogramIncrease[K]) Add(series K, start bool, buckets []Bucket) {
	for _, b := range buckets {
		h.counters.Add(bucketKey[K]{series, b.Upper}, start, b.Count)
	}
}

// NextWindow closes the window being fed: its increases are kept and its series forgotten, so
// that the next samples (another instance's, whose series have the same names) start a
// window of their own.
func (h *HistogramIncrease[K]) NextWindow() {
	if h.closed == nil {
		h.closed = map[float64]float64{}
	}
	for k, inc := range h.counters.All() {
		h.closed[k.upper] += inc
	}
	h.counters.Reset()
}

// Buckets closes the window and returns the increase of every bucket, summed over series and
// windows by upper bound, sorted by upper bound; nil when nothing was fed.
func (h *HistogramIncrease[K]) Buckets() []Bucket {
	h.NextWindow()
	if len(h.closed) == 0 {
		return nil
	}
	out := make([]Bucket, 0, len(h.closed))
	for ub, n := range h.closed {
		out = append(out, Bucket{Upper: ub, Count: n})
	}
	SortBuckets(out)
	return out
}

// Observations returns the count of the +Inf bucket of buckets sorted by upper bound: how
// many observations they hold; 0 without a +Inf bucket.
func Observations(buckets []Bucket) float64 {
	if n := len(buckets); n > 0 && math.IsInf(buckets[n-1].Upper, 1) {
		return buckets[n-1].Count
	}
	return 0
}

// Quantile is Prometheus' histogram_quantile for classic histograms (promql/quantile.go
// bucketQuantile): buckets sorted by upper bound with cumulative counts, the last bound +Inf.
// It interpolates linearly inside the bucket that holds the rank, taking 0 as the lower bound
// of the first bucket when its upper bound is positive; a rank in the +Inf bucket answers the
// highest finite bound. q < 0 gives -Inf and q > 1 +Inf. NaN when q is NaN, when there is no
// +Inf bucket or no finite one, or when there is no observation (and, as in Prometheus, for
// q = 0 when the first bucket is empty).
func Quantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	if len(buckets) < 2 || !math.IsInf(buckets[len(buckets)-1].Upper, 1) {
		return math.NaN()
	}
	buckets = slices.Clone(buckets)
	// Counts of a sum of increases can come out non-monotonic (a reset seen by one bucket
	// and not another); make them monotonic as Prometheus does.
	for i := 1; i < len(buckets); i++ {
		buckets[i].Count = max(buckets[i].Count, buckets[i-1].Count)
	}
	observations := buckets[len(buckets)-1].Count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b, _ := slices.BinarySearchFunc(buckets, rank, func(e Bucket, r float64) int { return cmp.Compare(e.Count, r) })
	switch {
	case b == len(buckets)-1:
		return buckets[len(buckets)-2].Upper
	case b == 0 && buckets[0].Upper <= 0:
		return buckets[0].Upper
	}
	start, end, count := 0.0, buckets[b].Upper, buckets[b].Count
	if b > 0 {
		start = buckets[b-1].Upper
		count -= buckets[b-1].Count
		rank -= buckets[b-1].Count
	}
	return start + (end-start)*(rank/count)
}
