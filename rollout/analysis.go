package rollout

import (
	"context"

	"github.com/kilnhq/kiln/fleet"
)

// Analyzer measures the new slot's instances. The engine only needs the verdict.
type Analyzer interface {
	// Analyze runs the named analysis against slot and reports each measurement.
	Analyze(ctx context.Context, name string, slot fleet.Slot, report func(AnalysisMeasured)) (AnalysisOutcome, string, error)
}

// AnalysisOutcome is an analysis' verdict.
type AnalysisOutcome string

// Verdicts. Inconclusive pauses the rollout for a human instead of rolling back.
const (
	AnalysisSuccessful   AnalysisOutcome = "successful"
	AnalysisFailed       AnalysisOutcome = "failed"
	AnalysisInconclusive AnalysisOutcome = "inconclusive"
)

// analyze runs a named analysis. Failed rolls back; inconclusive pauses for a human, who
// resumes (accepting it), promotes or aborts. Controls are taken while it runs.
func (r *run) analyze(ctx context.Context, name string) error {
	if r.e.Analyzer == nil {
		return fail(ReasonAnalysisFailed, "analysis %s is configured but kiln has no analyzer", name)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	type verdict struct {
		outcome AnalysisOutcome
		msg     string
		err     error
	}
	measured := make(chan AnalysisMeasured, 16)
	done := make(chan verdict, 1)
	go func() {
		o, m, err := r.e.Analyzer.Analyze(actx, name, r.cp.Slot, func(am AnalysisMeasured) {
			select {
			case measured <- am:
			case <-actx.Done():
			}
		})
		done <- verdict{o, m, err}
	}()
	report := func(am AnalysisMeasured) {
		am.At, am.Analysis = r.now(), name
		r.e.emit(am)
	}
	for {
		select {
		case am := <-measured:
			report(am)
		case c := <-r.e.Controls:
			if r.control(c) {
				return errAborted
			}
		case v := <-done:
			for len(measured) > 0 {
				report(<-measured)
			}
			if v.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fail(ReasonAnalysisFailed, "analysis %s: %v", name, v.err)
			}
			r.e.emit(AnalysisFinished{At: r.now(), Analysis: name, Outcome: v.outcome, Message: v.msg})
			switch v.outcome {
			case AnalysisSuccessful:
				return nil
			case AnalysisInconclusive:
				return r.hold(ctx, 0, true)
			default:
				return fail(ReasonAnalysisFailed, "analysis %s failed: %s", name, v.msg)
			}
		}
	}
}
