package rollouttest

import (
	"context"
	"errors"
	"sync"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// Analyzer returns scripted verdicts by analysis name, one per call, after reporting
// one measurement.
type Analyzer struct {
	mu       sync.Mutex
	verdicts map[string][]rollout.AnalysisOutcome
	calls    []string
}

var _ rollout.Analyzer = (*Analyzer)(nil)

// Verdicts returns an analyzer that answers the named analyses with these outcomes, in
// order; a call with none left fails.
func Verdicts(v map[string][]rollout.AnalysisOutcome) *Analyzer {
	return &Analyzer{verdicts: v}
}

// Analyze implements rollout.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context, name string, slot fleet.Slot, report func(rollout.AnalysisMeasured)) (rollout.AnalysisOutcome, string, error) {
	a.mu.Lock()
	a.calls = append(a.calls, name)
	vs := a.verdicts[name]
	if len(vs) == 0 {
		a.mu.Unlock()
		return "", "", errors.New("no verdict scripted")
	}
	v := vs[0]
	a.verdicts[name] = vs[1:]
	a.mu.Unlock()
	half := 0.5
	report(rollout.AnalysisMeasured{Metric: "error-ratio", Value: &half, Threshold: "<= 0.01", Result: string(v)})
	return v, "error-ratio " + string(v), nil
}

// Calls returns the names of the analyses run, in order.
func (a *Analyzer) Calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}
