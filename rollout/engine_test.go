package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
)

// fakeTarget applies specs in memory; instances of a slot become healthy after
// healthyAfter health reads unless the slot's release version is in broken.
type fakeTarget struct {
	mu           sync.Mutex
	spec         fleet.Spec
	exists       bool
	applied      []fleet.Spec
	failApply    map[int]error // by the index of the apply call
	broken       map[string]bool
	healthReads  int
	healthyAfter int
	onHealth     func()
}

func (f *fakeTarget) Name() string { return "fake" }

func (f *fakeTarget) Current(context.Context) (fleet.Spec, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spec.Clone(), f.exists, nil
}

func (f *fakeTarget) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(f.applied)
	f.applied = append(f.applied, spec.Clone())
	if err := f.failApply[n]; err != nil {
		return err
	}
	ops(fleet.ResourceOp{Op: "update", Type: "fake:Fleet", Name: spec.Service, Status: fleet.OpDone})
	f.spec, f.exists = spec.Clone(), true
	return nil
}

func (f *fakeTarget) Health(context.Context) ([]fleet.InstanceHealth, error) {
	f.mu.Lock()
	f.healthReads++
	reads := f.healthReads
	var hs []fleet.InstanceHealth
	for _, sl := range fleet.Slots {
		sp := f.spec.Slots[sl]
		if sp.Empty() {
			continue
		}
		for i := 0; i < sp.Size; i++ {
			st := fleet.Initial
			if reads > f.healthyAfter {
				st = fleet.Healthy
			}
			if f.broken[sp.Release.Version] {
				st = fleet.Unhealthy
			}
			hs = append(hs, fleet.InstanceHealth{ID: string(sl) + string(rune('0'+i)), Slot: sl, State: st, LastError: map[bool]string{true: "HTTP 500"}[st == fleet.Unhealthy]})
		}
	}
	cb := f.onHealth
	f.mu.Unlock()
	if cb != nil {
		cb()
	}
	return hs, nil
}

func (f *fakeTarget) Endpoint(context.Context) (string, error) { return "127.0.0.1:1", nil }

func (f *fakeTarget) Destroy(context.Context, func(fleet.ResourceOp)) error { return nil }

func request() Request {
	return Request{
		Template: fleet.Spec{Service: "hello", Port: 8080, DrainTimeout: time.Second,
			Health: fleet.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}},
		Size:             2,
		ProgressDeadline: 30 * time.Second,
	}
}

func release(v string) Baker {
	return BakeFunc(func(context.Context) (fleet.Release, error) {
		return fleet.Release{Version: v, Image: fleet.Image{Digest: "sha256:" + v, Location: "/img/" + v}}, nil
	})
}

// runEngine runs one rollout and returns its result and every event it sent.
func runEngine(t *testing.T, ctx context.Context, tg *fakeTarget, b Baker, clk *clock.Fake) (Finished, []Event) {
	t.Helper()
	ch := make(chan Event)
	var evs []Event
	done := make(chan struct{})
	go func() {
		for ev := range ch {
			evs = append(evs, ev)
		}
		close(done)
	}()
	e := &Engine{Target: tg, Events: ch, Clock: clk}
	fin := e.Run(ctx, request(), b)
	close(ch)
	<-done
	return fin, evs
}

func phasesOf(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if pf, ok := ev.(PhaseFinished); ok {
			s := string(pf.Phase)
			if pf.Error != "" {
				s += "!"
			}
			out = append(out, s)
		}
	}
	return out
}

