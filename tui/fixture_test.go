package tui

import (
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

var t0 = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func f(v float64) *float64 { return &v }

var (
	v1 = fleet.Release{Version: "1.2.0", Image: fleet.Image{Digest: "sha256:1111aaaabbbbccccdddd"}}
	v2 = fleet.Release{Version: "1.3.0", Image: fleet.Image{Digest: "sha256:2222eeeeffff00001111"}}
)

var plan = []PlannedPhase{
	{Phase: rollout.PhaseDeploy}, {Phase: rollout.PhaseHealth},
	{Phase: rollout.PhasePreAnalysis, Waits: "analysis error-rate"},
	{Phase: rollout.PhaseStep, Step: 1, Waits: "pause until promoted or resumed"},
	{Phase: rollout.PhaseStep, Step: 2, Waits: "pause 30s"},
	{Phase: rollout.PhaseStep, Step: 3},
	{Phase: rollout.PhaseRetire},
}

func inst(id string, sl fleet.Slot, st fleet.HealthState, sec float64) fleet.InstanceHealth {
	return fleet.InstanceHealth{ID: id, Slot: sl, Address: "127.0.0.1:9000", State: st, LastCheck: at(sec)}
}

// midRollout is a rollout paused at its first traffic step, with an analysis running.
func midRollout() []rollout.Event {
	return []rollout.Event{
		rollout.RolloutStarted{At: at(0), Service: "web", Target: "local", From: &v1, Slot: fleet.Green},
		rollout.PhaseStarted{At: at(0), Phase: rollout.PhaseBake},
		rollout.Baked{At: at(1.2), Release: v2},
		rollout.PhaseFinished{At: at(1.2), Phase: rollout.PhaseBake, Duration: 1200 * time.Millisecond},
		rollout.PhaseStarted{At: at(1.2), Phase: rollout.PhaseDeploy},
		rollout.ResourceChanged{At: at(1.3), ResourceOp: fleet.ResourceOp{Op: "create", Type: "test:fake:Instance", Name: "web-green-0", Status: fleet.OpStarted}},
		rollout.ResourceChanged{At: at(2.5), ResourceOp: fleet.ResourceOp{Op: "create", Type: "test:fake:Instance", Name: "web-green-0", Status: fleet.OpDone, Duration: 1200 * time.Millisecond}},
		rollout.ResourceChanged{At: at(2.6), ResourceOp: fleet.ResourceOp{Op: "create", Type: "test:fake:Instance", Name: "web-green-1", Status: fleet.OpDone, Duration: 1300 * time.Millisecond}},
		rollout.PhaseFinished{At: at(3.4), Phase: rollout.PhaseDeploy, Duration: 2200 * time.Millisecond},
		rollout.PhaseStarted{At: at(3.4), Phase: rollout.PhaseHealth},
		rollout.HealthChanged{At: at(4), Slot: fleet.Blue, Instances: []fleet.InstanceHealth{
			inst("web-blue-0", fleet.Blue, fleet.Healthy, 3.9), inst("web-blue-1", fleet.Blue, fleet.Healthy, 3.9)}},
		rollout.HealthChanged{At: at(5), Slot: fleet.Green, Instances: []fleet.InstanceHealth{
			inst("web-green-1", fleet.Green, fleet.Healthy, 4.9), inst("web-green-0", fleet.Green, fleet.Healthy, 4.8)}},
		rollout.PhaseFinished{At: at(5), Phase: rollout.PhaseHealth, Duration: 1600 * time.Millisecond},
		rollout.PhaseStarted{At: at(5), Phase: rollout.PhasePreAnalysis},
		rollout.AnalysisMeasured{At: at(6), Analysis: "error-rate", Metric: "errors", Value: f(0.01), Threshold: "< 0.05", Result: "Passed", Passed: 1},
		rollout.AnalysisMeasured{At: at(7), Analysis: "error-rate", Metric: "errors", Value: f(0.03), Threshold: "< 0.05", Result: "Passed", Passed: 2},
		rollout.AnalysisMeasured{At: at(8), Analysis: "error-rate", Metric: "errors", Value: f(0.02), Threshold: "< 0.05", Result: "Passed", Passed: 3},
		rollout.AnalysisFinished{At: at(8), Analysis: "error-rate", Outcome: rollout.AnalysisSuccessful},
		rollout.PhaseFinished{At: at(8), Phase: rollout.PhasePreAnalysis, Duration: 3 * time.Second},
		rollout.PhaseStarted{At: at(8), Phase: rollout.PhaseStep, Step: 1},
		rollout.TrafficShifted{At: at(8.5), Weights: map[fleet.Slot]int{fleet.Blue: 75, fleet.Green: 25}},
		rollout.Paused{At: at(9), Indefinite: true},
	}
}

// failedRollout is one whose new slot never became healthy.
func failedRollout() []rollout.Event {
	evs := midRollout()[:10]
	return append(evs,
		rollout.HealthChanged{At: at(5), Slot: fleet.Green, Instances: []fleet.InstanceHealth{
			{ID: "web-green-0", Slot: fleet.Green, State: fleet.Unhealthy, LastCheck: at(5), Restarts: 3, LastError: "GET /healthz: 500"}}},
		rollout.PhaseFinished{At: at(33.4), Phase: rollout.PhaseHealth, Duration: 30 * time.Second, Error: "2 new instances not healthy after 30s"},
		rollout.PhaseStarted{At: at(33.4), Phase: rollout.PhaseRollback},
		rollout.PhaseFinished{At: at(35), Phase: rollout.PhaseRollback, Duration: 1600 * time.Millisecond},
		rollout.Finished{At: at(35), Outcome: rollout.RolledBack, Reason: rollout.ReasonNotHealthy, Message: "2 new instances not healthy after 30s", Duration: 35 * time.Second, From: &v1, To: &v2, Live: &v1},
	)
}
