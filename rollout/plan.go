package rollout

import (
	"context"
	"fmt"
	"strings"

	"github.com/kilnhq/kiln/fleet"
)

// stage is one idempotent unit of a rollout: running it again after a crash converges to
// the same place.
type stage struct {
	phase Phase
	step  int // 1-based traffic step, 0 otherwise
	run   func(ctx context.Context) error
	// spec is the change the stage makes to the applied spec (nil: it only waits or
	// measures); Plan folds these to show each phase.
	spec func(fleet.Spec) fleet.Spec
	// waits says what the stage waits for, for Plan.
	waits string
}

// plan lists the stages of a rollout in order. Bake is not a stage: it runs before the
// first checkpoint, because the checkpoint names the baked release.
func (r *run) plan() []stage {
	req := r.req
	slot, stableSlot, stable := r.cp.Slot, r.stableSlot, r.hasStable()
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
			spec: func(cur fleet.Spec) fleet.Spec { return retireSpec(cur, stableSlot) }})
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
	r := &run{req: req, applied: cur.Clone()}
	if !exists || r.applied.Slots == nil {
		r.applied = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	}
	slot, stable := origin(r.applied, nil)
	r.cp.Slot, r.cp.Stable, r.cp.Desired, r.stableSlot = slot, stable, rel, slot.Other()
	spec := r.applied
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
