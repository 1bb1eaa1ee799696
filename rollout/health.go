package rollout

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// waitHealthy waits until every instance of the new slot passes its health check, or
// the progress deadline of the stage passes.
func (r *run) waitHealthy(ctx context.Context) error {
	deadline := r.cp.StageStarted.Add(r.req.ProgressDeadline)
	var last []fleet.InstanceHealth
	var lastErr error
	for {
		hs, err := r.e.Target.Health(ctx)
		lastErr = err
		if err != nil {
			r.heal(ctx, err)
		} else {
			mine := inSlot(hs, r.cp.Slot)
			if !sameHealth(mine, last) {
				r.e.emit(HealthChanged{At: r.now(), Slot: r.cp.Slot, Instances: mine})
				last = mine
			}
			if fleet.AllHealthy(mine, r.req.Size) {
				return nil
			}
		}
		if !r.now().Before(deadline) {
			return fail(ReasonNotHealthy, "slot %s not healthy within the progress deadline of %s: %s", r.cp.Slot, r.req.ProgressDeadline, describe(last, lastErr))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-r.e.Controls:
			if r.control(c) {
				return errAborted
			}
		case <-r.e.clock().After(r.poll()):
		}
	}
}

// checkServing fails when an instance of the new slot, which carries traffic, is no
// longer healthy.
func (r *run) checkServing(ctx context.Context) error {
	hs, err := r.e.Target.Health(ctx)
	if err != nil {
		r.heal(ctx, err)
		return nil // a missed reading is not a verdict; the next poll reads again
	}
	mine := inSlot(hs, r.cp.Slot)
	if !fleet.AllHealthy(mine, r.req.Size) {
		r.e.emit(HealthChanged{At: r.now(), Slot: r.cp.Slot, Instances: mine})
		return fail(ReasonNewSlotUnhealthy, "slot %s lost its health while serving: %s", r.cp.Slot, describe(mine, nil))
	}
	return nil
}

// stableHealthy reports whether the stable slot may take traffic back, reading health
// again after a repair if the first reading fails.
func (r *run) stableHealthy(ctx context.Context) error {
	hs, err := r.e.Target.Health(ctx)
	if err != nil {
		r.lastHeal = time.Time{}
		r.heal(ctx, err)
		hs, err = r.e.Target.Health(ctx)
	}
	if err != nil {
		return fail(ReasonStableUnhealthy, "cannot read the stable slot's health, traffic left as it is: %v", err)
	}
	size := r.applied.Slots[r.stableSlot].Size
	if stable := inSlot(hs, r.stableSlot); !fleet.AllHealthy(stable, size) {
		return fail(ReasonStableUnhealthy, "the stable slot %s is not healthy (%s), traffic left as it is", r.stableSlot, describe(stable, nil))
	}
	return nil
}

// poll is how often health is read while waiting: half the health check's interval, at
// least 100ms.
func (r *run) poll() time.Duration {
	return max(r.req.Template.Health.Interval/2, 100*time.Millisecond)
}

// heal asks the target to repair what it cannot read health from (a killed load
// balancer), at most every few seconds.
func (r *run) heal(ctx context.Context, cause error) {
	h, ok := r.e.Target.(Healer)
	if !ok || r.applied.Slots == nil || (!r.lastHeal.IsZero() && r.now().Sub(r.lastHeal) < 5*time.Second) {
		return
	}
	r.lastHeal = r.now()
	r.e.emit(Healing{At: r.now(), Cause: cause.Error()})
	if err := h.Heal(ctx, r.applied, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.now(), ResourceOp: op})
	}); err != nil {
		r.e.emit(Healing{At: r.now(), Cause: cause.Error(), Error: err.Error()})
	}
}

func inSlot(hs []fleet.InstanceHealth, s fleet.Slot) []fleet.InstanceHealth {
	var out []fleet.InstanceHealth
	for _, h := range hs {
		if h.Slot == s {
			out = append(out, h)
		}
	}
	fleet.SortHealth(out)
	return out
}

func sameHealth(a, b []fleet.InstanceHealth) bool {
	return slices.EqualFunc(a, b, func(x, y fleet.InstanceHealth) bool {
		return x.ID == y.ID && x.State == y.State && x.LastError == y.LastError && x.Restarts == y.Restarts
	})
}

// describe says what is wrong with a slot's instances, in one line.
func describe(hs []fleet.InstanceHealth, err error) string {
	if err != nil {
		return "health unavailable: " + err.Error()
	}
	if len(hs) == 0 {
		return "no instance registered"
	}
	count := map[fleet.HealthState]int{}
	var errs []string
	for _, h := range hs {
		count[h.State]++
		if h.LastError != "" && !slices.Contains(errs, h.LastError) {
			errs = append(errs, h.LastError)
		}
	}
	var parts []string
	for st, n := range count {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	s := strings.Join(parts, ", ")
	if len(errs) > 0 {
		s += "; last check: " + strings.Join(errs, "; ")
	}
	return s
}
