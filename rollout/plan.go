package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Step is one traffic step: the new slot's share of traffic, then a pause, then an
// optional analysis.
type Step struct {
	Weight int
	// Pause holds the step for this long; Indefinite holds it until promoted or resumed.
	Pause      time.Duration
	Indefinite bool
	// Analysis names an analysis to run at this step ("" for none).
	Analysis string
}

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

// Checkpoint is a rollout's progress as persisted after every stage, so that a killed
// kiln resumes where it was.
type Checkpoint struct {
	ID      string         `json:"id"`
	Stage   int            `json:"stage"`
	Phase   Phase          `json:"phase"`
	Step    int            `json:"step"`
	Slot    fleet.Slot     `json:"slot"`
	Stable  *fleet.Release `json:"stable,omitempty"`
	Desired fleet.Release  `json:"desired"`
	// Started is when the rollout began; StageStarted when the current stage did
	// (deadlines survive a restart).
	Started      time.Time `json:"started"`
	StageStarted time.Time `json:"stageStarted"`
	// Aborting is set once the rollout is being undone: a resume finishes the undo.
	Aborting bool   `json:"aborting,omitempty"`
	Reason   Reason `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Journal persists checkpoints. A nil Journal keeps nothing (a killed rollout cannot be
// resumed, only undone by the next one).
type Journal interface {
	Save(Checkpoint) error
	Load() (Checkpoint, bool, error)
	Clear() error
}

// stage is one idempotent unit of a rollout: running it again after a crash converges to
// the same place.
type stage struct {
	phase Phase
	step  int // 1-based traffic step, 0 otherwise
	run   func(ctx context.Context) error
	// spec is the change the stage makes to the applied spec (nil: it only waits or
	// measures); Preview folds these to show each phase.
	spec func(fleet.Spec) fleet.Spec
	// waits says what the stage waits for, for Preview.
	waits string
}

// plan lists the stages of a rollout in order. Bake is not a stage: it runs before the
// first checkpoint, because the checkpoint names the baked release.
func (r *run) plan() []stage {
	req := r.req
	slot, live, stable := r.cp.Slot, r.live, r.hasStable()
	var st []stage
	st = append(st, stage{phase: PhaseDeploy, run: r.deploy,
		spec: func(cur fleet.Spec) fleet.Spec { return deploySpec(cur, req, slot, r.cp.Desired, stable) }})
	st = append(st, stage{phase: PhaseHealth, run: r.waitHealthy,
		waits: fmt.Sprintf("until all %d new instances pass %s (progress deadline %s)", req.Size, req.Template.Health.Path, req.ProgressDeadline)})
	if req.PrePromotionAnalysis != "" {
		st = append(st, stage{phase: PhasePreAnalysis, waits: "analysis " + req.PrePromotionAnalysis, run: func(ctx context.Context) error {
			return r.analyze(ctx, req.PrePromotionAnalysis)
		}})
	}
	for i, s := range r.steps() {
		s, n := s, i+1
		var waits []string
		switch {
		case s.Indefinite:
			waits = append(waits, "pause until promoted or resumed")
		case s.Pause > 0:
			waits = append(waits, "pause "+s.Pause.String())
		}
		if s.Analysis != "" {
			waits = append(waits, "analysis "+s.Analysis)
		}
		st = append(st, stage{phase: PhaseStep, step: n, waits: strings.Join(waits, ", then "),
			run:  func(ctx context.Context) error { return r.trafficStep(ctx, n, s) },
			spec: func(cur fleet.Spec) fleet.Spec { return weightSpec(cur, slot, s.Weight, stable) }})
	}
	if req.PostPromotionAnalysis != "" {
		st = append(st, stage{phase: PhasePostAnalysis, waits: "analysis " + req.PostPromotionAnalysis, run: func(ctx context.Context) error {
			return r.analyze(ctx, req.PostPromotionAnalysis)
		}})
	}
	if stable {
		if req.ScaleDownDelay > 0 {
			st = append(st, stage{phase: PhaseScaleDownDelay, waits: req.ScaleDownDelay.String() + " with the old slot kept for an instant rollback",
				run: func(ctx context.Context) error { return r.hold(ctx, req.ScaleDownDelay, false) }})
		}
		st = append(st, stage{phase: PhaseRetire, run: r.retire,
			spec: func(cur fleet.Spec) fleet.Spec { return retireSpec(cur, live) }})
	}
	return st
}

// PlannedPhase is one phase of a rollout as Preview sees it: the spec it converges to (the
// same as before when it changes nothing) and what it waits for.
type PlannedPhase struct {
	Phase   Phase      `json:"phase"`
	Step    int        `json:"step,omitempty"`
	Changes bool       `json:"changes"`
	Spec    fleet.Spec `json:"spec"`
	Waits   string     `json:"waits,omitempty"`
}

// Plan returns the phases a rollout of rel would run from the applied spec cur (exists is
// false when nothing was ever applied), without running any. It walks the engine's own
// stages, so it cannot disagree with what a rollout does.
func Plan(cur fleet.Spec, exists bool, req Request, rel fleet.Release) []PlannedPhase {
	r := &run{req: req, spec: cur.Clone()}
	if !exists || r.spec.Slots == nil {
		r.spec = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	}
	slot := fleet.Blue
	if live, ok := r.spec.Live(); ok {
		slot = live.Other()
		from := *r.spec.Slots[live].Release
		r.cp.Stable = &from
	}
	r.cp.Slot, r.cp.Desired, r.live = slot, rel, slot.Other()
	spec := r.spec
	var out []PlannedPhase
	for _, st := range r.plan() {
		p := PlannedPhase{Phase: st.phase, Step: st.step, Spec: spec, Waits: st.waits}
		if st.spec != nil {
			spec = st.spec(spec)
			p.Spec, p.Changes = spec, true
		}
		out = append(out, p)
	}
	return out
}

// steps returns the traffic steps, defaulting to one switch to 100%. A first release
// has no stable slot to carry the rest of the traffic, so it goes to 100% in one step.
func (r *run) steps() []Step {
	if len(r.req.Steps) == 0 || !r.hasStable() {
		return []Step{{Weight: 100}}
	}
	return r.req.Steps
}

// ValidateSteps checks what the engine relies on: weights strictly increasing, last 100.
func ValidateSteps(steps []Step) error {
	prev := 0
	for i, s := range steps {
		if s.Weight <= prev || s.Weight > 100 {
			return fmt.Errorf("step %d: weight %d must be more than %d and at most 100", i+1, s.Weight, prev)
		}
		prev = s.Weight
	}
	if len(steps) > 0 && prev != 100 {
		return fmt.Errorf("the last step must send 100%% of traffic, not %d%%", prev)
	}
	return nil
}