func slotsOf(s fleet.Spec) string {
	var parts []string
	for _, sl := range fleet.Slots {
		sp := s.Slots[sl]
		if sp.Empty() {
			parts = append(parts, string(sl)+"=-")
			continue
		}
		parts = append(parts, string(sl)+"="+sp.Release.Version+"@"+itoa(sp.Weight))
	}
	return strings.Join(parts, " ")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func applied(tg *fakeTarget) []string {
	var out []string
	for _, s := range tg.applied {
		out = append(out, slotsOf(s))
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "|") == strings.Join(b, "|") }

func TestFirstRolloutPromotesOnBlue(t *testing.T) {
	tg := &fakeTarget{healthyAfter: 2}
	fin, evs := runEngine(t, context.Background(), tg, release("1.0.0"), &clock.Fake{})
	if fin.Outcome != Promoted {
		t.Fatalf("outcome = %s (%s), want promoted", fin.Outcome, fin.Message)
	}
	want := []string{"blue=1.0.0@0 green=-", "blue=1.0.0@100 green=-"}
	if got := applied(tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if _, ok := evs[len(evs)-1].(Finished); !ok {
		t.Fatalf("last event is %T, want Finished", evs[len(evs)-1])
	}
	if fin.Live == nil || fin.Live.Version != "1.0.0" {
		t.Fatalf("live = %v, want 1.0.0", fin.Live)
	}
}

func liveOnBlue(v string) *fakeTarget {
	rel := &fleet.Release{Version: v, Image: fleet.Image{Digest: "sha256:" + v, Location: "/img/" + v}}
	return &fakeTarget{exists: true, healthyAfter: 1, spec: fleet.Spec{Service: "hello", Slots: map[fleet.Slot]fleet.SlotSpec{
		fleet.Blue: {Release: rel, Size: 2, Weight: 100}}}}
}

func TestBlueGreenOrderNewSlotHealthyBeforeTrafficOldRetiredLast(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, evs := runEngine(t, context.Background(), tg, release("2.0.0"), &clock.Fake{})
	if fin.Outcome != Promoted {
		t.Fatalf("outcome = %s (%s)", fin.Outcome, fin.Message)
	}
	want := []string{
		"blue=1.0.0@100 green=2.0.0@0",
		"blue=1.0.0@0 green=2.0.0@100",
		"blue=- green=2.0.0@100",
	}
	if got := applied(tg); !equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if got, want := phasesOf(evs), []string{"bake", "deploy", "health", "step", "retire"}; !equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	// Traffic moved only after a health report with every new instance healthy.
	healthyBeforeSwitch := false
	for _, ev := range evs {
		if h, ok := ev.(HealthChanged); ok && fleet.AllHealthy(h.Instances, 2) {
			healthyBeforeSwitch = true
		}
		if ps, ok := ev.(PhaseStarted); ok && ps.Phase == PhaseStep && !healthyBeforeSwitch {
			t.Fatal("switch started before the new slot was reported healthy")
		}
	}
	if fin.From == nil || fin.From.Version != "1.0.0" || fin.To.Version != "2.0.0" {
		t.Fatalf("from %v to %v", fin.From, fin.To)
	}
}

func TestUnhealthyReleaseIsRemovedAtTheDeadlineAndTrafficNeverMoves(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.broken = map[string]bool{"3.0.0": true}
	clk := &clock.Fake{}
	fin, evs := runEngine(t, context.Background(), tg, release("3.0.0"), clk)
	if fin.Outcome != RolledBack || fin.Reason != ReasonNotHealthy {
		t.Fatalf("outcome = %s/%s, want rolled-back/NewSlotNotHealthy", fin.Outcome, fin.Reason)
	}
	if !strings.Contains(fin.Message, "HTTP 500") || !strings.Contains(fin.Message, "2 unhealthy") {
		t.Errorf("message does not say what failed: %q", fin.Message)
	}
	want := []string{"blue=1.0.0@100 green=3.0.0@0", "blue=1.0.0@100 green=-"}
	if got := applied(tg); !equal(got, want) {
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
	tg.failApply = map[int]error{0: errors.New("instance would not start")}
	fin, _ := runEngine(t, context.Background(), tg, release("2.0.0"), &clock.Fake{})
	if fin.Outcome != RolledBack || fin.Reason != ReasonDeployFailed {
		t.Fatalf("outcome = %s/%s", fin.Outcome, fin.Reason)
	}
	if got := applied(tg); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("last apply %v", got)
	}
}

func TestFailedRollbackNeedsAHuman(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.failApply = map[int]error{0: errors.New("boom"), 1: errors.New("engine down")}
	fin, _ := runEngine(t, context.Background(), tg, release("2.0.0"), &clock.Fake{})
	if fin.Outcome != RollbackFailed {
		t.Fatalf("outcome = %s", fin.Outcome)
	}
	if !strings.Contains(fin.Message, "engine down") {
		t.Fatalf("message %q hides the rollback error", fin.Message)
	}
}

func TestCancelDuringHealthStopsOnTheStableSlot(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	tg.healthyAfter = 1000
	ctx, cancel := context.WithCancel(context.Background())
	tg.onHealth = cancel
	fin, _ := runEngine(t, ctx, tg, release("2.0.0"), &clock.Fake{})
	if fin.Outcome != Interrupted || fin.Reason != ReasonCancelled {
		t.Fatalf("outcome = %s/%s", fin.Outcome, fin.Reason)
	}
	if got := applied(tg); got[len(got)-1] != "blue=1.0.0@100 green=-" {
		t.Fatalf("rollback was not applied after cancel: %v", got)
	}
}

func TestSameReleaseIsUnchanged(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, _ := runEngine(t, context.Background(), tg, release("1.0.0"), &clock.Fake{})
	if fin.Outcome != Unchanged || len(tg.applied) != 0 {
		t.Fatalf("outcome %s with %d applies", fin.Outcome, len(tg.applied))
	}
}

func TestBakeFailureChangesNothing(t *testing.T) {
	tg := liveOnBlue("1.0.0")
	fin, _ := runEngine(t, context.Background(), tg, BakeFunc(func(context.Context) (fleet.Release, error) {
		return fleet.Release{}, errors.New("compile error")
	}), &clock.Fake{})
	if fin.Outcome != RolledBack || fin.Reason != ReasonBakeFailed || len(tg.applied) != 0 {
		t.Fatalf("outcome %s/%s with %d applies", fin.Outcome, fin.Reason, len(tg.applied))
	}
}

func TestMarshalEventNamesTheEvent(t *testing.T) {
	b, err := MarshalEvent(PhaseFinished{Phase: PhaseHealth, Duration: time.Second, Error: "x"})
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
