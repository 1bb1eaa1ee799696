package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/clock"
)

// Run measures every metric of t every t.Interval, reading src, until the analysis reaches an
// Outcome, and returns it. onMeasure (may be nil) gets every measurement as it is taken, on
// Run's goroutine.
//
// The first Collect, at start, is the baseline windows are measured from; the first
// measurement is one Interval later. If a round's Collect fails (with Scrape: an endpoint
// could not be scraped, or there are none), each metric measured in that round is an Error;
// so is a metric whose reading fails. A metric stops being measured once it is complete.
// The analysis is:
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
func Run(ctx context.Context, t Template, src Source, clk clock.Clock, onMeasure func(Measurement)) (Summary, error) {
	if err := t.Validate(); err != nil {
		return Summary{}, fmt.Errorf("analysis: invalid template: %w", err)
	}
	if src == nil {
		return Summary{}, errors.New("analysis: no source")
	}
	clk = clock.Or(clk)
	r := newRun(t, src)
	_ = src.Collect(ctx, clk.Now()) // the baseline: a failure only leaves the first windows shorter
	for {
		select {
		case <-ctx.Done():
			return r.canceled(ctx.Err())
		case <-clk.After(t.Interval):
		}
		now := clk.Now()
		collectErr := src.Collect(ctx, now)
		if ctx.Err() != nil {
			return r.canceled(ctx.Err())
		}
		for i := range r.metrics {
			ms := &r.metrics[i]
			if ms.done {
				continue
			}
			m := r.measure(ctx, ms, now, collectErr)
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
	src     Source
	metrics []metricState
}

type metricState struct {
	m                                         Metric
	passed, failed, inconclusive, errs, count int
	passStreak, inconclusiveStreak, errStreak int
	done                                      bool
	last                                      *Measurement
}

func newRun(t Template, src Source) *run {
	r := &run{t: t, src: src}
	for _, m := range t.Metrics {
		r.metrics = append(r.metrics, metricState{m: m})
	}
	return r
}

func (r *run) measure(ctx context.Context, ms *metricState, now time.Time, collectErr error) Measurement {
	var v verdict
	if collectErr != nil {
		v = failed(ms.m, collectErr)
	} else {
		v = evaluate(ctx, ms.m, r.src, now)
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
