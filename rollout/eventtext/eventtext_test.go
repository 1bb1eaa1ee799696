package eventtext_test

import (
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/eventtext"
)

// Every event the engine sends reads as something, in both layouts.
func TestEveryEventIsDescribed(t *testing.T) {
	for _, ev := range rollout.EventTypes() {
		if rc, ok := ev.(rollout.ResourceChanged); ok {
			rc.Status = fleet.OpDone
			ev = rc
		}
		for _, l := range []eventtext.Layout{eventtext.Plain, eventtext.Columns} {
			if line, ok := eventtext.Describe(ev, l); !ok || line.Text == "" {
				t.Errorf("%s has no description in layout %d", ev.EventName(), l)
			}
		}
	}
}

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	live := &fleet.Release{Version: "1.0.0", Image: fleet.Image{Digest: "sha256:aaaaaaaaaaaaaaaa"}}
	for _, tc := range []struct {
		ev           rollout.Event
		plain, cols  string
		kind         eventtext.Kind
		bad, nothing bool
	}{
		{ev: rollout.PhaseStarted{At: at, Phase: rollout.PhaseStep, Step: 2}, kind: eventtext.Timed,
			plain: "step 2 started", cols: "step 2   started"},
		{ev: rollout.PhaseFinished{At: at, Phase: rollout.PhaseHealth, Duration: 1234 * time.Millisecond, Error: "not healthy"}, kind: eventtext.Timed, bad: true,
			plain: "health FAILED after 1.23s: not healthy", cols: "health   FAILED after 1.23s: not healthy"},
		{ev: rollout.Paused{At: at, Remaining: 90 * time.Second},
			plain: "paused with 1m30s of the pause left", cols: "paused with 1m30s of the pause left: kiln rollout resume | promote | abort"},
		{ev: rollout.ResourceChanged{At: at, ResourceOp: fleet.ResourceOp{Op: "create", Type: "test:fake:Instance", Name: "i", Status: fleet.OpFailed, Error: "exit 1"}}, bad: true,
			plain: "create Instance i FAILED: exit 1", cols: "create             Instance i FAILED: exit 1"},
		{ev: rollout.ResourceChanged{At: at, ResourceOp: fleet.ResourceOp{Op: "create", Status: fleet.OpStarted}}, nothing: true},
		{ev: rollout.AnalysisFinished{At: at, Analysis: "errors", Outcome: rollout.AnalysisInconclusive, Message: "too few requests"}, bad: true,
			plain: "analysis errors: inconclusive too few requests", cols: "analysis errors: inconclusive too few requests"},
		{ev: rollout.HealthChanged{At: at, Slot: fleet.Green, Instances: []fleet.InstanceHealth{{State: fleet.Healthy}, {State: fleet.Unhealthy, LastError: "HTTP 500"}}},
			plain: "slot green: 1/2 healthy (unhealthy); last error: HTTP 500", cols: "slot green: 1/2 healthy (unhealthy); last error: HTTP 500"},
		{ev: rollout.Finished{At: at, Outcome: rollout.RollbackFailed, Reason: rollout.ReasonStableUnhealthy, Message: "m", Duration: 12600 * time.Millisecond, Live: live}, kind: eventtext.Heading, bad: true,
			plain: "rollback-failed [StableSlotUnhealthy] in 13s: m", cols: "NEEDS ATTENTION rollback-failed [StableSlotUnhealthy] in 13s: m\nlive: 1.0.0 (aaaaaaaaaaaa)"},
		{ev: rollout.Finished{At: at, Outcome: rollout.Failed, Reason: rollout.ReasonDeployFailed, Message: "m", Duration: time.Second}, kind: eventtext.Heading, bad: true,
			plain: "failed [DeployFailed] in 1s: m", cols: "FAILED failed [DeployFailed] in 1s: m\nnothing is live: what the release created was removed"},
		{ev: rollout.Finished{At: at, Outcome: rollout.Unchanged, Message: "1.0.0 is already live"}, kind: eventtext.Heading,
			plain: "unchanged in 0s: 1.0.0 is already live", cols: "OK unchanged in 0s: 1.0.0 is already live"},
	} {
		for _, l := range []struct {
			layout eventtext.Layout
			want   string
		}{{eventtext.Plain, tc.plain}, {eventtext.Columns, tc.cols}} {
			line, ok := eventtext.Describe(tc.ev, l.layout)
			if tc.nothing {
				if ok {
					t.Errorf("%s: %q, want nothing", tc.ev.EventName(), line.Text)
				}
				continue
			}
			if !ok || line.Text != l.want || line.Kind != tc.kind || line.Bad != tc.bad || !line.At.Equal(at) {
				t.Errorf("%s in layout %d: %+v, want %q kind %d bad %v", tc.ev.EventName(), l.layout, line, l.want, tc.kind, tc.bad)
			}
		}
	}
}
