package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
)

// fakeAnalyzer returns scripted verdicts by analysis name.
type fakeAnalyzer struct {
	mu       sync.Mutex
	verdicts map[string][]AnalysisOutcome
	calls    []string
}

func (a *fakeAnalyzer) Analyze(ctx context.Context, name string, slot fleet.Slot, report func(AnalysisMeasured)) (AnalysisOutcome, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, name)
	vs := a.verdicts[name]
	if len(vs) == 0 {
		return "", "", errors.New("no verdict scripted")
	}
	v := vs[0]
	a.verdicts[name] = vs[1:]
	half := 0.5
	report(AnalysisMeasured{Metric: "error-ratio", Value: &half, Threshold: "<= 0.01", Result: string(v)})
	return v, "error-ratio " + string(v), nil
}

// memJournal keeps checkpoints in memory and records every save.
type memJournal struct {
	mu    sync.Mutex
	cp    *Checkpoint
	saves []Checkpoint
}

func (j *memJournal) Save(c Checkpoint) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	cp := c
	j.cp = &cp
	j.saves = append(j.saves, c)
	return nil
}

func (j *memJournal) Load() (Checkpoint, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cp == nil {
		return Checkpoint{}, false, nil
	}
	return *j.cp, true, nil
}

func (j *memJournal) Clear() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cp = nil
	return nil
}

type harness struct {
	tg       *fakeTarget
	clk      *clock.Fake
	analyzer *fakeAnalyzer
	journal  *memJournal
	// react is called (in its own goroutine) for every event, with a way to send controls.
	react   func(ev Event, send func(Command) error)
	replies []error
	mu      sync.Mutex
}

func (h *harness) run(t *testing.T, ctx context.Context, req Request, b Baker) (Finished, []Event) {
	t.Helper()
	events := make(chan Event)
	controls := make(chan Control)
	var evs []Event
	done := make(chan struct{})
	var wg sync.WaitGroup
	go func() {
		for ev := range events {
			evs = append(evs, ev)
			if h.react != nil {
				wg.Add(1)
				go func(ev Event) {
					defer wg.Done()
					h.react(ev, func(c Command) error {
						reply := make(chan error, 1)
						select {
						case controls <- Control{Command: c, Reply: reply}:
						case <-time.After(5 * time.Second):
							return errors.New("engine did not take the control")
						}
						err := <-reply
						h.mu.Lock()
						h.replies = append(h.replies, err)
						h.mu.Unlock()
						return err
					})
				}(ev)
			}
		}
		close(done)
	}()
	e := &Engine{Target: h.tg, Events: events, Controls: controls, Clock: h.clk, Journal: h.journal}
	if h.analyzer != nil {
		e.Analyzer = h.analyzer
	}
	fin := e.Run(ctx, req, b)
	close(events)
	<-done
	wg.Wait()
	return fin, evs
}

func newHarness() *harness {
	return &harness{tg: liveOnBlue("1.0.0"), clk: &clock.Fake{}, journal: &memJournal{}}
}

func stepsRequest(steps ...Step) Request {
	req := request()
	req.Steps = steps
	return req
}

func TestTrafficStepsWithPausesMoveTrafficGradually(t *testing.T) {
	h := newHarness()
	req := stepsRequest(Step{Weight: 10, Pause: time.Minute}, Step{Weight: 50, Pause: 2 * time.Minute}, Step{Weight: 100})
	req.ScaleDownDelay = 30 * time.Second
	start := h.clk.Now()
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{
		"blue=1.0.0@100 green=2.0.0@0",
		"blue=1.0.0@90 green=2.0.0@10",
		"blue=1.0.0@50 green=2.0.0@50",
		"blue=1.0.0@0 green=2.0.0@100",
		"blue=- green=2.0.0@100",
	}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied\n%v\nwant\n%v", got, want)
	}
	// The pauses and the scale-down delay passed on the clock, not in real time.
	if el := h.clk.Now().Sub(start); el < 3*time.Minute+30*time.Second {
		t.Fatalf("only %s passed on the clock; pauses were skipped", el)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step", "step", "step", "scale-down-delay", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if h.journal.cp != nil {
		t.Fatal("a finished rollout left its checkpoint behind")
	}
}

