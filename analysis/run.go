package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/clock"
)

// Run measures every metric of t every t.Interval until the analysis reaches an Outcome, and
// returns it. endpoints is asked for the endpoints before every scrape; onMeasure (may be nil)
// gets every measurement as it is taken, on Run's goroutine.
//
// The first scrape, at start, is the baseline windows are measured from; the first
// measurement is one Interval later. In each round every endpoint is scraped; if one cannot
// be scraped (or endpoints fails, or returns none), each metric measured in that round is an
// Error. A metric stops being measured once it is complete. The analysis is:
//   - Failed as soon as a metric has more than FailureLimit Failed measurements, or more than
//     ConsecutiveErrorLimit Error measurements in a row;
//   - otherwise Inconclusive as soon as a metric has InconclusiveLimit Inconclusive
//     measurements in a row (or reached Count without the ConsecutiveSuccessLimit run both
//     were set to require);
//   - Successful when every metric is complete: ConsecutiveSuccessLimit Passed in a row (when
//     > 0), or Count measurements (when ConsecutiveSuccessLimit is 0).
//
// Run returns an error only for an invalid template or when ctx ends first; the Summary then
// has an empty Outcome, ReasonCanceled and the measurements taken so far.
func Run(ctx context.Context, t Template, endpoints EndpointsFunc, clk clock.Clock, onMeasure func(Measurement)) (Summary, error) {
	if err := t.Validate(); err != nil {
		return Summary{}, fmt.Errorf("analysis: invalid template: %w", err)
	}
	if endpoints == nil {
		return Summary{}, errors.New("analysis: no endpoints function")
	}
	clk = clock.Or(clk)
	r := newRun(t)
	defer r.scraper.close()
	r.round(ctx, endpoints, clk.Now()) // the baseline
	for {
		select {
		case <-ctx.Done():
			return r.canceled(ctx.Err())
		case <-clk.After(t.Interval):
		}
		now := clk.Now()
		scrapeErr := r.round(ctx, endpoints, now)
		if ctx.Err() != nil {
			return r.canceled(ctx.Err())
		}
		for i := range r.metrics {
			ms := &r.metrics[i]
			if ms.done {
				continue
			}
			m := r.measure(ms, now, scrapeErr)
			if onMeasure != nil {
				onMeasure(m)
			}
		}
		if s, ok := r.decide(); ok {
			return s, nil
		}
	}
}

// run is the state of one Run.
type run struct {
	t       Template
	scraper *scraper
	keep    time.Duration            // how far back snapshots are kept
	snaps   map[Endpoint][]*snapshot // per endpoint, oldest first
	order   []Endpoint               // the endpoints of the last round, in the order given
	metrics []metricState
}

type metricState struct {
	m                                         Metric
	passed, failed, inconclusive, errs, count int
	passStreak, inconclusiveStreak, errStreak int
	done                                      bool
	last                                      *Measurement
}

func newRun(t Template) *run {
	r := &run{t: t, scraper: newScraper(t), keep: t.Interval, snaps: map[Endpoint][]*snapshot{}}
	for _, m := range t.Metrics {
		switch {
		case m.ErrorRatio != nil:
			r.keep = max(r.keep, m.ErrorRatio.Window)
		case m.Latency != nil:
			r.keep = max(r.keep, m.Latency.Window)
		}
		r.metrics = append(r.metrics, metricState{m: m})
	}
	return r
}

// round scrapes every endpoint once, keeps the snapshots, and returns an error naming the
// endpoints that could not be scraped (nil when all were).
func (r *run) round(ctx context.Context, endpoints EndpointsFunc, now time.Time) error {
	eps, err := endpoints(ctx)
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	if len(eps) == 0 {
		return errors.New("no endpoints to scrape")
	}
	results := r.scraper.scrapeAll(ctx, eps, now)
	var errs []error
	current := map[Endpoint]bool{}
	for i, ep := range eps {
		current[ep] = true
		if results[i].err != nil {
			errs = append(errs, results[i].err)
			continue
		}
		r.snaps[ep] = r.trim(append(r.snaps[ep], results[i].snap), now)
	}
	// Instances that left take their history with them.
	for ep := range r.snaps {
		if !current[ep] {
			delete(r.snaps, ep)
		}
	}
	r.order = eps
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d endpoints failed: %w", len(errs), len(eps), errors.Join(errs...))
	}
	return nil
}

// trim drops the snapshots no window will read (those before the baseline of the longest
// window) and bounds their number.
func (r *run) trim(snaps []*snapshot, now time.Time) []*snapshot {
	i := max(baseline(snaps, now.Add(-r.keep)), len(snaps)-MaxWindowScrapes)
	if i > 0 {
		snaps = slices.Delete(snaps, 0, i)
	}
	return snaps
}

// all returns every current endpoint's snapshots.
func (r *run) all() [][]*snapshot {
	out := make([][]*snapshot, 0, len(r.order))
	for _, ep := range r.order {
		if s, ok := r.snaps[ep]; ok {
			out = append(out, s)
		}
	}
	return out
}

