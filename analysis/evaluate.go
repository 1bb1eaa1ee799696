package analysis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The evaluators turn what a Source reads into a verdict against a metric's threshold. They
// know nothing of where the numbers come from.

// verdict is the evaluation of one metric against the data.
type verdict struct {
	value     float64
	result    Result
	threshold string
	reason    string
}

// evaluate measures one metric, reading src.
func evaluate(ctx context.Context, m Metric, src Source, now time.Time) verdict {
	switch {
	case m.ErrorRatio != nil:
		return evalErrorRatio(ctx, m.ErrorRatio, src, now)
	case m.Latency != nil:
		return evalLatency(ctx, m.Latency, src, now)
	default:
		return evalGauge(ctx, m.Gauge, src, now)
	}
}

// threshold is a metric's passing condition, for humans.
func threshold(m Metric) string {
	switch {
	case m.ErrorRatio != nil:
		return "<= " + num(m.ErrorRatio.Max)
	case m.Latency != nil:
		return "<= " + m.Latency.Max.String()
	default:
		return gaugeThreshold(m.Gauge)
	}
}

// failed is the verdict of a metric whose data could not be read.
func failed(m Metric, err error) verdict {
	return verdict{value: math.NaN(), result: Error, threshold: threshold(m), reason: err.Error()}
}

func evalErrorRatio(ctx context.Context, e *ErrorRatio, src Source, now time.Time) verdict {
	rc, err := src.Requests(ctx, now, e.Window)
	if err != nil {
		return failed(Metric{ErrorRatio: e}, err)
	}
	v := verdict{value: math.NaN(), threshold: threshold(Metric{ErrorRatio: e})}
	if rc.Total == 0 || rc.Total < float64(e.MinRequests) {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("%s requests in the last %s, fewer than minRequests %d", num(rc.Total), e.Window, max(e.MinRequests, 1))
		return v
	}
	v.value = rc.Errors / rc.Total
	v.reason = fmt.Sprintf("%s of %s requests failed (5xx) in the last %s", num(rc.Errors), num(rc.Total), e.Window)
	v.result = pass(v.value <= e.Max)
	return v
}

func evalLatency(ctx context.Context, l *Latency, src Source, now time.Time) verdict {
	lq, err := src.Latency(ctx, now, l.Window, l.Quantile)
	if err != nil {
		return failed(Metric{Latency: l}, err)
	}
	v := verdict{value: math.NaN(), threshold: threshold(Metric{Latency: l})}
	if lq.Requests == 0 || lq.Requests < float64(l.MinRequests) || math.IsNaN(lq.Seconds) {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("%s requests observed in the last %s, fewer than minRequests %d", num(lq.Requests), l.Window, max(l.MinRequests, 1))
		return v
	}
	v.value = lq.Seconds
	v.reason = fmt.Sprintf("quantile %s is %s over %s requests in the last %s", num(l.Quantile), seconds(lq.Seconds), num(lq.Requests), l.Window)
	v.result = pass(lq.Seconds <= l.Max.Seconds())
	return v
}

func evalGauge(ctx context.Context, g *Gauge, src Source, now time.Time) verdict {
	gr, err := src.Gauge(ctx, now, g.Name)
	if err != nil {
		return failed(Metric{Gauge: g}, err)
	}
	v := verdict{value: math.NaN(), threshold: gaugeThreshold(g)}
	agg := g.Aggregate
	if agg == "" {
		agg = DefaultAggregate
	}
	x, n := aggregate(agg, gr.Values)
	if n == 0 {
		v.result = Inconclusive
		v.reason = fmt.Sprintf("no endpoint exposes a value of %s (a counter, gauge or untyped metric)", g.Name)
		return v
	}
	v.value = x
	v.reason = fmt.Sprintf("%s of %s is %s over %d series of %d endpoints", agg, g.Name, num(x), n, gr.Instances)
	v.result = pass((g.Min == nil || x >= *g.Min) && (g.Max == nil || x <= *g.Max))
	return v
}

// aggregate combines values; NaN values are left out. n is how many were combined.
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
