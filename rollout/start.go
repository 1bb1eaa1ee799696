package rollout

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/fleet"
)

// startKind is how a run begins.
type startKind int

const (
	// startFresh: no rollout was left behind; the release goes to the idle slot.
	startFresh startKind = iota
	// startAlreadyLive: the release asked for already serves; nothing changes.
	startAlreadyLive
	// startResume: a killed kiln left a rollout of this release; it goes on at the
	// checkpoint's stage.
	startResume
	// startFinishUndo: a killed kiln was undoing a rollout of this release; the undo
	// is finished.
	startFinishUndo
	// startSupersede: a killed kiln left a rollout of another release; it is undone,
	// then the run decides again as if no rollout was left.
	startSupersede
)

var startKinds = [...]string{"fresh", "already-live", "resume", "finish-undo", "supersede"}

func (k startKind) String() string { return startKinds[k] }

// start is how a run begins: its kind, the slot the new release goes to, and the release
// that served before the rollout (nil for a first release).
type start struct {
	kind   startKind
	slot   fleet.Slot
	stable *fleet.Release
}

// origin says where a rollout goes before anything is baked: a left-over rollout's slot
// and stable release, or else the fleet's idle slot and live release.
func origin(applied fleet.Spec, left *Checkpoint) (slot fleet.Slot, stable *fleet.Release) {
	if left != nil {
		return left.Slot, left.Stable
	}
	live, ok := applied.Live()
	if !ok {
		return fleet.Blue, nil
	}
	rel := *applied.Slots[live].Release
	return live.Other(), &rel
}

// decideStart decides how a run of rel starts, from the spec applied to the target and
// the checkpoint a killed kiln left behind (nil for none). It only decides: the engine
// acts on the answer.
func decideStart(applied fleet.Spec, left *Checkpoint, rel fleet.Release) start {
	slot, stable := origin(applied, left)
	st := start{slot: slot, stable: stable}
	switch {
	case left != nil && sameRelease(left.Desired, rel) && left.Aborting:
		st.kind = startFinishUndo
	case left != nil && sameRelease(left.Desired, rel):
		st.kind = startResume
	case left != nil:
		st.kind = startSupersede
	case stable != nil && sameRelease(*stable, rel):
		st.kind = startAlreadyLive
	default:
		st.kind = startFresh
	}
	return st
}

func sameRelease(a, b fleet.Release) bool {
	return a.Image.Digest == b.Image.Digest && a.Version == b.Version && a.Secrets == b.Secrets
}

// do runs one rollout: read the fleet and the journal, announce the rollout, admit and
// bake the release, then start it the way decideStart says.
func (r *run) do(ctx context.Context, baker Baker) Finished {
	if err := ValidateSteps(r.req.Steps); err != nil {
		return Finished{Outcome: RolledBack, Reason: ReasonInvalid, Message: err.Error()}
	}
	cur, exists, err := r.e.Target.Current(ctx)
	if err != nil {
		// Nothing changed yet: whatever was live stays live.
		outcome, reason := failure(ctx, ReasonTargetFailed, true)
		return Finished{Outcome: outcome, Reason: reason, Message: fmt.Sprintf("read the current fleet: %v", err)}
	}
	r.applied = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	if exists {
		r.applied = cur.Clone()
	}
	left, err := r.loadJournal()
	if err != nil {
		outcome, reason := failure(ctx, ReasonJournalFailed, true)
		return Finished{Outcome: outcome, Reason: reason, Message: err.Error()}
	}
	slot, stable := origin(r.applied, left)
	r.e.emit(RolloutStarted{At: r.now(), Service: r.req.Template.Service, Target: r.e.Target.Name(), From: stable, Slot: slot})
	// A left-over rollout was admitted when it started; resuming or undoing it is not
	// a new decision.
	if r.req.Admit != nil && left == nil {
		if err := r.req.Admit(stable, r.req.Version); err != nil {
			return Finished{Outcome: Refused, Reason: ReasonRefused, Message: err.Error()}
		}
	}

	rel, err := r.bake(ctx, baker)
	if err != nil {
		// Nothing was deployed: a first release failed, a later one left the live one.
		outcome, reason := failure(ctx, ReasonBakeFailed, stable != nil)
		return Finished{Outcome: outcome, Reason: reason, Message: err.Error()}
	}
	r.e.emit(Baked{At: r.now(), Release: rel})

	st := decideStart(r.applied, left, rel)
	switch st.kind {
	case startFinishUndo:
		r.recover(ctx, *left, true, "resuming a rollout a stopped kiln left")
		return r.undo(ctx, left.Reason, errors.New(left.Message))
	case startResume:
		r.recover(ctx, *left, false, "resuming a rollout a stopped kiln left")
		return r.runStages(ctx)
	case startSupersede:
		r.recover(ctx, *left, true, "undoing a rollout a stopped kiln left")
		if undone := r.undo(ctx, ReasonSuperseded, fmt.Errorf("superseded by %s", rel)); undone.Outcome == RollbackFailed || undone.Outcome == Interrupted {
			return undone
		}
		r.finished = nil
		st = decideStart(r.applied, nil, rel)
	}
	if st.kind == startAlreadyLive {
		return Finished{Outcome: Unchanged, Message: fmt.Sprintf("%s is already live", rel)}
	}
	r.cp = Checkpoint{ID: newID(), Slot: st.slot, Stable: st.stable, Desired: rel, Started: r.now()}
	r.stableSlot = st.slot.Other()
	return r.runStages(ctx)
}

// bake runs the bake phase. It is not a stage: it runs before the first checkpoint,
// because the checkpoint names the baked release.
func (r *run) bake(ctx context.Context, baker Baker) (fleet.Release, error) {
	var rel fleet.Release
	err := r.phase(ctx, PhaseBake, 0, func(ctx context.Context) (err error) {
		rel, err = baker.Bake(ctx)
		return err
	})
	return rel, err
}

// recover takes over the rollout a killed kiln left, to go on with it or (aborting) to
// undo it. The target is repaired first: whatever died with that kiln may have to be
// re-created before health can be read.
func (r *run) recover(ctx context.Context, left Checkpoint, aborting bool, why string) {
	r.cp = left
	r.stableSlot = left.Slot.Other()
	r.e.emit(Recovered{At: r.now(), ID: left.ID, Phase: left.Phase, Step: left.Step, Aborting: aborting})
	r.heal(ctx, errors.New(why))
}
