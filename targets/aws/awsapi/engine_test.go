package awsapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
	"github.com/kilnhq/kiln/targets/aws/awsapi"
	"github.com/kilnhq/kiln/targets/aws/awsapi/awsfake"
)

// awsTarget is a rollout target whose Apply is rollouttest's in-memory fake and whose
// Health is awsapi's, read from the model of AWS: the engine's gates, deadlines and
// rollbacks decide on what the aws target would read.
type awsTarget struct {
	*rollouttest.Target
	c *awsapi.Clients
}

// Health reads both slots' target groups, and the auto scaling group of each slot that
// has instances, as the aws target names them (<service>-<slot>).
func (t awsTarget) Health(ctx context.Context) ([]fleet.InstanceHealth, error) {
	spec := t.Spec()
	var slots []awsapi.SlotGroups
	for _, s := range fleet.Slots {
		sg := awsapi.SlotGroups{Slot: s, TargetGroupARN: map[fleet.Slot]string{fleet.Blue: blueTG, fleet.Green: greenTG}[s]}
		if !spec.Slots[s].Empty() {
			sg.Group = spec.Service + "-" + string(s)
		}
		slots = append(slots, sg)
	}
	return t.c.Health(ctx, slots)
}

// engineRequest rolls out 2 instances in two traffic steps, polling health every 500ms.
func engineRequest() rollout.Request {
	return rollout.Request{
		Template: fleet.Spec{Service: "hello", Port: 8080, DrainTimeout: time.Second,
			Health: fleet.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}},
		Size:             2,
		ProgressDeadline: 30 * time.Second,
		Steps:            []rollout.Step{{Weight: 50, Pause: 5 * time.Second}, {Weight: 100}},
	}
}

func healthy(ids ...string) []awsfake.Target {
	var ts []awsfake.Target
	for _, id := range ids {
		ts = append(ts, awsfake.Target{ID: id, Port: 8080, State: "healthy"})
	}
	return ts
}

func inService(ids ...string) []awsfake.GroupInstance {
	var gs []awsfake.GroupInstance
	for _, id := range ids {
		gs = append(gs, awsfake.GroupInstance{ID: id, Lifecycle: "InService"})
	}
	return gs
}

// liveBlue is a model of AWS where release 1.0.0 serves from two healthy blue instances.
func liveBlue(t *testing.T) (*awsfake.Server, awsTarget) {
	f := awsfake.New(t)
	f.TargetHealth(blueTG, healthy("i-b1", "i-b2"))
	f.Group("hello-blue", inService("i-b1", "i-b2"))
	tg := awsTarget{Target: rollouttest.LiveOn(fleet.Blue, rollouttest.Release("1.0.0"), 2), c: newClients(t, f)}
	return f, tg
}

func runOnAWS(tg awsTarget) (rollout.Finished, []rollout.Event) {
	return rollouttest.Run(context.Background(), &rollout.Engine{Target: tg, Clock: &clock.Fake{}}, engineRequest(), rollouttest.Baker("2.0.0"))
}

func TestEngineOnAWSPromotesAReleaseThatTurnsHealthy(t *testing.T) {
	f, tg := liveBlue(t)
	// The group launches, the instances register, pass their checks.
	f.Group("hello-green", nil, []awsfake.GroupInstance{{ID: "i-g1", Lifecycle: "Pending"}, {ID: "i-g2", Lifecycle: "Pending"}},
		inService("i-g1", "i-g2"))
	f.TargetHealth(greenTG, nil, nil,
		[]awsfake.Target{{ID: "i-g1", Port: 8080, State: "initial", Reason: "Elb.RegistrationInProgress"}, {ID: "i-g2", Port: 8080, State: "initial"}},
		healthy("i-g1", "i-g2"))
	fin, evs := runOnAWS(tg)
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if got, want := tg.AppliedSlots(), "blue=1.0.0@100 green=2.0.0@0|blue=1.0.0@50 green=2.0.0@50|blue=1.0.0@0 green=2.0.0@100|blue=- green=2.0.0@100"; strings.Join(got, "|") != want {
		t.Fatalf("applied %v", got)
	}
	// The console saw the launching instances, as the group's lifecycle says.
	if !sawHealth(evs, "auto scaling: Pending") {
		t.Error("no health event showed the instances launching")
	}
}

