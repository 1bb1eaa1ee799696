package rollout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

type harness struct {
	tg       *rollouttest.Target
	clk      *clock.Fake
	analyzer *rollouttest.Analyzer
	journal  *rollouttest.Journal
	// react is called (in its own goroutine) for every event, with a way to send controls.
	react   func(ev rollout.Event, send func(rollout.Command) error)
	replies []error
	mu      sync.Mutex
	// engineClock and engineTarget, if set, are what the engine is given instead of clk
	// and tg (wrappers of them).
	engineClock  clock.Clock
	engineTarget rollout.Target
}

func (h *harness) run(t *testing.T, ctx context.Context, req rollout.Request, b rollout.Baker) (rollout.Finished, []rollout.Event) {
	t.Helper()
	events := make(chan rollout.Event)
	controls := make(chan rollout.Control)
	var evs []rollout.Event
	done := make(chan struct{})
	var wg sync.WaitGroup
	go func() {
		for ev := range events {
			evs = append(evs, ev)
			if h.react != nil {
				wg.Add(1)
				go func(ev rollout.Event) {
					defer wg.Done()
					h.react(ev, func(c rollout.Command) error {
						reply := make(chan error, 1)
						select {
						case controls <- rollout.Control{Command: c, Reply: reply}:
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
	var tg rollout.Target = h.tg
	if h.engineTarget != nil {
		tg = h.engineTarget
	}
	var clk clock.Clock = h.clk
	if h.engineClock != nil {
		clk = h.engineClock
	}
	e := &rollout.Engine{Target: tg, Events: events, Controls: controls, Clock: clk, Journal: h.journal}
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
	return &harness{tg: liveOnBlue("1.0.0"), clk: &clock.Fake{}, journal: &rollouttest.Journal{}}
}

func stepsRequest(steps ...rollout.Step) rollout.Request {
	req := request()
	req.Steps = steps
	return req
}

func TestTrafficStepsWithPausesMoveTrafficGradually(t *testing.T) {
	h := newHarness()
	req := stepsRequest(rollout.Step{Weight: 10, Pause: time.Minute}, rollout.Step{Weight: 50, Pause: 2 * time.Minute}, rollout.Step{Weight: 100})
	req.ScaleDownDelay = 30 * time.Second
	start := h.clk.Now()
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{
		"blue=1.0.0@100 green=2.0.0@0",
		"blue=1.0.0@90 green=2.0.0@10",
		"blue=1.0.0@50 green=2.0.0@50",
		"blue=1.0.0@0 green=2.0.0@100",
		"blue=- green=2.0.0@100",
	}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied\n%v\nwant\n%v", got, want)
	}
	// The pauses and the scale-down delay passed on the clock, not in real time.
	if el := h.clk.Now().Sub(start); el < 3*time.Minute+30*time.Second {
		t.Fatalf("only %s passed on the clock; pauses were skipped", el)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step", "step", "step", "scale-down-delay", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if h.journal.Holds() {
		t.Fatal("a finished rollout left its checkpoint behind")
	}
}

func TestIndefinitePauseWaitsForPromoteWhichSkipsTheRemainingSteps(t *testing.T) {
	h := newHarness()
	h.react = func(ev rollout.Event, send func(rollout.Command) error) {
		if p, ok := ev.(rollout.Paused); ok && p.Indefinite {
			send(rollout.CmdPromote)
		}
	}
	req := stepsRequest(rollout.Step{Weight: 10, Indefinite: true}, rollout.Step{Weight: 50, Pause: time.Hour, Analysis: "never"}, rollout.Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@90 green=2.0.0@10", "blue=1.0.0@0 green=2.0.0@100", "blue=- green=2.0.0@100"}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	promoted := false
	for _, ev := range evs {
		if r, ok := ev.(rollout.Resumed); ok && r.Promoted {
			promoted = true
		}
	}
	if !promoted {
		t.Fatal("no resumed-by-promote event")
	}
}

func TestAbortDuringAPauseSendsTrafficBackThenRemovesTheNewSlot(t *testing.T) {
	h := newHarness()
	h.react = func(ev rollout.Event, send func(rollout.Command) error) {
		if _, ok := ev.(rollout.Paused); ok {
			send(rollout.CmdAbort)
		}
	}
	req := stepsRequest(rollout.Step{Weight: 25, Indefinite: true}, rollout.Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonAborted {
		t.Fatalf("outcome %s/%s", fin.Outcome, fin.Reason)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@75 green=2.0.0@25", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@100 green=-"}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if h.journal.Holds() {
		t.Fatal("a finished undo left its checkpoint behind")
	}
}

// gatedClock is a fake clock whose waits, once armed, fire only when the gate opens: the
// engine, inside a timed pause, then waits for the test's controls rather than racing
// through the pause on a clock that never makes it wait.
type gatedClock struct {
	*clock.Fake
	mu    sync.Mutex
	armed bool
	gate  chan struct{}
}

func (g *gatedClock) arm(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed && !on {
		close(g.gate)
	}
	g.armed = on
}

func (g *gatedClock) After(d time.Duration) <-chan time.Time {
	g.mu.Lock()
	armed, gate := g.armed, g.gate
	g.mu.Unlock()
	if !armed {
		return g.Fake.After(d)
	}
	ch := make(chan time.Time, 1)
	go func() {
		<-gate
		ch <- <-g.Fake.After(d)
	}()
	return ch
}

// armingTarget arms the clock when the engine applies the first traffic step, before
// the step's pause begins.
type armingTarget struct {
	*rollouttest.Target
	clk *gatedClock
}

func (a armingTarget) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	if spec.Slots[fleet.Green].Weight == 10 {
		a.clk.arm(true)
	}
	return a.Target.Apply(ctx, spec, ops)
}

func TestPauseFreezesATimedPauseUntilResumed(t *testing.T) {
	h := newHarness()
	gc := &gatedClock{Fake: h.clk, gate: make(chan struct{})}
	h.engineClock, h.engineTarget = gc, armingTarget{Target: h.tg, clk: gc}
	var once sync.Once
	h.react = func(ev rollout.Event, send func(rollout.Command) error) {
		if ps, ok := ev.(rollout.PhaseStarted); ok && ps.Phase == rollout.PhaseStep && ps.Step == 1 {
			once.Do(func() { send(rollout.CmdPause) })
		}
		if p, ok := ev.(rollout.Paused); ok && !p.Indefinite {
			// Let a long time pass on the clock while paused: the step must not end.
			h.clk.Advance(10 * time.Minute)
			gc.arm(false)
			send(rollout.CmdResume)
		}
	}
	req := stepsRequest(rollout.Step{Weight: 10, Pause: time.Minute}, rollout.Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	var paused, resumed bool
	for _, ev := range evs {
		switch e := ev.(type) {
		case rollout.Paused:
			paused = e.Remaining > 0 && e.Remaining <= time.Minute
		case rollout.Resumed:
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
	h.analyzer = rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"errors": {rollout.AnalysisFailed}})
	req := stepsRequest(rollout.Step{Weight: 10, Pause: time.Minute, Analysis: "errors"}, rollout.Step{Weight: 100})
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonAnalysisFailed {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@90 green=2.0.0@10", "blue=1.0.0@100 green=2.0.0@0", "blue=1.0.0@100 green=-"}
	if got := h.tg.AppliedSlots(); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	measured := false
	for _, ev := range evs {
		if m, ok := ev.(rollout.AnalysisMeasured); ok && m.Analysis == "errors" && m.Metric == "error-ratio" {
			measured = true
		}
	}
	if !measured {
		t.Fatal("no analysis measurement reported")
	}
}

func TestInconclusiveAnalysisPausesForAHuman(t *testing.T) {
	h := newHarness()
	h.analyzer = rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"smoke": {rollout.AnalysisInconclusive}})
	h.react = func(ev rollout.Event, send func(rollout.Command) error) {
		if p, ok := ev.(rollout.Paused); ok && p.Indefinite {
			send(rollout.CmdResume)
		}
	}
	req := request()
	req.PrePromotionAnalysis = "smoke"
	fin, evs := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "pre-promotion-analysis", "step", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
}

func TestNoTrafficGoesBackToAnUnhealthyStableSlot(t *testing.T) {
	h := newHarness()
	h.analyzer = rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"errors": {rollout.AnalysisFailed}})
	h.tg.Break("1.0.0") // the stable release fell ill meanwhile
	req := stepsRequest(rollout.Step{Weight: 50, Analysis: "errors"}, rollout.Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RollbackFailed {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if !strings.Contains(fin.Message, "stable slot blue is not healthy") {
		t.Fatalf("message %q", fin.Message)
	}
	got := h.tg.AppliedSlots()
	if got[len(got)-1] != "blue=1.0.0@50 green=2.0.0@50" {
		t.Fatalf("traffic was moved onto an unhealthy stable slot: %v", got)
	}
}

func TestNewSlotLosingHealthWhileServingRollsBack(t *testing.T) {
	h := newHarness()
	var once sync.Once
	h.react = func(ev rollout.Event, send func(rollout.Command) error) {
		if ts, ok := ev.(rollout.TrafficShifted); ok && ts.Weights[fleet.Green] == 20 {
			once.Do(func() {
				h.tg.Break("2.0.0")
			})
		}
	}
	req := stepsRequest(rollout.Step{Weight: 20, Pause: time.Hour}, rollout.Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.RolledBack || fin.Reason != rollout.ReasonNewSlotUnhealthy {
		t.Fatalf("outcome %s/%s: %s", fin.Outcome, fin.Reason, fin.Message)
	}
	if got := h.tg.AppliedSlots(); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("applied %v", got)
	}
}

func TestAFirstReleaseGoesStraightToAllTraffic(t *testing.T) {
	h := newHarness()
	h.tg = &rollouttest.Target{HealthyAfter: 1}
	req := stepsRequest(rollout.Step{Weight: 10, Pause: time.Hour}, rollout.Step{Weight: 100})
	fin, _ := h.run(t, context.Background(), req, rollouttest.Baker("1.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	if got := h.tg.AppliedSlots(); !equal(got, []string{"blue=1.0.0@0 green=-", "blue=1.0.0@100 green=-"}) {
		t.Fatalf("applied %v", got)
	}
}

func TestPlanShowsExactlyWhatTheEngineApplies(t *testing.T) {
	h := newHarness()
	req := stepsRequest(rollout.Step{Weight: 10, Pause: time.Minute, Analysis: "errors"}, rollout.Step{Weight: 60}, rollout.Step{Weight: 100})
	req.ScaleDownDelay = time.Minute
	h.analyzer = rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"errors": {rollout.AnalysisSuccessful}})
	cur, exists, _ := h.tg.Current(context.Background())
	rel := fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:2.0.0", Location: "/img/2.0.0"}}
	plan := rollout.Plan(cur, exists, req, rel)

	fin, _ := h.run(t, context.Background(), req, rollouttest.Baker("2.0.0"))
	if fin.Outcome != rollout.Promoted {
		t.Fatalf("outcome %s: %s", fin.Outcome, fin.Message)
	}
	var planned, phases []string
	for _, p := range plan {
		phases = append(phases, string(p.Phase))
		if p.Changes {
			planned = append(planned, rollouttest.Slots(p.Spec))
		}
	}
	if got := h.tg.AppliedSlots(); !equal(planned, got) {
		t.Fatalf("plan\n%v\nengine applied\n%v", planned, got)
	}
	if want := []string{"deploy", "health", "step", "step", "step", "scale-down-delay", "retire"}; !equal(phases, want) {
		t.Fatalf("planned phases %v, want %v", phases, want)
	}
	if plan[2].Waits != "pause 1m0s, then analysis errors" {
		t.Errorf("step 1 waits %q", plan[2].Waits)
	}
}