// evaluate measures one metric against the kept snapshots.
func evaluate(m Metric, all [][]*snapshot, now time.Time) verdict {
	switch {
	case m.ErrorRatio != nil:
		return evalErrorRatio(m.ErrorRatio, all, now)
	case m.Latency != nil:
		return evalLatency(m.Latency, all, now)
	default:
		return evalGauge(m.Gauge, all, now)
	}
}

func (r *run) measure(ms *metricState, now time.Time, scrapeErr error) Measurement {
	var v verdict
	if scrapeErr != nil {
		v = verdict{value: math.NaN(), result: Error, threshold: evaluate(ms.m, nil, now).threshold, reason: scrapeErr.Error()}
	} else {
		v = evaluate(ms.m, r.all(), now)
	}
	ms.count++
	switch v.result {
	case Passed:
		ms.passed++
		ms.passStreak++
		ms.inconclusiveStreak, ms.errStreak = 0, 0
	case Failed:
		ms.failed++
		ms.passStreak, ms.inconclusiveStreak, ms.errStreak = 0, 0, 0
	case Inconclusive:
		ms.inconclusive++
		ms.inconclusiveStreak++
		ms.passStreak, ms.errStreak = 0, 0
	case Error:
		ms.errs++
		ms.errStreak++
		ms.passStreak = 0
	}
	m := Measurement{
		At: now, Metric: ms.m.Name, Value: v.value, Threshold: v.threshold, Result: v.result, Reason: v.reason,
		Passed: ms.passed, Failed: ms.failed, Inconclusive: ms.inconclusive, Errors: ms.errs,
	}
	ms.last = &m
	return m
}

// decide turns the metrics' counts into an Outcome once one is reached. It is a pure function
// of the counts: Failed beats Inconclusive beats Successful.
func (r *run) decide() (Summary, bool) {
	t := r.t
	for _, ms := range r.metrics {
		switch {
		case ms.failed > t.FailureLimit:
			return r.summary(OutcomeFailed, ReasonFailureLimit, ms,
				fmt.Sprintf("%d failed measurements, more than failureLimit %d", ms.failed, t.FailureLimit)), true
		case ms.errStreak > ConsecutiveErrorLimit:
			return r.summary(OutcomeFailed, ReasonScrapeErrors, ms,
				fmt.Sprintf("%d errors in a row, more than %d", ms.errStreak, ConsecutiveErrorLimit)), true
		}
	}
	for i := range r.metrics {
		ms := &r.metrics[i]
		switch {
		case ms.inconclusiveStreak >= t.InconclusiveLimit:
			return r.summary(OutcomeInconclusive, ReasonInconclusiveLimit, *ms,
				fmt.Sprintf("%d inconclusive measurements in a row (inconclusiveLimit %d)", ms.inconclusiveStreak, t.InconclusiveLimit)), true
		case t.ConsecutiveSuccessLimit > 0 && ms.passStreak >= t.ConsecutiveSuccessLimit:
			ms.done = true
		case t.Count > 0 && ms.count >= t.Count && t.ConsecutiveSuccessLimit > 0:
			return r.summary(OutcomeInconclusive, ReasonNoSuccessStreak, *ms,
				fmt.Sprintf("%d measurements without %d passes in a row", ms.count, t.ConsecutiveSuccessLimit)), true
		case t.Count > 0 && ms.count >= t.Count:
			ms.done = true
		}
	}
	for _, ms := range r.metrics {
		if !ms.done {
			return Summary{}, false
		}
	}
	reason := ReasonCountReached
	if t.ConsecutiveSuccessLimit > 0 {
		reason = ReasonConsecutiveSuccesses
	}
	return r.summary(OutcomeSuccessful, reason, metricState{}, ""), true
}

func (r *run) summary(o Outcome, reason Reason, decider metricState, detail string) Summary {
	s := Summary{Outcome: o, Reason: reason}
	for _, ms := range r.metrics {
		if ms.last != nil {
			s.Measurements = append(s.Measurements, *ms.last)
		}
	}
	switch {
	case detail == "":
		var parts []string
		for _, m := range s.Measurements {
			parts = append(parts, describe(m))
		}
		s.Message = "every metric passed: " + strings.Join(parts, "; ")
	case decider.last != nil:
		s.Message = fmt.Sprintf("metric %s: %s; last: %s", decider.m.Name, detail, describe(*decider.last))
	default:
		s.Message = fmt.Sprintf("metric %s: %s", decider.m.Name, detail)
	}
	return s
}

func (r *run) canceled(err error) (Summary, error) {
	s := r.summary("", ReasonCanceled, metricState{}, "canceled")
	s.Message = "analysis canceled before an outcome"
	return s, fmt.Errorf("analysis: %w", err)
}

// describe prints a measurement for humans: "error-ratio 0.02 (want <= 0.01): Failed, 4 of 200 ...".
func describe(m Measurement) string {
	value := "no value"
	if !math.IsNaN(m.Value) {
		value = num(m.Value)
	}
	return fmt.Sprintf("%s %s (want %s): %s, %s", m.Metric, value, m.Threshold, m.Result, m.Reason)
}
