package rollout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

// killedDuring sets up what a kiln killed during a rollout of rel leaves behind: rel on
// green at weight w beside the stable 1.0.0 on blue, and cp (its slot and releases filled
// in) in the journal.
func (h *harness) killedDuring(rel fleet.Release, w int, cp rollout.Checkpoint) {
	spec := h.tg.Spec()
	blue := spec.Slots[fleet.Blue]
	stable := *blue.Release
	blue.Weight = 100 - w
	spec.Slots[fleet.Blue] = blue
	spec.Slots[fleet.Green] = fleet.SlotSpec{Release: &rel, Size: 2, Weight: w}
	h.tg.SetSpec(spec)
	cp.Slot, cp.Stable, cp.Desired = fleet.Green, &stable, rel
	h.journal = rollouttest.Left(cp)
}

func TestResumeContinuesAtTheSavedStageAndNeverRedeploys(t *testing.T) {
	h := newHarness()
	// A kiln was killed during step 2 (50%): the target has green at 50%, the journal says so.
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	h.killedDuring(rel, 50, rollout.Checkpoint{ID: "r1", Stage: 3, Phase: rollout.PhaseStep, Step: 2, StageStarted: h.clk.Now()})
	req := stepsRequest(rollout.Step{Weight: 10}, rollout.Step{Weight: 50, Pause: time.Minute}, rollout.Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@50 green=2.0.0@50", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	recovered := false
	for _, ev := range evs {
		if r, ok := ev.(rollout.Recovered); ok && r.ID == "r1" && r.Step == 2 {
			recovered = true
		}
		if ps, ok := ev.(rollout.PhaseStarted); ok && ps.Phase == rollout.PhaseStep && !recovered {
			t.Fatal("a step started before the rollout reported its recovery")
		}
	}
	if !recovered {
		t.Fatal("no Recovered event")
	}
	for _, s := range h.journal.Saves() {
		if s.ID != "r1" {
			t.Fatalf("a resumed rollout saved under a new id %s", s.ID)
		}
	}
}

func TestAnInterruptedUndoIsFinishedOnResume(t *testing.T) {
	h := newHarness()
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	h.killedDuring(rel, 0, rollout.Checkpoint{ID: "r1", Stage: 1, Phase: rollout.PhaseHealth, Aborting: true, Reason: rollout.ReasonNotHealthy, Message: "not healthy"})
	fin, _ := h.run(t, context.Background(), request(), rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonNotHealthy {
		t.Fatalf("outcome %s/%s", fin.Outcome, fin.Reason)
	}
	if got := h.tg.AppliedSlots(); !equal(got, []string{"blue=1.0.0@100 green=-"}) {
		t.Fatalf("applied %v", got)
	}
}

func TestALeftoverRolloutOfAnotherReleaseIsUndoneFirst(t *testing.T) {
	h := newHarness()
	old := fleet.Release{Version: "1.5.0", Image: fleet.Image{Digest: "sha256:1.5.0", Location: "/img/1.5.0"}}
	h.killedDuring(old, 0, rollout.Checkpoint{ID: "old", Stage: 1, Phase: rollout.PhaseHealth})
	fin, _ := h.run(t, context.Background(), request(), rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted || fin.To.Version != "2.0.0" {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=-", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

func TestInvalidStepsAreRefusedBeforeAnythingChanges(t *testing.T) {
	h := newHarness()
	fin, _ := h.run(t, context.Background(), stepsRequest(rollout.Step{Weight: 50}, rollout.Step{Weight: 20}), rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonInvalid || len(h.tg.Applied()) != 0 {
		t.Fatalf("outcome %s/%s with %d applies", fin.Outcome, fin.Reason, len(h.tg.Applied()))
	}
}

func TestAdmitRefusesBeforeAnythingIsBaked(t *testing.T) {
	h := newHarness()
	req := request()
	req.Version = "0.9.0"
	req.Admit = func(live *fleet.Release, v string) error {
		if live == nil || live.Version != "1.0.0" || v != "0.9.0" {
			t.Errorf("admit saw live %v and version %s", live, v)
		}
		return errors.New("0.9.0 is older than the live 1.0.0")
	}
	baked := false
	fin, _ := h.run(t, context.Background(), req, rollout.BakeFunc(func(context.Context) (fleet.Release, error) {
		baked = true
		return fleet.Release{}, nil
	}))
	if fin.Outcome != rollout.Refused || baked || len(h.tg.Applied()) != 0 {
		t.Fatalf("outcome %s, baked %v, %d applies", fin.Outcome, baked, len(h.tg.Applied()))
	}
}

func TestAHealthReadingThatFailsHealsTheTargetAndTheRolloutGoesOn(t *testing.T) {
	h := newHarness()
	dt := &rollouttest.HealingTarget{Target: h.tg}
	dt.FailHealth(errors.New("load balancer status: connection refused"))
	events := make(chan rollout.Event, 1024)
	e := &rollout.Engine{Target: dt, Events: events, Clock: h.clk}
	fin := e.Run(context.Background(), request(), rollouttest.Baker("2.0.0"))
	close(events)
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	if dt.Heals() != 1 {
		t.Fatalf("healed %d times, want 1", dt.Heals())
	}
	saw := false
	for ev := range events {
		if hv, ok := ev.(rollout.Healing); ok && strings.Contains(hv.Cause, "connection refused") {
			saw = true
		}
	}
	if !saw {
		t.Fatal("no healing event")
	}
}
