package project

import (
	"context"
	"fmt"
	"math"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// scrapeAnalyzer runs the manifest's analysis templates against a slot's instances, reading
// each instance's Prometheus endpoint (analysis.Scrape, the only Source so far). Which
// instances exist comes from the target's health view, so it works on any target whose
// instances the runner can reach.
type scrapeAnalyzer struct {
	templates map[string]analysis.Template
	target    rollout.Target
}

var _ rollout.Analyzer = scrapeAnalyzer{}

func (a scrapeAnalyzer) Analyze(ctx context.Context, name string, slot fleet.Slot, report func(rollout.AnalysisMeasured)) (rollout.AnalysisOutcome, string, error) {
	t, ok := a.templates[name]
	if !ok {
		return "", "", fmt.Errorf("no analysis template %q in the manifest", name)
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
	src := analysis.NewScrape(t, endpoints)
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
