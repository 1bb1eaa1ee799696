package rollout

import (
	"context"
	"fmt"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
)

// undo takes the rollout back: traffic to the stable slot at once — only if that slot is
// healthy — then, after the abort scale-down delay, the new slot is removed. A release
// with nothing stable behind it removes everything it created. It runs on a context of
// its own: a cancelled rollout must still end on the stable slot. A killed kiln finishes
// the undo when it resumes.
func (r *run) undo(ctx context.Context, reason Reason, cause error) Finished {
	outcome, reason := failure(ctx, reason, r.hasStable())
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

// failure is the outcome of a rollout that did not promote: interrupted whenever the
// rollout's context was cancelled — whatever error the cancellation surfaced as (a
// Pulumi CLI killed by the signal says "signal: interrupt") — else rolled back onto the
// stable release, or failed when there was none.
func failure(ctx context.Context, reason Reason, hasStable bool) (Outcome, Reason) {
	switch {
	case ctx.Err() != nil:
		return Interrupted, ReasonCancelled
	case !hasStable:
		return Failed, reason
	}
	return RolledBack, reason
}

// rollback is the rollback phase: traffic back onto a healthy stable slot, a wait of
// the abort scale-down delay, then the new slot removed and the stable one at 100%. With
// no stable release (a first release) there is nothing to go back to: every resource of
// the fleet is removed, also those a failed apply created before it failed.
func (r *run) rollback(ctx context.Context) error {
	if !r.hasStable() {
		return r.destroy(ctx)
	}
	if r.applied.Slots[r.cp.Slot].Weight > 0 {
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
	return r.apply(ctx, undoSpec(r.applied, r.cp.Slot))
}

// destroy removes every resource of the fleet; afterwards nothing was ever applied.
func (r *run) destroy(ctx context.Context) error {
	err := r.e.Target.Destroy(ctx, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.now(), ResourceOp: op})
	})
	if err != nil {
		return err
	}
	r.applied = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	return nil
}

// undoSpec removes the new slot and gives the stable one all traffic.
func undoSpec(cur fleet.Spec, newSlot fleet.Slot) fleet.Spec {
	next := cur.Clone()
	next.Slots[newSlot] = fleet.SlotSpec{}
	st := next.Slots[newSlot.Other()]
	st.Weight = 100
	next.Slots[newSlot.Other()] = st
	return next
}
