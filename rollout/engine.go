// Package rollout is kiln's deployment engine: it moves a fleet from its live release to
// a new one, blue-green, through phases that each either finish or are undone. It knows
// nothing of processes, AMIs or terminals: it drives a Target and reports typed Events.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Request is what one rollout is asked to do.
type Request struct {
	// Template gives the fleet's shape for the new release: service, port, health check,
	// drain timeout, env. Its Slots are ignored.
	Template fleet.Spec
	// Size is the number of instances of the new slot.
	Size int
	// ProgressDeadline bounds how long the new slot may take to become healthy.
	ProgressDeadline time.Duration
}

// Engine runs rollouts against one target.
type Engine struct {
	Target Target
	// Events receives every event; the engine blocks while it is full, so a consumer
	// must drain it. Nil discards events.
	Events chan<- Event
	// Clock decides deadlines; nil is the wall clock.
	Clock Clock
	// PollInterval is how often health is read; zero derives it from the health check.
	PollInterval time.Duration
	// RollbackTimeout bounds the undo of a failed or cancelled release, which runs even
	// after the caller's context is done.
	RollbackTimeout time.Duration
}

// run is the state of one rollout.
type run struct {
	e       *Engine
	req     Request
	start   time.Time
	spec    fleet.Spec // what is applied now
	live    fleet.Slot
	hasLive bool
	idle    fleet.Slot
	from    *fleet.Release
	to      *fleet.Release
	phases  []PhaseFinished
}

// Run rolls out the release baker produces and returns how it ended. The same Finished
// event is also the last event sent.
func (e *Engine) Run(ctx context.Context, req Request, baker Baker) Finished {
	if e.Clock == nil {
		e.Clock = RealClock{}
	}
	if e.RollbackTimeout == 0 {
		e.RollbackTimeout = 5 * time.Minute
	}
	r := &run{e: e, req: req, start: e.Clock.Now()}
	fin := r.do(ctx, baker)
	fin.At = e.Clock.Now()
	fin.Duration = fin.At.Sub(r.start)
	fin.From, fin.To, fin.Phases = r.from, r.to, r.phases
	if l, ok := r.spec.Live(); ok {
		rel := *r.spec.Slots[l].Release
		fin.Live = &rel
	}
	e.emit(fin)
	return fin
}

func (e *Engine) emit(ev Event) {
	if e.Events != nil {
		e.Events <- ev
	}
}

func (r *run) do(ctx context.Context, baker Baker) Finished {
	t := r.e.Target
	cur, exists, err := t.Current(ctx)
	if err != nil {
		return r.fail(ReasonTargetFailed, fmt.Errorf("read the current fleet: %w", err))
	}
	if exists {
		r.spec = cur.Clone()
		r.live, r.hasLive = cur.Live()
	} else {
		r.spec = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	}
	r.idle = fleet.Blue
	if r.hasLive {
		r.idle = r.live.Other()
		rel := *r.spec.Slots[r.live].Release
		r.from = &rel
	}
	r.e.emit(RolloutStarted{At: r.e.Clock.Now(), Service: r.req.Template.Service, Target: t.Name(), From: r.from, Slot: r.idle})

	var rel fleet.Release
	if err := r.phase(ctx, PhaseBake, func(ctx context.Context) (err error) {
		rel, err = baker.Bake(ctx)
		return err
	}); err != nil {
		return r.failOrCancel(ctx, ReasonBakeFailed, err)
	}
	r.to = &rel
	r.e.emit(Baked{At: r.e.Clock.Now(), Release: rel})
	if r.hasLive && r.from.Image.Digest == rel.Image.Digest && r.from.Version == rel.Version {
		return Finished{Outcome: Unchanged, Message: fmt.Sprintf("%s is already live", rel)}
	}

	// The new slot comes up beside the live one and receives no traffic yet.
	next := r.withTemplate()
	next.Slots[r.idle] = fleet.SlotSpec{Release: &rel, Size: r.req.Size, Weight: 0}
	if err := r.phase(ctx, PhaseDeploy, func(ctx context.Context) error { return r.apply(ctx, next) }); err != nil {
		return r.undo(ctx, ReasonDeployFailed, err)
	}
	if err := r.phase(ctx, PhaseHealth, r.waitHealthy); err != nil {
		return r.undo(ctx, ReasonNotHealthy, err)
	}

	next = r.spec.Clone()
	next.Slots[r.idle] = withWeight(next.Slots[r.idle], 100)
	if r.hasLive {
		next.Slots[r.live] = withWeight(next.Slots[r.live], 0)
	}
	if err := r.phase(ctx, PhaseSwitch, func(ctx context.Context) error { return r.apply(ctx, next) }); err != nil {
		return r.undo(ctx, ReasonSwitchFailed, err)
	}
	r.e.emit(TrafficShifted{At: r.e.Clock.Now(), Weights: weights(r.spec)})

	if r.hasLive {
		next = r.spec.Clone()
		next.Slots[r.live] = fleet.SlotSpec{}
		if err := r.phase(ctx, PhaseRetire, func(ctx context.Context) error { return r.apply(ctx, next) }); err != nil {
			// The new release serves all traffic; only the old slot is left behind.
			return Finished{Outcome: RollbackFailed, Reason: ReasonRetireFailed,
				Message: fmt.Sprintf("%s is live but the old slot %s could not be removed: %v; run the rollout again to retry", rel, r.live, err)}
		}
	}
	return Finished{Outcome: Promoted, Message: fmt.Sprintf("%s is live on slot %s", rel, r.idle)}
}

