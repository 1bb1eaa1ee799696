package rollout_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/rollouttest"
)

// TestAFailedFirstReleaseLeavesNothingBehind fails a first release in every way it can
// fail: with no stable release to go back to, the undo removes everything the release
// created (also what a failed apply created before it failed) and the outcome is failed.
func TestAFailedFirstReleaseLeavesNothingBehind(t *testing.T) {
	broken := func(*rollouttest.Target, *rollout.Engine, *rollout.Request) {}
	for _, tc := range []struct {
		name    string
		arrange func(*rollouttest.Target, *rollout.Engine, *rollout.Request)
		left    *rollout.Checkpoint
		bake    rollout.Baker
		reason  rollout.Reason
		destroy int
	}{
		{name: "bake", bake: rollout.BakeFunc(func(context.Context) (fleet.Release, error) {
			return fleet.Release{}, errors.New("no Go main package")
		}), arrange: broken, reason: rollout.ReasonBakeFailed},
		{name: "deploy", arrange: func(tg *rollouttest.Target, _ *rollout.Engine, _ *rollout.Request) {
			tg.FailApply(0, errors.New("load balancer: listen 127.0.0.1:8080: address already in use"))
		}, reason: rollout.ReasonDeployFailed, destroy: 1},
		{name: "health", arrange: func(tg *rollouttest.Target, _ *rollout.Engine, _ *rollout.Request) {
			tg.Break("1.0.0")
		}, reason: rollout.ReasonNotHealthy, destroy: 1},
		{name: "analysis", arrange: func(_ *rollouttest.Target, e *rollout.Engine, req *rollout.Request) {
			req.PrePromotionAnalysis = "errors"
			e.Analyzer = rollouttest.Verdicts(map[string][]rollout.AnalysisOutcome{"errors": {rollout.AnalysisFailed}})
		}, reason: rollout.ReasonAnalysisFailed, destroy: 1},
		{name: "resumed undo", arrange: func(tg *rollouttest.Target, _ *rollout.Engine, _ *rollout.Request) {
			rel := rollouttest.Release("1.0.0")
			tg.SetSpec(fleet.Spec{Service: "hello", Slots: map[fleet.Slot]fleet.SlotSpec{fleet.Blue: {Release: &rel, Size: 2}}})
		}, left: &rollout.Checkpoint{ID: "x", Slot: fleet.Blue, Desired: rollouttest.Release("1.0.0"), Stage: 1,
			Phase: rollout.PhaseHealth, Aborting: true, Reason: rollout.ReasonNotHealthy, Message: "2 unhealthy"},
			reason: rollout.ReasonNotHealthy, destroy: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := &rollouttest.Target{HealthyAfter: 1}
			req := request()
			e := &rollout.Engine{Target: tg, Clock: &clock.Fake{}}
			tc.arrange(tg, e, &req)
			if tc.left != nil {
				e.Journal = rollouttest.Left(*tc.left)
			}
			b := tc.bake
			if b == nil {
				b = rollouttest.Baker("1.0.0")
			}
			fin := e.Run(context.Background(), req, b)
			if fin.Outcome != rollout.Failed || fin.Reason != tc.reason {
				t.Fatalf("outcome %s/%s (%s), want failed/%s", fin.Outcome, fin.Reason, fin.Message, tc.reason)
			}
			if spec, exists, _ := tg.Current(context.Background()); exists {
				t.Fatalf("left %s behind", rollouttest.Slots(spec))
			}
			if tg.Destroyed() != tc.destroy {
				t.Fatalf("destroyed %d times, want %d", tg.Destroyed(), tc.destroy)
			}
			if fin.Live != nil {
				t.Fatalf("live %v after a failed first release", fin.Live)
			}
		})
	}
}
