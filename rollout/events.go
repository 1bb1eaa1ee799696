package rollout

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Phase is one step of a rollout.
type Phase string

// The phases of a blue-green rollout, in order, and the one that undoes a failed release.
const (
	PhaseBake           Phase = "bake"
	PhaseDeploy         Phase = "deploy"
	PhaseHealth         Phase = "health"
	PhasePreAnalysis    Phase = "pre-promotion-analysis"
	PhaseStep           Phase = "step"
	PhasePostAnalysis   Phase = "post-promotion-analysis"
	PhaseScaleDownDelay Phase = "scale-down-delay"
	PhaseRetire         Phase = "retire"
	PhaseRollback       Phase = "rollback"
)

// Outcome is how a rollout ended.
type Outcome string

// Outcomes. Each maps to one exit code of the kiln command.
const (
	// Promoted: the new release serves all traffic.
	Promoted Outcome = "promoted"
	// Unchanged: the release asked for is already live.
	Unchanged Outcome = "unchanged"
	// RolledBack: the new release failed; traffic stayed on (or went back to) the stable one.
	RolledBack Outcome = "rolled-back"
	// Failed: the new release failed and there was no stable release behind it (a first
	// release): whatever it created was removed, nothing serves.
	Failed Outcome = "failed"
	// RollbackFailed: the new release failed and undoing it failed too; a human must look.
	RollbackFailed Outcome = "rollback-failed"
	// Interrupted: the rollout was cancelled (SIGINT/SIGTERM) and stopped on the stable slot.
	Interrupted Outcome = "interrupted"
	// Refused: the release was not admitted (e.g. older than the live one); nothing changed.
	Refused Outcome = "refused"
)

// Reason says why a rollout did not promote. Reasons are named constants so CI and
// people can match on them.
type Reason string

// Reasons.
const (
	ReasonBakeFailed      Reason = "BakeFailed"
	ReasonDeployFailed    Reason = "DeployFailed"
	ReasonNotHealthy      Reason = "NewSlotNotHealthy"
	ReasonSwitchFailed    Reason = "TrafficSwitchFailed"
	ReasonRetireFailed    Reason = "RetireFailed"
	ReasonStableUnhealthy Reason = "StableSlotUnhealthy"
	ReasonCancelled       Reason = "Cancelled"
	ReasonTargetFailed    Reason = "TargetUnavailable"
	// ReasonNewSlotUnhealthy: the new slot lost its health while it carried traffic.
	ReasonNewSlotUnhealthy Reason = "NewSlotUnhealthy"
	ReasonProgressDeadline Reason = "ProgressDeadlineExceeded"
	ReasonAnalysisFailed   Reason = "AnalysisFailed"
	ReasonAborted          Reason = "Aborted"
	ReasonInvalid          Reason = "InvalidRequest"
	ReasonJournalFailed    Reason = "JournalFailed"
	// ReasonSuperseded: a killed rollout was undone because another release was asked for.
	ReasonSuperseded Reason = "Superseded"
	// ReasonRefused: the request's Admit refused the release.
	ReasonRefused Reason = "Refused"
)

// Event is something the engine reports while it works. Consumers (the line printer, the
// JSON printer, the console) switch on the concrete type.
type Event interface {
	// EventName is the event's name in JSON output.
	EventName() string
}

// RolloutStarted opens every rollout.
type RolloutStarted struct {
	At      time.Time      `json:"at"`
	Service string         `json:"service"`
	Target  string         `json:"target"`
	From    *fleet.Release `json:"from,omitempty"`
	Slot    fleet.Slot     `json:"slot"`
}

// PhaseStarted reports a phase beginning. Step numbers traffic steps from 1.
type PhaseStarted struct {
	At    time.Time `json:"at"`
	Phase Phase     `json:"phase"`
	Step  int       `json:"step,omitempty"`
}

