package rollout

import (
	"context"

	"github.com/kilnhq/kiln/fleet"
)

// Target is where a fleet runs. The local target (processes behind kiln's proxy) and the
// aws target (auto scaling groups behind an ALB) both satisfy it, so the engine, the
// console and CI see the same phases and events whatever runs underneath.
type Target interface {
	// Name is the target's name: local or aws.
	Name() string
	// Current returns the fleet as last applied; false when nothing was ever applied.
	Current(ctx context.Context) (fleet.Spec, bool, error)
	// Apply converges the fleet to spec, reporting each resource operation.
	Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error
	// Health reports every instance as the traffic layer sees it.
	Health(ctx context.Context) ([]fleet.InstanceHealth, error)
	// Endpoint is the address users reach the service at.
	Endpoint(ctx context.Context) (string, error)
	// Destroy removes every resource of the fleet.
	Destroy(ctx context.Context, ops func(fleet.ResourceOp)) error
}

// Baker bakes the release being rolled out and publishes its image to the target.
type Baker interface {
	Bake(ctx context.Context) (fleet.Release, error)
}

// BakeFunc adapts a function to Baker.
type BakeFunc func(ctx context.Context) (fleet.Release, error)

// Bake calls f.
func (f BakeFunc) Bake(ctx context.Context) (fleet.Release, error) { return f(ctx) }

// Healer is implemented by targets that can repair what died behind kiln's back — the
// traffic layer or instances — by converging to spec again. The engine calls it when it
// cannot read health.
type Healer interface {
	Heal(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error
}

// Previewer is implemented by targets whose engine can say what applying spec would do
// without doing it (a Pulumi preview).
type Previewer interface {
	Preview(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error
}
