package project

import (
	"context"
	"fmt"
	"math"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/targets"
)

// targetAnalyzer runs the manifest's analysis templates against a slot: with the source the
// target gives (targets.AnalysisSourcer: aws reads CloudWatch), else by scraping each
// instance's Prometheus endpoint (analysis.Scrape), the instances taken from the target's
// health view, which works on any target whose instances the runner can reach.
type targetAnalyzer struct {
	templates map[string]analysis.Template
	target    rollout.Target
}

var _ rollout.Analyzer = targetAnalyzer{}

func (a targetAnalyzer) Analyze(ctx context.Context, name string, slot fleet.Slot, report func(rollout.AnalysisMeasured)) (rollout.AnalysisOutcome, string, error) {
	t, ok := a.templates[name]
	if !ok {
		return "", "", fmt.Errorf("no analysis template %q in the manifest", name)
	}
	src, err := a.source(ctx, t, slot)
	if err != nil {
		return "", "", err
	}
	defer src.Close()
	sum, err := analysis.Run(ctx, t, src, nil, func(m analysis.Measurement) {
		am := rollout.AnalysisMeasured{Metric: m.Metric, Threshold: m.Threshold, Result: string(m.Result), Reason: m.Reason,
			Passed: m.Passed, Failed: m.Failed, Inconclusive: m.Inconclusive}
		if !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
			v := m.Value
			am.Value = &v
		}
		report(am)
	})
	if err != nil {
		return "", "", err
	}
	switch sum.Outcome {
	case analysis.OutcomeSuccessful:
		return rollout.AnalysisSuccessful, sum.Message, nil
	case analysis.OutcomeInconclusive:
		return rollout.AnalysisInconclusive, sum.Message, nil
	}
	return rollout.AnalysisFailed, sum.Message, nil
}

// source is where the analysis of slot reads its metrics.
func (a targetAnalyzer) source(ctx context.Context, t analysis.Template, slot fleet.Slot) (interface {
	analysis.Source
	Close()
}, error) {
	if ts, ok := a.target.(targets.AnalysisSourcer); ok {
		src, err := ts.AnalysisSource(ctx, t, slot)
		if err != nil {
			return nil, err
		}
		return nopCloser{src}, nil
	}
	endpoints := func(ctx context.Context) ([]analysis.Endpoint, error) {
		hs, err := a.target.Health(ctx)
		if err != nil {
			return nil, err
		}
		var eps []analysis.Endpoint
		for _, h := range hs {
			if h.Slot == slot {
				eps = append(eps, analysis.Endpoint{Instance: h.ID, URL: "http://" + h.Address + "/metrics"})
			}
		}
		return eps, nil
	}
	return analysis.NewScrape(t, endpoints), nil
}

type nopCloser struct{ analysis.Source }

func (nopCloser) Close() {}
