package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

func request() rollout.Request {
	return rollout.Request{
		Template: fleet.Spec{Service: "hello", Port: 8080, DrainTimeout: time.Second,
			Health: fleet.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}},
		Size:             2,
		ProgressDeadline: 30 * time.Second,
	}
}

// runEngine runs one rollout and returns its result and every event it sent.
func runEngine(t *testing.T, ctx context.Context, tg rollout.Target, b rollout.Baker, clk *clock.Fake) (rollout.Finished, []rollout.Event) {
	t.Helper()
	return runRequest(t, ctx, tg, b, clk, request())
}

// runRequest is runEngine with the request given.
func runRequest(t *testing.T, ctx context.Context, tg rollout.Target, b rollout.Baker, clk *clock.Fake, req rollout.Request) (rollout.Finished, []rollout.Event) {
	t.Helper()
	return rollouttest.Run(ctx, &rollout.Engine{Target: tg, Clock: clk}, req, b)
}

func phasesOf(evs []rollout.Event) []string {
	var out []string
	for _, ev := range evs {
		if pf, ok := ev.(rollout.PhaseFinished); ok {
			s := string(pf.Phase)
			if pf.Error != "" {
				s += "!"
			}
			out = append(out, s)
		}
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "|") == strings.Join(b, "|") }

func TestFirstRolloutPromotesOnBlue(t *testing.T) {
	tg := &rollouttest.Target{HealthyAfter: 2}
	fin, evs := runEngine(t, context.Background(), tg, rollouttest.Baker("1.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome = %s (%s), want promoted", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@0 green=-", "blue=1.0.0@100 green=-"}
	if got := tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if _, ok := evs[len(evs)-1].(rollout.Finished); !ok {
		t.Fatalf("last event is %T, want Finished", evs[len(evs)-1])
	}
	if fin.Live == nil || fin.Live.Version != "1.0.0" {
		t.Fatalf("live = %v, want 1.0.0", fin.Live)
	}
}

// liveOnBlue is a target where release v serves from two instances on blue, healthy at
// the second health read.
func liveOnBlue(v string) *rollouttest.Target {
	tg := rollouttest.LiveOn(fleet.Blue, rollouttest.Release(v), 2)
	tg.HealthyAfter = 1
	return tg
}

func TestBlueGreenOrderNewSlotHealthyBeforeTrafficOldRetiredLast(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, evs := runEngine(t, context.Background(), tg, rollouttest.Baker("2.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome = %s (%s)", fin.Outcome, fin.Message)
	}
	want := []string{
		"blue=1.0.0@100 green=2.0.0@0",
		"blue=1.0.0@0 green=2.0.0@100",
		"blue=- green=2.0.0@100",
	}
	if got := tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	// Traffic moved only after a health report with every new instance healthy.
	healthyBeforeSwitch := false
	for _, ev := range evs {
		if h, ok := ev.(rollout.HealthChanged); ok && fleet.AllHealthy(h.Instances, 2) {
			healthyBeforeSwitch = true
		}
		if ps, ok := ev.(rollout.PhaseStarted); ok && ps.Phase == rollout.PhaseStep && !healthyBeforeSwitch {
			t.Fatal("switch started before the new slot was reported healthy")
		}
	}
	if fin.From == nil || fin.From.Version != "1.0.0" || fin.To.Version != "2.0.0" {
		t.Fatalf("from %v to %v", fin.From, fin.To)
	}
}

func TestUnhealthyReleaseIsRemovedAtTheDeadlineAndTrafficNeverMoves(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.Break("3.0.0")
	clk := &clock.Fake{}
	fin, evs := runEngine(t, context.Background(), tg, rollouttest.Baker("3.0.0"), clk)
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonNotHealthy {
		t.Fatalf("outcome = %s/%s, want rolled-back/NewSlotNotHealthy", fin.Outcome, fin.Reason)
	}
	if !strings.Contains(fin.Message, "HTTP 500") || !strings.Contains(fin.Message, "2 unhealthy") {
		t.Errorf("message does not say what failed: %q", fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=3.0.0@0", "blue=1.0.0@100 green=-"}
	if got := tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	// Poll every interval/2 = 500ms until 30s have passed on the fake clock.
	if clk.Waits() != 60 {
		t.Errorf("engine waited %d times, want 60 polls of 500ms in a 30s deadline", clk.Waits())
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health!", "rollback"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if fin.Live == nil || fin.Live.Version != "1.0.0" {
		t.Fatalf("live = %v, want 1.0.0", fin.Live)
	}
}

func TestDeployFailureRemovesTheNewSlot(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.FailApply(0, errors.New("instance would not start"))
	fin, _ := runEngine(t, context.Background(), tg, rollouttest.Baker("2.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonDeployFailed {
		t.Fatalf("outcome = %s/%s", fin.Outcome, fin.Reason)
	}
	if got := tg.AppliedSlots(); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("last apply %v", got)
	}
}

func TestFailedRollbackNeedsAHuman(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.FailApply(0, errors.New("boom"))
	tg.FailApply(1, errors.New("engine down"))
	fin, _ := runEngine(t, context.Background(), tg, rollouttest.Baker("2.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.RollbackFailed {
		t.Fatalf("outcome = %s", fin.Outcome)
	}
	if !strings.Contains(fin.Message, "engine down") {
		t.Fatalf("message %q hides the rollback error", fin.Message)
	}
}

func TestCancelDuringHealthStopsOnTheStableSlot(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.HealthyAfter = 1000
	ctx, cancel := context.WithCancel(context.Background())
	tg.OnHealth = cancel
	fin, _ := runEngine(t, ctx, tg, rollouttest.Baker("2.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.Interrupted || fin.Reason != rollout.ReasonCancelled {
		t.Fatalf("outcome = %s/%s", fin.Outcome, fin.Reason)
	}
	if got := tg.AppliedSlots(); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("rollback was not applied after cancel: %v", got)
	}
}

func TestSameReleaseIsUnchanged(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, _ := runEngine(t, context.Background(), tg, rollouttest.Baker("1.0.0"), &clock.Fake{})
	if fin.Outcome != rollout.Unchanged || len(tg.Applied()) != 0 {
		t.Fatalf("outcome %s with %d applies", fin.Outcome, len(tg.Applied()))
	}
}

func TestBakeFailureChangesNothing(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, _ := runEngine(t, context.Background(), tg, rollout.BakeFunc(func(context.Context) (fleet.Release, error) {
		return fleet.Release{}, errors.New("compile error")
	}), &clock.Fake{})
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonBakeFailed || len(tg.Applied()) != 0 {
		t.Fatalf("outcome %s/%s with %d applies", fin.Outcome, fin.Reason, len(tg.Applied()))
	}
}

func TestMarshalEventNamesTheEvent(t *testing.T) {
	b, err := rollout.MarshalEvent(rollout.PhaseFinished{Phase: rollout.PhaseHealth, Duration: time.Second, Error: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["event"] != "phase-finished" || m["phase"] != "health" || m["error"] != "x" {
		t.Fatalf("got %s", b)
	}
}
