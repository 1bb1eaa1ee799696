package rollout

import (
	"fmt"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Request is what one rollout is asked to do.
type Request struct {
	// Template gives the fleet's shape for the new release: service, port, health check,
	// drain timeout, env. Its Slots are ignored.
	Template fleet.Spec
	// Size is the number of instances of the new slot.
	Size int
	// ProgressDeadline bounds every stage but pauses and analyses: no rollout hangs.
	ProgressDeadline time.Duration
	// Steps are the traffic steps; none means one switch to 100%.
	Steps []Step
	// PrePromotionAnalysis and PostPromotionAnalysis name analyses run before any
	// traffic and after 100% ("" for none).
	PrePromotionAnalysis, PostPromotionAnalysis string
	// ScaleDownDelay keeps the old slot after 100% for a fast rollback.
	ScaleDownDelay time.Duration
	// AbortScaleDownDelay keeps the new slot, without traffic, after an abort.
	AbortScaleDownDelay time.Duration
	// Version is the version the baker will produce; Admit, if set, may refuse it
	// against the live release before anything is baked (e.g. a downgrade).
	Version string
	Admit   func(live *fleet.Release, version string) error
}

// Step is one traffic step: the new slot's share of traffic, then a pause, then an
// optional analysis.
type Step struct {
	Weight int
	// Pause holds the step for this long; Indefinite holds it until promoted or resumed.
	Pause      time.Duration
	Indefinite bool
	// Analysis names an analysis to run at this step ("" for none).
	Analysis string
}

// ValidateSteps checks what the engine relies on: weights strictly increasing, last 100.
func ValidateSteps(steps []Step) error {
	prev := 0
	for i, s := range steps {
		if s.Weight <= prev || s.Weight > 100 {
			return fmt.Errorf("step %d: weight %d must be more than %d and at most 100", i+1, s.Weight, prev)
		}
		prev = s.Weight
	}
	if len(steps) > 0 && prev != 100 {
		return fmt.Errorf("the last step must send 100%% of traffic, not %d%%", prev)
	}
	return nil
}

// Command is a control sent to a running rollout.
type Command string

// Controls. Promote skips the remaining steps, pauses and step analyses; abort rolls back.
const (
	CmdPause   Command = "pause"
	CmdResume  Command = "resume"
	CmdPromote Command = "promote"
	CmdAbort   Command = "abort"
)

// Control is a command and where to send whether it was accepted.
type Control struct {
	Command Command
	Reply   chan<- error
}
