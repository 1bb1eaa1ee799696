package rollout

import (
	"reflect"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

func TestEveryEventSurvivesMarshalAndUnmarshal(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	rel := &fleet.Release{Version: "2.0.0", Image: fleet.Image{Digest: "sha256:ab", Location: "/img"}}
	v := 0.25
	for _, ev := range []Event{
		RolloutStarted{At: at, Service: "shop", Target: "local", From: rel, Slot: fleet.Green},
		PhaseStarted{At: at, Phase: PhaseStep, Step: 2},
		PhaseFinished{At: at, Phase: PhaseHealth, Duration: time.Second, Error: "x"},
		Baked{At: at, Release: *rel},
		ResourceChanged{At: at, ResourceOp: fleet.ResourceOp{Op: "create", Type: "kiln:local:Instance", Name: "i", Status: fleet.OpDone, Duration: time.Millisecond}},
		HealthChanged{At: at, Slot: fleet.Blue, Instances: []fleet.InstanceHealth{{ID: "a", Slot: fleet.Blue, State: fleet.Healthy, LastCheck: at}}},
		TrafficShifted{At: at, Weights: map[fleet.Slot]int{fleet.Blue: 90, fleet.Green: 10}},
		Recovered{At: at, ID: "r1", Phase: PhaseDeploy, Aborting: true},
		Healing{At: at, Cause: "c", Error: "e"},
		Paused{At: at, Remaining: time.Minute, Indefinite: true},
		Resumed{At: at, Promoted: true},
		AnalysisMeasured{At: at, Analysis: "errors", Metric: "error-ratio", Value: &v, Threshold: "<= 0.01", Result: "Failed", Failed: 1},
		AnalysisFinished{At: at, Analysis: "errors", Outcome: AnalysisFailed, Message: "m"},
		Finished{At: at, ID: "r1", Outcome: RolledBack, Reason: ReasonAborted, To: rel, Duration: time.Second, Phases: []PhaseFinished{{Phase: PhaseDeploy}}},
	} {
		b, err := MarshalEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", ev.EventName(), err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: got %#v, want %#v", ev.EventName(), back, ev)
		}
	}
	if _, err := UnmarshalEvent([]byte(`{"event":"nope"}`)); err == nil {
		t.Error("an unknown event decoded")
	}
}
