package rollout

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
)

// undo takes the rollout back: traffic to the stable slot at once — only if that slot is
// healthy — then, after the abort scale-down delay, the new slot is removed. It runs on a
// context of its own: a cancelled rollout must still end on the stable slot. A killed
// kiln finishes the undo when it resumes.
func (r *run) undo(ctx context.Context, reason Reason, cause error) Finished {
	outcome := RolledBack
	if ctx.Err() != nil && (errors.Is(cause, context.Canceled) || errors.Is(cause, ctx.Err())) {
		outcome, reason = Interrupted, ReasonCancelled
	}
	r.cp.Aborting, r.cp.Reason, r.cp.Message = true, reason, cause.Error()
	saveErr := r.save()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.e.rollbackTimeout())
	defer cancel()
	if err := r.phase(uctx, PhaseRollback, 0, r.rollback); err != nil {
		return Finished{Outcome: RollbackFailed, Reason: reason,
			Message: fmt.Sprintf("%v; undoing it failed too: %v", cause, err)}
	}
	if saveErr == nil {
		r.clearJournal()
	}
	return Finished{Outcome: outcome, Reason: reason, Message: cause.Error()}
}

// rollback is the rollback phase: traffic back onto a healthy stable slot, a wait of
// the abort scale-down delay, then the new slot removed and the stable one at 100%.
func (r *run) rollback(ctx context.Context) error {
	if r.applied.Slots == nil {
		return nil // nothing was ever applied
	}
	if r.applied.Slots[r.cp.Slot].Weight > 0 && r.hasStable() {
		if err := r.stableHealthy(ctx); err != nil {
			return err
		}
		if err := r.setWeight(ctx, 0); err != nil {
			return err
		}
	}
	if d := r.req.AbortScaleDownDelay; d > 0 && !r.applied.Slots[r.cp.Slot].Empty() {
		if err := clock.Sleep(ctx, r.e.clock(), d); err != nil {
			return err
		}
	}
	return r.apply(ctx, undoSpec(r.applied, r.cp.Slot, r.hasStable()))
}

// undoSpec removes the new slot and gives the stable one, if any, all traffic.
func undoSpec(cur fleet.Spec, newSlot fleet.Slot, hasStable bool) fleet.Spec {
	next := cur.Clone()
	next.Slots[newSlot] = fleet.SlotSpec{}
	if hasStable {
		st := next.Slots[newSlot.Other()]
		st.Weight = 100
		next.Slots[newSlot.Other()] = st
	}
	return next
}
