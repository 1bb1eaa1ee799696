package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

// errSignal is how a cancelled Pulumi CLI fails: its process was signalled, and the error
// says so without wrapping context.Canceled.
var errSignal = errors.New("pulumi up: signal: interrupt")

// interrupting is a target (and baker) that cancels the rollout's context at its n-th
// call — reading the fleet, applying, reading health, baking — and then fails every call
// made on that context the way a signalled Pulumi CLI does. Calls on another context
// (the undo's) go through.
type interrupting struct {
	*rollouttest.Target
	cancel context.CancelFunc
	at     int
	bake   rollout.Baker

	mu    sync.Mutex
	calls []string
}

// call counts a call and reports the error it must fail with, if any.
func (it *interrupting) call(ctx context.Context, name string) error {
	it.mu.Lock()
	n := len(it.calls)
	it.calls = append(it.calls, name)
	it.mu.Unlock()
	if n == it.at {
		it.cancel()
	}
	if ctx.Err() != nil {
		return errSignal
	}
	return nil
}

func (it *interrupting) Current(ctx context.Context) (fleet.Spec, bool, error) {
	if err := it.call(ctx, "current"); err != nil {
		return fleet.Spec{}, false, err
	}
	return it.Target.Current(ctx)
}

func (it *interrupting) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	if err := it.call(ctx, "apply "+rollouttest.Slots(spec)); err != nil {
		return err
	}
	return it.Target.Apply(ctx, spec, ops)
}

func (it *interrupting) Health(ctx context.Context) ([]fleet.InstanceHealth, error) {
	if err := it.call(ctx, "health"); err != nil {
		return nil, err
	}
	return it.Target.Health(ctx)
}

func (it *interrupting) Bake(ctx context.Context) (fleet.Release, error) {
	if err := it.call(ctx, "bake"); err != nil {
		return fleet.Release{}, err
	}
	return it.bake.Bake(ctx)
}

// TestAnInterruptAtEveryCallEndsInterruptedOnTheStableRelease cancels a rollout at each
// of the calls it makes, in turn — every stage boundary and every wait — with errors that
// do not say "context canceled": each run must end interrupted, on the stable release
// (or, for a first release, with nothing left).
func TestAnInterruptAtEveryCallEndsInterruptedOnTheStableRelease(t *testing.T) {
	req := request()
	req.Steps = []rollout.Step{{Weight: 50}, {Weight: 100}}
	for _, first := range []bool{false, true} {
		newTarget := func() *rollouttest.Target {
			if first {
				return &rollouttest.Target{HealthyAfter: 1}
			}
			return liveOnBlue("1.0.0")
		}
		// A rollout left alone, to count its calls.
		whole := &interrupting{Target: newTarget(), cancel: func() {}, at: -1, bake: rollouttest.Baker("2.0.0")}
		if fin, _ := runRequest(t, context.Background(), whole, whole, &clock.Fake{}, req); fin.Outcome != rollout.Promoted {
			t.Fatalf("first=%v: uninterrupted rollout %s: %s", first, fin.Outcome, fin.Message)
		}
		for at, name := range whole.calls {
			t.Run(fmt.Sprintf("first=%v/%d-%s", first, at, name), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				it := &interrupting{Target: newTarget(), cancel: cancel, at: at, bake: rollouttest.Baker("2.0.0")}
				fin, _ := runRequest(t, ctx, it, it, &clock.Fake{}, req)
				if fin.Outcome != rollout.Interrupted || fin.Reason != rollout.ReasonCancelled {
					t.Fatalf("outcome %s/%s (%s), want interrupted/Cancelled; calls %v", fin.Outcome, fin.Reason, fin.Message, it.calls)
				}
				spec, exists, _ := it.Target.Current(context.Background())
				switch {
				case first && exists:
					t.Fatalf("a first release interrupted left %s", rollouttest.Slots(spec))
				case !first && rollouttest.Slots(spec) != "blue=1.0.0@100 green=-":
					t.Fatalf("interrupted rollout left %s, want the stable release alone", rollouttest.Slots(spec))
				}
			})
		}
	}
}