// withTemplate returns the applied spec with the request's fleet-wide settings.
func (r *run) withTemplate() fleet.Spec {
	next := r.spec.Clone()
	tpl := r.req.Template
	next.Service, next.Port, next.Health, next.DrainTimeout, next.Env = tpl.Service, tpl.Port, tpl.Health, tpl.DrainTimeout, tpl.Env
	if next.Slots == nil {
		next.Slots = map[fleet.Slot]fleet.SlotSpec{}
	}
	return next
}

func withWeight(s fleet.SlotSpec, w int) fleet.SlotSpec {
	s.Weight = w
	return s
}

func weights(s fleet.Spec) map[fleet.Slot]int {
	w := map[fleet.Slot]int{}
	for _, sl := range fleet.Slots {
		w[sl] = s.Slots[sl].Weight
	}
	return w
}

// phase runs fn as the named phase, reporting its start, end and duration.
func (r *run) phase(ctx context.Context, p Phase, fn func(context.Context) error) error {
	start := r.e.Clock.Now()
	r.e.emit(PhaseStarted{At: start, Phase: p})
	err := fn(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	end := r.e.Clock.Now()
	pf := PhaseFinished{At: end, Phase: p, Duration: end.Sub(start)}
	if err != nil {
		pf.Error = err.Error()
	}
	r.phases = append(r.phases, pf)
	r.e.emit(pf)
	return err
}

// apply converges the target to spec; on success it becomes the applied spec.
func (r *run) apply(ctx context.Context, spec fleet.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	err := r.e.Target.Apply(ctx, spec, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.e.Clock.Now(), ResourceOp: op})
	})
	if err != nil {
		return err
	}
	r.spec = spec
	return nil
}

// waitHealthy waits until every instance of the new slot passes its health check, or
// the progress deadline passes.
func (r *run) waitHealthy(ctx context.Context) error {
	deadline := r.e.Clock.Now().Add(r.req.ProgressDeadline)
	poll := r.e.PollInterval
	if poll == 0 {
		poll = r.req.Template.Health.Interval / 2
		if poll < 100*time.Millisecond {
			poll = 100 * time.Millisecond
		}
	}
	var last []fleet.InstanceHealth
	var lastErr error
	for {
		hs, err := r.e.Target.Health(ctx)
		lastErr = err
		if err == nil {
			mine := inSlot(hs, r.idle)
			if !sameHealth(mine, last) {
				r.e.emit(HealthChanged{At: r.e.Clock.Now(), Slot: r.idle, Instances: mine})
				last = mine
			}
			if fleet.AllHealthy(mine, r.req.Size) {
				return nil
			}
		}
		if !r.e.Clock.Now().Before(deadline) {
			return fmt.Errorf("slot %s not healthy within the progress deadline of %s: %s", r.idle, r.req.ProgressDeadline, describe(last, lastErr))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.e.Clock.After(poll):
		}
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
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].State != b[i].State || a[i].LastError != b[i].LastError || a[i].Restarts != b[i].Restarts {
			return false
		}
	}
	return true
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
		if h.LastError != "" && !contains(errs, h.LastError) {
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

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// undo removes the new slot and keeps (or puts back) all traffic on the stable one. It
// runs on a context of its own: a cancelled rollout must still stop on the stable slot.
func (r *run) undo(ctx context.Context, reason Reason, cause error) Finished {
	outcome := RolledBack
	if errors.Is(cause, context.Canceled) || ctx.Err() != nil {
		outcome, reason = Interrupted, ReasonCancelled
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.e.RollbackTimeout)
	defer cancel()
	next := r.spec.Clone()
	next.Slots[r.idle] = fleet.SlotSpec{}
	if r.hasLive {
		next.Slots[r.live] = withWeight(next.Slots[r.live], 100)
	}
	if err := r.phase(uctx, PhaseRollback, func(ctx context.Context) error { return r.apply(ctx, next) }); err != nil {
		return Finished{Outcome: RollbackFailed, Reason: reason,
			Message: fmt.Sprintf("%v; removing the new slot %s failed too: %v", cause, r.idle, err)}
	}
	if r.hasLive {
		r.e.emit(TrafficShifted{At: r.e.Clock.Now(), Weights: weights(r.spec)})
	}
	return Finished{Outcome: outcome, Reason: reason, Message: cause.Error()}
}

func (r *run) fail(reason Reason, err error) Finished {
	return Finished{Outcome: RolledBack, Reason: reason, Message: err.Error()}
}

// failOrCancel ends a rollout that changed nothing yet.
func (r *run) failOrCancel(ctx context.Context, reason Reason, err error) Finished {
	if ctx.Err() != nil {
		return Finished{Outcome: Interrupted, Reason: ReasonCancelled, Message: err.Error()}
	}
	return r.fail(reason, err)
}
