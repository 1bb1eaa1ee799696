package rollout

import (
	"context"

	"github.com/kilnhq/kiln/fleet"
)

// apply converges the target to spec; on success it becomes the applied spec.
func (r *run) apply(ctx context.Context, spec fleet.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	err := r.e.Target.Apply(ctx, spec, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.now(), ResourceOp: op})
	})
	if err != nil {
		return err
	}
	r.applied = spec
	return nil
}

// deploy brings the new slot up beside the stable one, without traffic.
func (r *run) deploy(ctx context.Context) error {
	return r.apply(ctx, deploySpec(r.applied, r.req, r.cp.Slot, r.cp.Desired, r.hasStable()))
}

// setWeight gives the new slot w% of traffic and the stable slot the rest.
func (r *run) setWeight(ctx context.Context, w int) error {
	if err := r.apply(ctx, weightSpec(r.applied, r.cp.Slot, w, r.hasStable())); err != nil {
		return err
	}
	r.e.emit(TrafficShifted{At: r.now(), Weights: weights(r.applied)})
	return nil
}

// trafficStep moves traffic to the step's weight — only onto a healthy slot — then holds
// for the step's pause and runs its analysis. Once promoted, intermediate steps are
// skipped and the last one only switches.
func (r *run) trafficStep(ctx context.Context, n int, s Step) error {
	if r.promoted && s.Weight < 100 {
		return nil
	}
	if err := r.waitHealthy(ctx); err != nil {
		return fail(ReasonNewSlotUnhealthy, "step %d: %v", n, err)
	}
	if err := r.setWeight(ctx, s.Weight); err != nil {
		return err
	}
	if r.promoted {
		return nil
	}
	if s.Pause > 0 || s.Indefinite {
		if err := r.hold(ctx, s.Pause, s.Indefinite); err != nil {
			return err
		}
	}
	if s.Analysis != "" && !r.promoted {
		return r.analyze(ctx, s.Analysis)
	}
	return nil
}

// retire removes the stable slot.
func (r *run) retire(ctx context.Context) error {
	return r.apply(ctx, retireSpec(r.applied, r.stableSlot))
}

// The specs each stage converges to are pure functions of the applied spec, shared by
// the engine and by Plan.

func deploySpec(cur fleet.Spec, req Request, slot fleet.Slot, rel fleet.Release, hasStable bool) fleet.Spec {
	next := cur.Clone()
	tpl := req.Template
	next.Service, next.Port, next.Health, next.DrainTimeout, next.Env = tpl.Service, tpl.Port, tpl.Health, tpl.DrainTimeout, tpl.Env
	if next.Slots == nil {
		next.Slots = map[fleet.Slot]fleet.SlotSpec{}
	}
	next.Slots[slot] = fleet.SlotSpec{Release: &rel, Size: req.Size, Weight: 0}
	if hasStable {
		st := next.Slots[slot.Other()]
		st.Weight = 100
		next.Slots[slot.Other()] = st
	}
	return next
}

func weightSpec(cur fleet.Spec, slot fleet.Slot, w int, hasStable bool) fleet.Spec {
	next := cur.Clone()
	ns := next.Slots[slot]
	ns.Weight = w
	next.Slots[slot] = ns
	if hasStable {
		st := next.Slots[slot.Other()]
		st.Weight = 100 - w
		next.Slots[slot.Other()] = st
	}
	return next
}

func retireSpec(cur fleet.Spec, stableSlot fleet.Slot) fleet.Spec {
	next := cur.Clone()
	next.Slots[stableSlot] = fleet.SlotSpec{}
	return next
}

func weights(s fleet.Spec) map[fleet.Slot]int {
	w := map[fleet.Slot]int{}
	for _, sl := range fleet.Slots {
		w[sl] = s.Slots[sl].Weight
	}
	return w
}