func TestEngineOnAWSRollsBackWhenInstancesTurnUnhealthyUnderTraffic(t *testing.T) {
	f, tg := liveBlue(t)
	f.Group("hello-green", inService("i-g1", "i-g2"))
	broken := []awsfake.Target{{ID: "i-g1", Port: 8080, State: "healthy"},
		{ID: "i-g2", Port: 8080, State: "unhealthy", Reason: "Target.ResponseCodeMismatch", Description: "Health checks failed with these codes: [500]"}}
	// Healthy for the health gate and the first polls of the 50% step, then one fails.
	f.TargetHealth(greenTG, healthy("i-g1", "i-g2"), healthy("i-g1", "i-g2"), healthy("i-g1", "i-g2"), broken)
	fin, _ := runOnAWS(tg)
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonNewSlotUnhealthy {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if !strings.Contains(fin.Message, "Health checks failed with these codes: [500]") {
		t.Errorf("message does not say why: %q", fin.Message)
	}
	if got := tg.Spec(); got.Slots[fleet.Blue].Weight != 100 || !got.Slots[fleet.Green].Empty() {
		t.Fatalf("after rollback %s", rollouttest.Slots(got))
	}
}

func TestEngineOnAWSRollsBackWhenCapacityIsSlowerThanTheDeadline(t *testing.T) {
	f, tg := liveBlue(t)
	// One instance never leaves Pending (no capacity in the zone).
	f.Group("hello-green", []awsfake.GroupInstance{{ID: "i-g1", Lifecycle: "InService"}, {ID: "i-g2", Lifecycle: "Pending"}})
	f.TargetHealth(greenTG, healthy("i-g1"))
	fin, _ := runOnAWS(tg)
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonNotHealthy {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if !strings.Contains(fin.Message, "auto scaling: Pending") || !strings.Contains(fin.Message, "1 initial") {
		t.Errorf("message does not say what is missing: %q", fin.Message)
	}
	if got := tg.AppliedSlots(); strings.Join(got, "|") != "blue=1.0.0@100 green=2.0.0@0|blue=1.0.0@100 green=-" {
		t.Fatalf("traffic moved: %v", got)
	}
}

func TestEngineOnAWSRidesOutThrottling(t *testing.T) {
	f, tg := liveBlue(t)
	f.Group("hello-green", inService("i-g1", "i-g2"))
	f.TargetHealth(greenTG, healthy("i-g1", "i-g2"))
	// Enough throttling that the first health reads fail even after their retries, and
	// later ones need retries: the engine keeps polling within its deadline.
	f.Throttle("DescribeTargetHealth", 3*attempts)
	f.Throttle("DescribeAutoScalingGroups", attempts-1)
	fin, evs := runOnAWS(tg)
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	throttled := 0
	for _, c := range f.CallsOf("DescribeTargetHealth") {
		if c.Status != 200 {
			throttled++
		}
	}
	if throttled != 3*attempts {
		t.Fatalf("%d throttled calls, want %d", throttled, 3*attempts)
	}
	if !sawHealth(evs, "") {
		t.Fatal("no health reported")
	}
}

// sawHealth reports whether a HealthChanged event showed an instance whose LastError
// contains s.
func sawHealth(evs []rollout.Event, s string) bool {
	for _, ev := range evs {
		if h, ok := ev.(rollout.HealthChanged); ok {
			for _, in := range h.Instances {
				if strings.Contains(in.LastError, s) {
					return true
				}
			}
		}
	}
	return false
}
