package analysis

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The evaluators are pure functions of the snapshots kept per endpoint. A window is one
// endpoint's snapshots inside the metric's window, oldest first.

// counterState follows one counter series through a window to compute its increase the way
// Prometheus' increase() does (without extrapolation): a drop means the process restarted
// and the counter began again from 0, so the new value is all increase.
type counterState struct {
	last float64
	sum  float64
}

// add feeds the series' value in the window's i-th snapshot.
func (c *counterState) add(first bool, v float64) {
	switch {
	case first:
	case v >= c.last:
		c.sum += v - c.last
	default:
		c.sum += v // reset
	}
	c.last = v
}

// requestIncrease returns the increase of 5xx and of all requests across the windows.
// A series that is absent from a window's first snapshot but present later (the first 500
// of an instance creates the series code="500") counts from 0, which Prometheus would miss.
func requestIncrease(windows [][]*snapshot) (errs, total float64) {
	for _, w := range windows {
		if len(w) < 2 {
			continue
		}
		states := make(map[string]counterState, len(w[len(w)-1].requests))
		for i, s := range w {
			for key, r := range s.requests {
				st := states[key]
				st.add(i == 0, r.value)
				states[key] = st
			}
		}
		for key, st := range states {
			total += st.sum
			if isFiveXX(w, key) {
				errs += st.sum
			}
		}
	}
	return errs, total
}

// isFiveXX reports whether any snapshot of w marks series key as a 5xx series.
func isFiveXX(w []*snapshot, key string) bool {
	for _, s := range w {
		if r, ok := s.requests[key]; ok {
			return r.is5xx
		}
	}
	return false
}

// bucket is one cumulative bucket of a merged histogram.
type bucket struct {
	upper float64
	count float64
}

// bucketIncrease returns the increase of every latency bucket across the windows, summed
// over series and endpoints by upper bound, sorted by upper bound.
func bucketIncrease(windows [][]*snapshot) []bucket {
	type key struct {
		series string
		upper  float64
	}
	sums := map[float64]float64{}
	for _, w := range windows {
		if len(w) < 2 {
			continue
		}
		states := map[key]counterState{}
		for i, s := range w {
			for series, h := range s.hists {
				for j, ub := range h.bounds {
					k := key{series, ub}
					st := states[k]
					st.add(i == 0, h.counts[j])
					states[k] = st
				}
			}
		}
		for k, st := range states {
			sums[k.upper] += st.sum
		}
	}
	out := make([]bucket, 0, len(sums))
	for ub, c := range sums {
		out = append(out, bucket{upper: ub, count: c})
	}
	slices.SortFunc(out, func(a, b bucket) int { return cmpFloat(a.upper, b.upper) })
	return out
}

// histogramQuantile is Prometheus' histogram_quantile for classic histograms
// (promql/quantile.go bucketQuantile): buckets sorted by upper bound with cumulative counts,
// the last bound +Inf. It interpolates linearly inside the bucket that holds the rank,
// taking 0 as the lower bound of the first bucket when its upper bound is positive; a rank in
// the +Inf bucket answers the highest finite bound. NaN when there is no +Inf bucket or no
// observation.
func histogramQuantile(q float64, buckets []bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	if len(buckets) < 2 || !math.IsInf(buckets[len(buckets)-1].upper, 1) {
		return math.NaN()
	}
	buckets = slices.Clone(buckets)
	// Counts of a sum of increases can come out non-monotonic (a reset seen by one bucket
	// and not another); make them monotonic as Prometheus does.
	for i := 1; i < len(buckets); i++ {
		buckets[i].count = max(buckets[i].count, buckets[i-1].count)
	}
	observations := buckets[len(buckets)-1].count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b, _ := slices.BinarySearchFunc(buckets, rank, func(e bucket, r float64) int { return cmpFloat(e.count, r) })
	switch {
	case b == len(buckets)-1:
		return buckets[len(buckets)-2].upper
	case b == 0 && buckets[0].upper <= 0:
		return buckets[0].upper
	}
	start, end, count := 0.0, buckets[b].upper, buckets[b].count
	if b > 0 {
		start = buckets[b-1].upper
		count -= buckets[b-1].count
		rank -= buckets[b-1].count
	}
	return start + (end-start)*(rank/count)
}

// aggregate combines values; NaN values are left out. ok is false when none is left.
func aggregate(a Aggregate, values []float64) (v float64, n int) {
	sum, hi := 0.0, math.Inf(-1)
	for _, x := range values {
		if math.IsNaN(x) {
			continue
		}
		n++
		sum += x
		hi = max(hi, x)
	}
	if n == 0 {
		return math.NaN(), 0
	}
	switch a {
	case AggregateSum:
		return sum, n
	case AggregateAvg:
		return sum / float64(n), n
	default:
		return hi, n
	}
}

