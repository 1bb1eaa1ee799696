package rollouttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

func request() rollout.Request {
	return rollout.Request{
		Template:         fleet.Spec{Service: "hello", Port: 8080, Health: fleet.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1}},
		Size:             3,
		ProgressDeadline: time.Minute,
		Steps:            []rollout.Step{{Weight: 50, Analysis: "errors"}, {Weight: 100}},
	}
}

// The fakes drive whole rollouts: a first release, a second one in steps with an
// analysis, then the fleet is destroyed.
func TestTheFakesDriveAWholeRolloutAndADestroy(t *testing.T) {
	tg := rollouttest.NewTarget()
	if _, err := tg.Endpoint(context.Background()); err == nil {
		t.Fatal("an endpoint before anything was applied")
	}
	j := &rollouttest.Journal{}
	an := rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"errors": {rollout.AnalysisSuccessful}})
	e := &rollout.Engine{Target: tg, Journal: j, Analyzer: an, Clock: &clock.Fake{}}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if fin := e.Run(context.Background(), request(), rollouttest.Baker(v)); fin.Outcome != rollout.Promoted {
			t.Fatalf("%s: %s %s", v, fin.Outcome, fin.Message)
		}
	}
	want := []string{"blue=1.0.0@0 green=-", "blue=1.0.0@100 green=-",
		"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@50 green=2.0.0@50", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := tg.AppliedSlots(); len(got) != len(want) || got[len(got)-1] != want[len(want)-1] || got[3] != want[3] {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if calls := an.Calls(); len(calls) != 1 || calls[0] != "errors" {
		t.Fatalf("analyses run: %v", calls)
	}
	if j.Holds() || len(j.Saves()) == 0 {
		t.Fatalf("journal holds %v after %d saves", j.Holds(), len(j.Saves()))
	}
	if ep, err := tg.Endpoint(context.Background()); err != nil || ep == "" {
		t.Fatalf("Endpoint = %q, %v", ep, err)
	}
	var ops []fleet.ResourceOp
	if err := tg.Destroy(context.Background(), func(op fleet.ResourceOp) { ops = append(ops, op) }); err != nil {
		t.Fatal(err)
	}
	if _, exists, _ := tg.Current(context.Background()); exists || len(ops) != 1 || tg.Destroyed() != 1 {
		t.Fatalf("after destroy: exists %v, %d ops", exists, len(ops))
	}
}

func TestInjectedFailures(t *testing.T) {
	tg := rollouttest.LiveOn(fleet.Blue, rollouttest.Release("1.0.0"), 2)
	tg.FailCurrent(errors.New("state backend down"))
	e := &rollout.Engine{Target: tg, Clock: &clock.Fake{}}
	req := request()
	req.Steps = nil
	if fin := e.Run(context.Background(), req, rollouttest.Baker("2.0.0")); fin.Reason != rollout.ReasonTargetFailed {
		t.Fatalf("unreadable fleet: %s/%s", fin.Outcome, fin.Reason)
	}
	tg.FailCurrent(nil)
	tg.Break("2.0.0")
	if fin := e.Run(context.Background(), req, rollouttest.Baker("2.0.0")); fin.Reason != rollout.ReasonNotHealthy {
		t.Fatalf("broken release: %s/%s", fin.Outcome, fin.Reason)
	}
	tg.Fix("2.0.0")
	tg.FailHealth(errors.New("load balancer gone"))
	reads := tg.HealthReads()
	if fin := e.Run(context.Background(), req, rollouttest.Baker("2.0.0")); fin.Reason != rollout.ReasonNotHealthy || tg.HealthReads() != reads {
		t.Fatalf("unreadable health: %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	tg.FailHealth(nil)
	if fin := e.Run(context.Background(), req, rollouttest.Baker("2.0.0")); fin.Outcome != rollout.Promoted {
		t.Fatalf("after the faults: %s: %s", fin.Outcome, fin.Message)
	}
}
