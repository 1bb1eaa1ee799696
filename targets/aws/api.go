package aws

import (
	"context"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/targets/aws/awsapi"
	"github.com/kilnhq/kiln/targets/aws/program"
)

// API is what the aws target reads of AWS at run time, and the one thing it does there
// itself (deregister AMIs that Image Builder made). Package awsapi implements it with the
// AWS SDK (see openAPI); tests give it scripted fakes or the model of AWS.
type API interface {
	// Health returns the instances of the slots' target groups (slot to ARN), joined with
	// their auto scaling groups' lifecycle (slot to group name).
	Health(ctx context.Context, targetGroups, groups map[fleet.Slot]string) ([]fleet.InstanceHealth, error)
	// Metrics returns the CloudWatch source of template t for one slot: its target group
	// (tg) behind the balancer (lb), as CloudWatch dimensions, and its instances.
	Metrics(t analysis.Template, lb, tg string, instances func(context.Context) ([]string, error)) (analysis.Source, error)
	// DeregisterImages deregisters AMIs and deletes their snapshots; AMIs already gone
	// are no error.
	DeregisterImages(ctx context.Context, amis []string) error
	// RemoveOrphanGroup deletes the auto scaling group called name, which no stack holds,
	// and waits until it is gone; it reports whether there was one.
	RemoveOrphanGroup(ctx context.Context, name string) (bool, error)
}

// openAPI returns the AWS SDK's clients of region, configured as the SDK configures itself
// (credentials from the environment, profile, SSO or role; endpoints from
// AWS_ENDPOINT_URL_<SERVICE> when set).
func openAPI(ctx context.Context, region, service string) (API, error) {
	c, err := awsapi.New(ctx, region, awsapi.Options{})
	if err != nil {
		return nil, err
	}
	return sdkAPI{c: c, service: service}, nil
}

type sdkAPI struct {
	c       *awsapi.Clients
	service string
}

func (a sdkAPI) Health(ctx context.Context, targetGroups, groups map[fleet.Slot]string) ([]fleet.InstanceHealth, error) {
	var slots []awsapi.SlotGroups
	for _, sl := range fleet.Slots {
		if tg := targetGroups[sl]; tg != "" {
			slots = append(slots, awsapi.SlotGroups{Slot: sl, TargetGroupARN: tg, Group: groups[sl]})
		}
	}
	return a.c.Health(ctx, slots)
}

func (a sdkAPI) Metrics(t analysis.Template, lb, tg string, instances func(context.Context) ([]string, error)) (analysis.Source, error) {
	return a.c.MetricsSource(t, awsapi.SlotMetrics{LoadBalancerARN: lb, TargetGroupARN: tg, Service: a.service, Instances: instances})
}

func (a sdkAPI) RemoveOrphanGroup(ctx context.Context, name string) (bool, error) {
	return a.c.RemoveOrphanGroup(ctx, name)
}

func (a sdkAPI) DeregisterImages(ctx context.Context, amis []string) error {
	_, err := a.c.DeregisterAMIs(ctx, amis)
	return err
}

// AnalysisSource reads the analysis of slot from CloudWatch: a runner in CI cannot reach
// the instances' private addresses to scrape them.
func (t *Target) AnalysisSource(ctx context.Context, tmpl analysis.Template, slot fleet.Slot) (analysis.Source, error) {
	v, err := t.output(ctx, program.OutputLoadBalancer)
	if err != nil {
		return nil, errNoMetrics
	}
	lb, _ := v.Value.(string)
	dims, err := t.slotOutputs(ctx, program.OutputTargetGroupDims)
	if err != nil {
		return nil, err
	}
	instances := func(ctx context.Context) ([]string, error) {
		hs, err := t.Health(ctx)
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, h := range hs {
			if h.Slot == slot {
				ids = append(ids, h.ID)
			}
		}
		return ids, nil
	}
	return t.cfg.API.Metrics(tmpl, lb, dims[slot], instances)
}

var _ targets.HealthPacer = (*Target)(nil)

// HealthInterval paces a console's health readings: each is three API calls, and an ALB
// checks its targets every 5 s at the most.
func (t *Target) HealthInterval() time.Duration { return 5 * time.Second }

var _ rollout.Healer = (*Target)(nil)

// Heal converges the fleet to spec again when its health cannot be read: an engine a
// killed kiln left running is ended first (the engine calls Heal holding the stack's
// lock). Auto scaling groups replace dead instances themselves; what Heal repairs is what
// was changed or removed behind the stack's back.
func (t *Target) Heal(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	if err := t.fleet.TakeOver(ctx, takeOverGrace); err != nil {
		return err
	}
	t.unsettle()
	return t.Apply(ctx, spec, ops)
}

// takeOverGrace is how long an engine left running by a killed kiln gets to save its
// state once interrupted.
const takeOverGrace = 15 * time.Second