func TestIndefinitePauseWaitsForPromoteWhichSkipsTheRemainingSteps(t *testing.T) {
	h := newHarness()
	h.react = func(ev Event, send func(Command) error) {
		if p, ok := ev.(Paused); ok && p.Indefinite {
			send(CmdPromote)
		}
	}
	req := stepsRequest(Step{Weight: 10, Indefinite: true}, Step{Weight: 50, Pause: time.Hour, Analysis: "never"}, Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@90 green=2.0.0@10", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	promoted := false
	for _, ev := range evs {
		if r, ok := ev.(Resumed); ok && r.Promoted {
			promoted = true
		}
	}
	if !promoted {
		t.Fatal("no resumed-by-promote event")
	}
}

func TestAbortDuringAPauseSendsTrafficBackThenRemovesTheNewSlot(t *testing.T) {
	h := newHarness()
	h.react = func(ev Event, send func(Command) error) {
		if _, ok := ev.(Paused); ok {
			send(CmdAbort)
		}
	}
	req := stepsRequest(Step{Weight: 25, Indefinite: true}, Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != RolledBack || fin.Reason != ReasonAborted {
		t.Fatalf("outcome %s/%s", fin.Outcome, fin.Reason)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@75 green=2.0.0@25", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@100 green=-"}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if h.journal.cp != nil {
		t.Fatal("a finished undo left its checkpoint behind")
	}
}

func TestPauseFreezesATimedPauseUntilResumed(t *testing.T) {
	h := newHarness()
	var once sync.Once
	h.react = func(ev Event, send func(Command) error) {
		if ps, ok := ev.(PhaseStarted); ok && ps.Phase == PhaseStep && ps.Step == 1 {
			once.Do(func() { send(CmdPause) })
		}
		if p, ok := ev.(Paused); ok && !p.Indefinite {
			// Let a long time pass on the clock while paused: the step must not end.
			h.clk.Advance(10 * time.Minute)
			send(CmdResume)
		}
	}
	req := stepsRequest(Step{Weight: 10, Pause: time.Minute}, Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	var paused, resumed bool
	for _, ev := range evs {
		switch e := ev.(type) {
		case Paused:
			paused = e.Remaining > 0 && e.Remaining <= time.Minute
		case Resumed:
			resumed = true
		}
	}
	if !paused || !resumed {
		t.Fatalf("paused=%v resumed=%v", paused, resumed)
	}
	for _, err := range h.replies {
		if err != nil {
			t.Fatalf("a control was refused: %v", err)
		}
	}
}

func TestFailedAnalysisAtTenPercentRollsBack(t *testing.T) {
	h := newHarness()
	h.analyzer = &fakeAnalyzer{verdicts: map[string][]AnalysisOutcome{"errors": {AnalysisFailed}}}
	req := stepsRequest(Step{Weight: 10, Pause: time.Minute, Analysis: "errors"}, Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != RolledBack || fin.Reason != ReasonAnalysisFailed {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@90 green=2.0.0@10", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@100 green=-"}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	measured := false
	for _, ev := range evs {
		if m, ok := ev.(AnalysisMeasured); ok && m.Analysis == "errors" && m.Metric == "error-ratio" {
			measured = true
		}
	}
	if !measured {
		t.Fatal("no analysis measurement reported")
	}
}

func TestInconclusiveAnalysisPausesForAHuman(t *testing.T) {
	h := newHarness()
	h.analyzer = &fakeAnalyzer{verdicts: map[string][]AnalysisOutcome{"smoke": {AnalysisInconclusive}}}
	h.react = func(ev Event, send func(Command) error) {
		if p, ok := ev.(Paused); ok && p.Indefinite {
			send(CmdResume)
		}
	}
	req := request()
	req.PrePromotionAnalysis = "smoke"
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "pre-promotion-analysis", "step", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
}

func TestNoTrafficGoesBackToAnUnhealthyStableSlot(t *testing.T) {
	h := newHarness()
	h.analyzer = &fakeAnalyzer{verdicts: map[string][]AnalysisOutcome{"errors": {AnalysisFailed}}}
	h.tg.broken = map[string]bool{"1.0.0": true} // the stable release fell ill meanwhile
	req := stepsRequest(Step{Weight: 50, Analysis: "errors"}, Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != RollbackFailed {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if !strings.Contains(fin.Message, "stable slot blue is not healthy") {
		t.Fatalf("message %q", fin.Message)
	}
	got := applied(h.tg)
	if got[len(got)-1] != "blue=1.0.0@50 green=2.0.0@50" {
		t.Fatalf("traffic was moved onto an unhealthy stable slot: %v", got)
	}
}

func TestNewSlotLosingHealthWhileServingRollsBack(t *testing.T) {
	h := newHarness()
	var once sync.Once
	h.react = func(ev Event, send func(Command) error) {
		if ts, ok := ev.(TrafficShifted); ok && ts.Weights[fleet.Green] == 20 {
			once.Do(func() {
				h.tg.mu.Lock()
				h.tg.broken = map[string]bool{"2.0.0": true}
				h.tg.mu.Unlock()
			})
		}
	}
	req := stepsRequest(Step{Weight: 20, Pause: time.Hour}, Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != RolledBack || fin.Reason != ReasonNewSlotUnhealthy {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if got := applied(h.tg); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("applied %v", got)
	}
}

func TestResumeContinuesAtTheSavedStageAndNeverRedeploys(t *testing.T) {
	h := newHarness()
	// A kiln was killed during step 2 (50%): the target has green at 50%, the journal says so.
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	stable := *h.tg.spec.Slots[fleet.Blue].Release
	h.tg.spec.Slots[fleet.Blue] = fleet.SlotSpec{Release: &stable, Size: 2, Weight: 50}
	h.tg.spec.Slots[fleet.Green] = fleet.SlotSpec{Release: &rel, Size: 2, Weight: 50}
	h.journal.cp = &Checkpoint{ID: "r1", Stage: 3, Phase: PhaseStep, Step: 2, Slot: fleet.Green, Stable: &stable, Desired: rel, StageStarted: h.clk.Now()}
	req := stepsRequest(Step{Weight: 10}, Step{Weight: 50, Pause: time.Minute}, Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@50 green=2.0.0@50", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	recovered := false
	for _, ev := range evs {
		if r, ok := ev.(Recovered); ok && r.ID == "r1" && r.Step == 2 {
			recovered = true
		}
		if ps, ok := ev.(PhaseStarted); ok && ps.Phase == PhaseStep && !recovered {
			t.Fatal("a step started before the rollout reported its recovery")
		}
	}
	if !recovered {
		t.Fatal("no Recovered event")
	}
	for _, s := range h.journal.saves {
		if s.ID != "r1" {
			t.Fatalf("a resumed rollout saved under a new id %s", s.ID)
		}
	}
}

func TestAnInterruptedUndoIsFinishedOnResume(t *testing.T) {
	h := newHarness()
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	stable := *h.tg.spec.Slots[fleet.Blue].Release
	h.tg.spec.Slots[fleet.Green] = fleet.SlotSpec{Release: &rel, Size: 2, Weight: 0}
	h.journal.cp = &Checkpoint{ID: "r1", Stage: 1, Phase: PhaseHealth, Slot: fleet.Green, Stable: &stable, Desired: rel, Aborting: true, Reason: ReasonNotHealthy, Message: "not healthy"}
	fin, _ := h.run(t, context.Background(), request(), release("2.0.0"))
	if fin.Outcome != RolledBack || fin.Reason != ReasonNotHealthy {
		t.Fatalf("outcome %s/%s", fin.Outcome, fin.Reason)
	}
	if got := applied(h.tg); !equal(got, []string{"blue=1.0.0@100 green=-"}) {
		t.Fatalf("applied %v", got)
	}
}

func TestALeftoverRolloutOfAnotherReleaseIsUndoneFirst(t *testing.T) {
	h := newHarness()
	old := fleet.Release{Version: "1.5.0", Image: fleet.Image{Digest: "sha256:1.5.0", Location: "/img/1.5.0"}}
	stable := *h.tg.spec.Slots[fleet.Blue].Release
	h.tg.spec.Slots[fleet.Green] = fleet.SlotSpec{Release: &old, Size: 2, Weight: 0}
	h.journal.cp = &Checkpoint{ID: "old", Stage: 1, Phase: PhaseHealth, Slot: fleet.Green, Stable: &stable, Desired: old}
	fin, _ := h.run(t, context.Background(), request(), release("2.0.0"))
	if fin.Outcome != Promoted || fin.To.Version != "2.0.0" {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=-", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := applied(h.tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

func TestInvalidStepsAreRefusedBeforeAnythingChanges(t *testing.T) {
	h := newHarness()
	fin, _ := h.run(t, context.Background(), stepsRequest(Step{Weight: 50}, Step{Weight: 20}), release("2.0.0"))
	if fin.Outcome != RolledBack || fin.Reason != ReasonInvalid || len(h.tg.applied) != 0 {
		t.Fatalf("outcome %s/%s with %d applies", fin.Outcome, fin.Reason, len(h.tg.applied))
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
	fin, _ := h.run(t, context.Background(), req, BakeFunc(func(context.Context) (fleet.Release, error) {
		baked = true
		return fleet.Release{}, nil
	}))
	if fin.Outcome != Refused || baked || len(h.tg.applied) != 0 {
		t.Fatalf("outcome %s, baked %v, %d applies", fin.Outcome, baked, len(h.tg.applied))
	}
}

func TestAFirstReleaseGoesStraightToAllTraffic(t *testing.T) {
	h := newHarness()
	h.tg = &fakeTarget{healthyAfter: 1}
	req := stepsRequest(Step{Weight: 10, Pause: time.Hour}, Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, release("1.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	if got := applied(h.tg); !equal(got, []string{"blue=1.0.0@0 green=-", "blue=1.0.0@100 green=-"}) {
		t.Fatalf("applied %v", got)
	}
}

// downTarget cannot report health until it is healed, like a killed load balancer.
type downTarget struct {
	*fakeTarget
	down  bool
	heals int
}

func (d *downTarget) Health(ctx context.Context) ([]fleet.InstanceHealth, error) {
	if d.down {
		return nil, errors.New("load balancer status: connection refused")
	}
	return d.fakeTarget.Health(ctx)
}

func (d *downTarget) Heal(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	d.heals++
	d.down = false
	return d.fakeTarget.Apply(ctx, spec, ops)
}

func TestAHealthReadingThatFailsHealsTheTargetAndTheRolloutGoesOn(t *testing.T) {
	h := newHarness()
	dt := &downTarget{fakeTarget: h.tg, down: true}
	events := make(chan Event, 1024)
	e := &Engine{Target: dt, Events: events, Clock: h.clk}
	fin := e.Run(context.Background(), request(), release("2.0.0"))
	close(events)
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	if dt.heals != 1 {
		t.Fatalf("healed %d times, want 1", dt.heals)
	}
	saw := false
	for ev := range events {
		if hv, ok := ev.(Healing); ok && strings.Contains(hv.Cause, "connection refused") {
			saw = true
		}
	}
	if !saw {
		t.Fatal("no healing event")
	}
}

func TestPlanShowsExactlyWhatTheEngineApplies(t *testing.T) {
	h := newHarness()
	req := stepsRequest(Step{Weight: 10, Pause: time.Minute, Analysis: "errors"}, Step{Weight: 60}, Step{Weight: 100})
	req.ScaleDownDelay = time.Minute
	h.analyzer = &fakeAnalyzer{verdicts: map[string][]AnalysisOutcome{"errors": {AnalysisSuccessful}}}
	cur, exists, _ := h.tg.Current(context.Background())
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	plan := Plan(cur, exists, req, rel)

	fin, _ := h.run(t, context.Background(), req, release("2.0.0"))
	if fin.Outcome != Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	var planned, phases []string
	for _, p := range plan {
		phases = append(phases, string(p.Phase))
		if p.Changes {
			planned = append(planned, slotsOf(p.Spec))
		}
	}
	if got := applied(h.tg); !equal(planned, got) {
		t.Fatalf("plan\n%v\nengine applied\n%v", planned, got)
	}
	if want := []string{"deploy", "health", "step", "step", "step", "scale-down-delay", "retire"}; !equal(phases, want) {
		t.Fatalf("planned phases %v, want %v", phases, want)
	}
	if plan[2].Waits != "pause 1m0s, then analysis errors" {
		t.Errorf("step 1 waits %q", plan[2].Waits)
	}
}
