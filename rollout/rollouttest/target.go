// Package rollouttest holds fakes of what the rollout engine drives — a target, a journal,
// an analyzer — for tests of the engine and of whatever wires it (the rollout command's
// session). They keep everything in memory and are safe for concurrent use; time comes
// from internal/clock's Fake.
package rollouttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// Target is a fake rollout.Target that applies specs in memory. Its instances answer
// health scripted by HealthyAfter and Break; Fail* inject failures.
type Target struct {
	// HealthyAfter is how many health reads report the instances as initial before
	// they turn healthy.
	HealthyAfter int
	// OnHealth, if set, is called after every health read (outside the lock), e.g. to
	// cancel a rollout while it waits.
	OnHealth func()

	mu          sync.Mutex
	spec        fleet.Spec
	exists      bool
	applied     []fleet.Spec
	failApply   map[int]error
	broken      map[string]bool
	failHealth  error
	failCurrent error
	healthReads int
	destroyed   int
}

var _ rollout.Target = (*Target)(nil)

// NewTarget returns a target on which nothing was ever applied.
func NewTarget() *Target { return &Target{} }

// LiveOn returns a target where rel serves all traffic from size instances on slot.
func LiveOn(slot fleet.Slot, rel fleet.Release, size int) *Target {
	return &Target{exists: true, spec: fleet.Spec{Service: "hello", Slots: map[fleet.Slot]fleet.SlotSpec{
		slot: {Release: &rel, Size: size, Weight: 100}}}}
}

// SetSpec replaces what the target holds, as if applied by a kiln that stopped since
// (no apply is recorded).
func (t *Target) SetSpec(spec fleet.Spec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spec, t.exists = spec.Clone(), true
}

// Spec returns what the target holds now.
func (t *Target) Spec() fleet.Spec {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spec.Clone()
}

// Break makes every instance of release version unhealthy (failing with HTTP 500);
// Fix undoes it.
func (t *Target) Break(version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken == nil {
		t.broken = map[string]bool{}
	}
	t.broken[version] = true
}

// Fix makes the instances of version answer their health checks again.
func (t *Target) Fix(version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.broken, version)
}

// FailApply makes the n-th call of Apply (from 0) fail with err, changing nothing.
func (t *Target) FailApply(n int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failApply == nil {
		t.failApply = map[int]error{}
	}
	t.failApply[n] = err
}

// FailHealth makes health unreadable (a dead load balancer) until called with nil.
func (t *Target) FailHealth(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failHealth = err
}

// FailCurrent makes reading the current fleet fail until called with nil.
func (t *Target) FailCurrent(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failCurrent = err
}

// Applied returns every spec Apply was called with, failed calls included, in order.
func (t *Target) Applied() []fleet.Spec {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]fleet.Spec, len(t.applied))
	for i, s := range t.applied {
		out[i] = s.Clone()
	}
	return out
}

// AppliedSlots returns Applied as Slots strings, e.g. "blue=1.0.0@100 green=-".
func (t *Target) AppliedSlots() []string {
	var out []string
	for _, s := range t.Applied() {
		out = append(out, Slots(s))
	}
	return out
}

// HealthReads is how many times health was read.
func (t *Target) HealthReads() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.healthReads
}

// Destroyed is how many times Destroy was called.
func (t *Target) Destroyed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.destroyed
}

// Name returns "fake".
func (t *Target) Name() string { return "fake" }

// Current returns the spec last applied, and false when nothing ever was.
func (t *Target) Current(context.Context) (fleet.Spec, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failCurrent != nil {
		return fleet.Spec{}, false, t.failCurrent
	}
	return t.spec.Clone(), t.exists, nil
}

// Apply records spec and, unless this call is made to fail, holds it from now on.
func (t *Target) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(t.applied)
	t.applied = append(t.applied, spec.Clone())
	if err := t.failApply[n]; err != nil {
		return err
	}
	ops(fleet.ResourceOp{Op: "update", Type: "fake:Fleet", Name: spec.Service, Status: fleet.OpDone})
	t.spec, t.exists = spec.Clone(), true
	return nil
}

// Health reports size instances per slot that holds a release: initial for the first
// HealthyAfter reads, then healthy, or unhealthy if their version is broken.
func (t *Target) Health(context.Context) ([]fleet.InstanceHealth, error) {
	t.mu.Lock()
	if t.failHealth != nil {
		err := t.failHealth
		t.mu.Unlock()
		return nil, err
	}
	t.healthReads++
	var hs []fleet.InstanceHealth
	for _, sl := range fleet.Slots {
		sp := t.spec.Slots[sl]
		if sp.Empty() {
			continue
		}
		for i := range sp.Size {
			h := fleet.InstanceHealth{ID: fmt.Sprintf("%s%d", sl, i), Slot: sl, State: fleet.Initial}
			if t.healthReads > t.HealthyAfter {
				h.State = fleet.Healthy
			}
			if t.broken[sp.Release.Version] {
				h.State, h.LastError = fleet.Unhealthy, "HTTP 500"
			}
			hs = append(hs, h)
		}
	}
	cb := t.OnHealth
	t.mu.Unlock()
	if cb != nil {
		cb()
	}
	return hs, nil
}

// Endpoint returns a fixed address once something was applied.
func (t *Target) Endpoint(context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.exists {
		return "", errors.New("rollouttest: nothing was applied")
	}
	return "127.0.0.1:1", nil
}

// Destroy removes the fleet: afterwards nothing was ever applied.
func (t *Target) Destroy(ctx context.Context, ops func(fleet.ResourceOp)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	t.destroyed++
	if t.exists {
		ops(fleet.ResourceOp{Op: "delete", Type: "fake:Fleet", Name: t.spec.Service, Status: fleet.OpDone})
	}
	t.spec, t.exists = fleet.Spec{}, false
	return nil
}

// HealingTarget is a Target that repairs itself like a target re-creating a killed
// load balancer: Heal makes health readable again and applies spec once more.
type HealingTarget struct {
	*Target
	mu    sync.Mutex
	heals int
}

var _ rollout.Healer = (*HealingTarget)(nil)

// Heal clears a FailHealth and applies spec (recorded like any apply).
func (h *HealingTarget) Heal(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	h.mu.Lock()
	h.heals++
	h.mu.Unlock()
	h.FailHealth(nil)
	return h.Apply(ctx, spec, ops)
}

// Heals is how many times Heal was called.
func (h *HealingTarget) Heals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heals
}

// Slots describes a spec's slots in one line, e.g. "blue=1.0.0@90 green=2.0.0@10" (a
// release at its weight; "-" for an empty slot), for comparing what was applied.
func Slots(s fleet.Spec) string {
	var parts []string
	for _, sl := range fleet.Slots {
		sp := s.Slots[sl]
		if sp.Empty() {
			parts = append(parts, string(sl)+"=-")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%s@%d", sl, sp.Release.Version, sp.Weight))
	}
	return strings.Join(parts, " ")
}

// Release returns release v with an image named after it.
func Release(v string) fleet.Release {
	return fleet.Release{Version: v, Image: fleet.Image{Digest: "sha256:" + v, Location: "/img/" + v}}
}

// Baker bakes Release(v) at once.
func Baker(v string) rollout.Baker {
	return rollout.BakeFunc(func(context.Context) (fleet.Release, error) { return Release(v), nil })
}
