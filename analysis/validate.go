package analysis

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Validate reports every rule t breaks; manifests checks the same rules with positions, so
// a Template decoded from kiln.yaml always validates. Run refuses an invalid Template.
func (t Template) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if t.Interval <= 0 {
		bad("interval must be > 0, got %s", t.Interval)
	}
	if t.Count < 0 || t.FailureLimit < 0 || t.ConsecutiveSuccessLimit < 0 {
		bad("count, failureLimit and consecutiveSuccessLimit must be >= 0")
	}
	if t.Count == 0 && t.ConsecutiveSuccessLimit <= 0 {
		bad("set count or consecutiveSuccessLimit (> 0), or the analysis never ends")
	}
	if t.InconclusiveLimit < 1 {
		bad("inconclusiveLimit must be >= 1, got %d", t.InconclusiveLimit)
	}
	if len(t.Metrics) == 0 {
		bad("at least one metric is required")
	}
	seen := map[string]bool{}
	for i, m := range t.Metrics {
		if m.Name == "" {
			bad("metrics[%d]: name is required", i)
		} else if seen[m.Name] {
			bad("metrics[%d]: duplicate name %q", i, m.Name)
		}
		seen[m.Name] = true
		if err := m.validate(t); err != nil {
			bad("metric %q: %w", m.Name, err)
		}
	}
	return errors.Join(errs...)
}

func (m Metric) validate(t Template) error {
	kinds := 0
	for _, set := range []bool{m.ErrorRatio != nil, m.Latency != nil, m.Gauge != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return errors.New("set exactly one of errorRatio, latency, metric")
	}
	switch {
	case m.ErrorRatio != nil:
		e := m.ErrorRatio
		if !(e.Max >= 0 && e.Max <= 1) {
			return fmt.Errorf("errorRatio.max must be between 0 and 1, got %v", e.Max)
		}
		return checkWindow(e.Window, e.MinRequests, t)
	case m.Latency != nil:
		l := m.Latency
		if !(l.Quantile > 0 && l.Quantile < 1) {
			return fmt.Errorf("latency.quantile must be between 0 and 1 (exclusive), got %v", l.Quantile)
		}
		if l.Max <= 0 {
			return fmt.Errorf("latency.max must be > 0, got %s", l.Max)
		}
		return checkWindow(l.Window, l.MinRequests, t)
	default:
		g := m.Gauge
		if !metricNameRE.MatchString(g.Name) {
			return fmt.Errorf("metric.name %q is not a Prometheus metric name", g.Name)
		}
		if g.Min == nil && g.Max == nil {
			return errors.New("metric: set min, max or both")
		}
		for _, v := range []*float64{g.Min, g.Max} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				return errors.New("metric: min and max must be finite numbers")
			}
		}
		if g.Min != nil && g.Max != nil && *g.Min > *g.Max {
			return fmt.Errorf("metric: min %v is greater than max %v", *g.Min, *g.Max)
		}
		switch g.Aggregate {
		case "", AggregateSum, AggregateMax, AggregateAvg:
		default:
			return fmt.Errorf("metric.aggregate %q is not sum, max or avg", g.Aggregate)
		}
	}
	return nil
}

func checkWindow(w time.Duration, minRequests int, t Template) error {
	if w <= 0 || w < t.Interval {
		return fmt.Errorf("window must be >= interval %s (a window needs two scrapes)", t.Interval)
	}
	if minRequests < 0 {
		return fmt.Errorf("minRequests must be >= 0, got %d", minRequests)
	}
	return nil
}