// PhaseFinished reports a phase's end, its duration, and its error if it failed.
type PhaseFinished struct {
	At       time.Time     `json:"at"`
	Phase    Phase         `json:"phase"`
	Step     int           `json:"step,omitempty"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// Recovered reports that a rollout a killed kiln left behind is being resumed (or, when
// Aborting, undone).
type Recovered struct {
	At       time.Time `json:"at"`
	ID       string    `json:"id"`
	Phase    Phase     `json:"phase"`
	Step     int       `json:"step,omitempty"`
	Aborting bool      `json:"aborting,omitempty"`
}

// Paused reports a hold that waits for a human, or a pause a human asked for.
type Paused struct {
	At time.Time `json:"at"`
	// Remaining is what is left of a timed pause.
	Remaining  time.Duration `json:"remaining,omitempty"`
	Indefinite bool          `json:"indefinite,omitempty"`
}

// Resumed reports the end of a pause; Promoted when a promote ended it.
type Resumed struct {
	At       time.Time `json:"at"`
	Promoted bool      `json:"promoted,omitempty"`
}

// AnalysisMeasured is one measurement of one metric of an analysis.
type AnalysisMeasured struct {
	At       time.Time `json:"at"`
	Analysis string    `json:"analysis"`
	Metric   string    `json:"metric"`
	// Value is nil when there was nothing to measure.
	Value        *float64 `json:"value,omitempty"`
	Threshold    string   `json:"threshold"`
	Result       string   `json:"result"`
	Reason       string   `json:"reason,omitempty"`
	Passed       int      `json:"passed"`
	Failed       int      `json:"failed"`
	Inconclusive int      `json:"inconclusive"`
}

// Healing reports that the target is being repaired because health could not be read
// (Error is set when the repair failed).
type Healing struct {
	At    time.Time `json:"at"`
	Cause string    `json:"cause"`
	Error string    `json:"error,omitempty"`
}

// AnalysisFinished is an analysis' verdict.
type AnalysisFinished struct {
	At       time.Time       `json:"at"`
	Analysis string          `json:"analysis"`
	Outcome  AnalysisOutcome `json:"outcome"`
	Message  string          `json:"message,omitempty"`
}

// Baked reports the release that is being rolled out.
type Baked struct {
	At      time.Time     `json:"at"`
	Release fleet.Release `json:"release"`
}

// ResourceChanged is one resource operation of the target's engine.
type ResourceChanged struct {
	At time.Time `json:"at"`
	fleet.ResourceOp
}

// HealthChanged reports the instances of a slot whenever their health changes.
type HealthChanged struct {
	At        time.Time              `json:"at"`
	Slot      fleet.Slot             `json:"slot"`
	Instances []fleet.InstanceHealth `json:"instances"`
}

// TrafficShifted reports the weights now in effect.
type TrafficShifted struct {
	At      time.Time          `json:"at"`
	Weights map[fleet.Slot]int `json:"weights"`
}

// Finished closes every rollout.
type Finished struct {
	At time.Time `json:"at"`
	// ID names the rollout (also in history); empty if it never started a checkpoint.
	ID       string         `json:"id,omitempty"`
	Outcome  Outcome        `json:"outcome"`
	Reason   Reason         `json:"reason,omitempty"`
	Message  string         `json:"message,omitempty"`
	From     *fleet.Release `json:"from,omitempty"`
	To       *fleet.Release `json:"to,omitempty"`
	Live     *fleet.Release `json:"live,omitempty"`
	Duration time.Duration  `json:"duration"`
	// Phases holds each phase's duration, in the order they ran.
	Phases []PhaseFinished `json:"phases"`
}

// eventTypes holds one zero value of every event type: the one list of the events there
// are. UnmarshalEvent and the tests derive from it; a test checks that every type with an
// EventName method is in it.
var eventTypes = []Event{
	RolloutStarted{}, PhaseStarted{}, PhaseFinished{}, Baked{}, ResourceChanged{},
	HealthChanged{}, TrafficShifted{}, Finished{}, Recovered{}, Healing{}, Paused{},
	Resumed{}, AnalysisMeasured{}, AnalysisFinished{},
}

// EventTypes returns a zero value of every event type.
func EventTypes() []Event { return slices.Clone(eventTypes) }

func (RolloutStarted) EventName() string   { return "rollout-started" }
func (PhaseStarted) EventName() string     { return "phase-started" }
func (PhaseFinished) EventName() string    { return "phase-finished" }
func (Baked) EventName() string            { return "baked" }
func (ResourceChanged) EventName() string  { return "resource" }
func (HealthChanged) EventName() string    { return "health" }
func (TrafficShifted) EventName() string   { return "traffic" }
func (Finished) EventName() string         { return "finished" }
func (Recovered) EventName() string        { return "recovered" }
func (Healing) EventName() string          { return "healing" }
func (Paused) EventName() string           { return "paused" }
func (Resumed) EventName() string          { return "resumed" }
func (AnalysisMeasured) EventName() string { return "analysis-measured" }
func (AnalysisFinished) EventName() string { return "analysis-finished" }

// MarshalEvent encodes an event as one JSON object with its name in "event".
func MarshalEvent(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	name, _ := json.Marshal(e.EventName())
	out := make([]byte, 0, len(b)+len(name)+10)
	out = append(out, `{"event":`...)
	out = append(out, name...)
	if len(b) > 2 {
		out = append(out, ',')
		out = append(out, b[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}
