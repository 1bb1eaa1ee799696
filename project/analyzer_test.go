package project

import (
	"context"
	"testing"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

// sourcedTarget is a target that gives analysis a source of its own, as the aws target
// gives CloudWatch: its instances are never scraped.
type sourcedTarget struct {
	*rollouttest.Target
	src   *countSource
	slots []fleet.Slot
}

func (t *sourcedTarget) AnalysisSource(_ context.Context, _ analysis.Template, slot fleet.Slot) (analysis.Source, error) {
	t.slots = append(t.slots, slot)
	return t.src, nil
}

// countSource answers a fixed request count: errors of total.
type countSource struct{ total, errors float64 }

func (s *countSource) Collect(context.Context, time.Time) error { return nil }
func (s *countSource) Requests(context.Context, time.Time, time.Duration) (analysis.RequestCount, error) {
	return analysis.RequestCount{Total: s.total, Errors: s.errors}, nil
}
func (s *countSource) Latency(context.Context, time.Time, time.Duration, float64) (analysis.LatencyQuantile, error) {
	return analysis.LatencyQuantile{}, nil
}
func (s *countSource) Gauge(context.Context, time.Time, string) (analysis.GaugeReading, error) {
	return analysis.GaugeReading{}, nil
}

func TestAnalysisReadsTheSourceATargetGivesInsteadOfScraping(t *testing.T) {
	tmpl := analysis.Template{Interval: time.Millisecond, Count: 2, InconclusiveLimit: 1, Metrics: []analysis.Metric{
		{Name: "errors", ErrorRatio: &analysis.ErrorRatio{Max: 0.05, Window: time.Millisecond, MinRequests: 10}}}}
	for _, tc := range []struct {
		src  countSource
		want rollout.AnalysisOutcome
	}{
		{countSource{total: 1000, errors: 1}, rollout.AnalysisSuccessful},
		{countSource{total: 1000, errors: 400}, rollout.AnalysisFailed},
	} {
		tgt := &sourcedTarget{Target: rollouttest.NewTarget(), src: &tc.src}
		a := targetAnalyzer{templates: map[string]analysis.Template{"errors": tmpl}, target: tgt}
		got, msg, err := a.Analyze(context.Background(), "errors", fleet.Green, func(rollout.AnalysisMeasured) {})
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%v errors of %v: %s (%s), want %s", tc.src.errors, tc.src.total, got, msg, tc.want)
		}
		if tgt.HealthReads() != 0 || len(tgt.slots) != 1 || tgt.slots[0] != fleet.Green {
			t.Errorf("health read %d times, source asked for %v: want the target's source for green, no scrape", tgt.HealthReads(), tgt.slots)
		}
	}
}