// verdict is the evaluation of one metric against the data.
type verdict struct {
	value     float64
	result    Result
	threshold string
	reason    string
}

// windows returns, for every endpoint's snapshots (oldest first), those of the window ending
// at now: every snapshot after now-window, and as the baseline the newest one at or before
// now-window (or the oldest kept). The baseline keeps a missed scrape from emptying a window
// that spans one interval, and with a real clock (scrapes never exactly one interval apart)
// it makes the increase cover the whole window rather than one interval less.
func windows(all [][]*snapshot, now time.Time, window time.Duration) [][]*snapshot {
	out := make([][]*snapshot, 0, len(all))
	for _, snaps := range all {
		out = append(out, snaps[baseline(snaps, now.Add(-window)):])
	}
	return out
}

// baseline returns the index of the newest snapshot at or before from, or 0.
func baseline(snaps []*snapshot, from time.Time) int {
	i, _ := slices.BinarySearchFunc(snaps, from, func(s *snapshot, t time.Time) int {
		if s.at.After(t) {
			return 1
		}
		return -1
	})
	return max(i-1, 0)
}

func evalErrorRatio(e *ErrorRatio, all [][]*snapshot, now time.Time) verdict {
	v := verdict{value: math.NaN(), threshold: "<= " + num(e.Max)}
	errs, total := requestIncrease(windows(all, now, e.Window))
	if total == 0 || total < float64(e.MinRequests) {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("%s requests in the last %s, fewer than minRequests %d", num(total), e.Window, max(e.MinRequests, 1))
		return v
	}
	v.value = errs / total
	v.reason = fmt.Sprintf("%s of %s requests failed (5xx) in the last %s", num(errs), num(total), e.Window)
	v.result = pass(v.value <= e.Max)
	return v
}

func evalLatency(l *Latency, all [][]*snapshot, now time.Time) verdict {
	v := verdict{value: math.NaN(), threshold: "<= " + l.Max.String()}
	bs := bucketIncrease(windows(all, now, l.Window))
	observations := 0.0
	if len(bs) > 0 {
		observations = bs[len(bs)-1].count
	}
	q := histogramQuantile(l.Quantile, bs)
	if observations == 0 || observations < float64(l.MinRequests) || math.IsNaN(q) {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("%s requests observed in the last %s, fewer than minRequests %d", num(observations), l.Window, max(l.MinRequests, 1))
		return v
	}
	v.value = q
	v.reason = fmt.Sprintf("quantile %s is %s over %s requests in the last %s", num(l.Quantile), seconds(q), num(observations), l.Window)
	v.result = pass(q <= l.Max.Seconds())
	return v
}

func evalGauge(g *Gauge, all [][]*snapshot, now time.Time) verdict {
	v := verdict{value: math.NaN(), threshold: gaugeThreshold(g)}
	var values []float64
	endpoints := 0
	for _, snaps := range all {
		if len(snaps) == 0 || !snaps[len(snaps)-1].at.Equal(now) {
			continue
		}
		if vals, ok := snaps[len(snaps)-1].gauges[g.Name]; ok {
			values = append(values, vals...)
			endpoints++
		}
	}
	agg := g.Aggregate
	if agg == "" {
		agg = DefaultAggregate
	}
	x, n := aggregate(agg, values)
	if n == 0 {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("no endpoint exposes a value of %s (a counter, gauge or untyped metric)", g.Name)
		return v
	}
	v.value = x
	v.reason = fmt.Sprintf("%s of %s is %s over %d series of %d endpoints", agg, g.Name, num(x), n, endpoints)
	v.result = pass((g.Min == nil || x >= *g.Min) && (g.Max == nil || x <= *g.Max))
	return v
}

func gaugeThreshold(g *Gauge) string {
	switch {
	case g.Min != nil && g.Max != nil:
		return ">= " + num(*g.Min) + " and <= " + num(*g.Max)
	case g.Min != nil:
		return ">= " + num(*g.Min)
	case g.Max != nil:
		return "<= " + num(*g.Max)
	}
	return ""
}

func pass(ok bool) Result {
	if ok {
		return Passed
	}
	return Failed
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// seconds prints a latency in seconds as a duration, e.g. 180ms.
func seconds(s float64) string {
	if math.IsInf(s, 0) || math.IsNaN(s) || math.Abs(s) > math.MaxInt64/float64(time.Second) {
		return num(s) + "s"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}
