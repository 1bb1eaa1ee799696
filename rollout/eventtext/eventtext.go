// Package eventtext says how a rollout's events read to a human, in one place: the line
// printer of the kiln command and the console's log both describe events with it, so a
// rollout reads the same in a CI log and on the console.
package eventtext

import (
	"fmt"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// Layout is how a consumer lays lines out.
type Layout int

const (
	// Plain is one line of prose, for the console's log pane: its banner and keys
	// already show what a human can do.
	Plain Layout = iota
	// Columns is the line printer's layout, for CI logs and terminals without the
	// console: phase names and resource operations padded into columns, a mark on the
	// outcome, the commands that answer a pause, and the release left live.
	Columns
)

// Kind says where a line sits in a log of lines.
type Kind int

const (
	// Detail is a line about what happens inside a phase.
	Detail Kind = iota
	// Timed is a phase starting or ending; a printer stamps it with the time since the
	// rollout started.
	Timed
	// Heading opens or closes a rollout.
	Heading
)

// Line is how one event reads.
type Line struct {
	// Text is the description; with Columns it may hold more than one line.
	Text string
	Kind Kind
	// Bad is set when the event reports something that went wrong.
	Bad bool
	// At is when the event happened.
	At time.Time
}

// Describe says how ev reads in layout l. It reports false for an event that has nothing
// to say (a resource operation starting).
func Describe(ev rollout.Event, l Layout) (Line, bool) {
	cols := l == Columns
	switch e := ev.(type) {
	case rollout.RolloutStarted:
		from := "nothing live"
		if e.From != nil {
			from = e.From.String()
		}
		return Line{At: e.At, Kind: Heading, Text: fmt.Sprintf("rollout %s on %s: live %s; new release goes to slot %s", e.Service, e.Target, from, e.Slot)}, true
	case rollout.PhaseStarted:
		return Line{At: e.At, Kind: Timed, Text: phaseColumn(e.Phase, e.Step, cols) + " started"}, true
	case rollout.PhaseFinished:
		if e.Error != "" {
			return Line{At: e.At, Kind: Timed, Bad: true, Text: fmt.Sprintf("%s FAILED after %s: %s", phaseColumn(e.Phase, e.Step, cols), Round(e.Duration), e.Error)}, true
		}
		return Line{At: e.At, Kind: Timed, Text: fmt.Sprintf("%s done in %s", phaseColumn(e.Phase, e.Step, cols), Round(e.Duration))}, true
	case rollout.Recovered:
		what := "resuming"
		if e.Aborting {
			what = "undoing"
		}
		return Line{At: e.At, Text: fmt.Sprintf("%s rollout %s, left at %s by a kiln that stopped", what, e.ID, Phase(e.Phase, e.Step))}, true
	case rollout.Paused:
		text := "paused until a human decides"
		if !e.Indefinite {
			text = fmt.Sprintf("paused with %s of the pause left", Round(e.Remaining))
		}
		if cols {
			text += ": kiln rollout resume | promote | abort"
		}
		return Line{At: e.At, Text: text}, true
	case rollout.Resumed:
		if e.Promoted {
			return Line{At: e.At, Text: "promoted: remaining steps, pauses and step analyses skipped"}, true
		}
		return Line{At: e.At, Text: "resumed"}, true
	case rollout.AnalysisMeasured:
		v := "n/a"
		if e.Value != nil {
			v = fmt.Sprintf("%.4g", *e.Value)
		}
		reason := ""
		if e.Reason != "" {
			reason = " (" + e.Reason + ")"
		}
		return Line{At: e.At, Text: fmt.Sprintf("analysis %s: %s = %s, want %s: %s%s [%d passed, %d failed, %d inconclusive]",
			e.Analysis, e.Metric, v, e.Threshold, e.Result, reason, e.Passed, e.Failed, e.Inconclusive)}, true
	case rollout.AnalysisFinished:
		return Line{At: e.At, Bad: e.Outcome != rollout.AnalysisSuccessful, Text: fmt.Sprintf("analysis %s: %s %s", e.Analysis, e.Outcome, e.Message)}, true
	case rollout.Healing:
		if e.Error != "" {
			return Line{At: e.At, Bad: true, Text: "repair FAILED: " + e.Error}, true
		}
		return Line{At: e.At, Text: fmt.Sprintf("repairing the target (%s): re-creating what died", e.Cause)}, true
	case rollout.Baked:
		return Line{At: e.At, Text: fmt.Sprintf("baked %s", e.Release)}, true
	case rollout.ResourceChanged:
		op := e.Op
		if cols {
			op = fmt.Sprintf("%-18s", op)
		}
		switch e.Status {
		case fleet.OpDone:
			return Line{At: e.At, Text: fmt.Sprintf("%s %s %s (%s)", op, ShortType(e.Type), e.Name, Round(e.Duration))}, true
		case fleet.OpFailed:
			return Line{At: e.At, Bad: true, Text: fmt.Sprintf("%s %s %s FAILED: %s", op, ShortType(e.Type), e.Name, e.Error)}, true
		}
		return Line{}, false
	case rollout.HealthChanged:
		return Line{At: e.At, Text: fmt.Sprintf("slot %s: %s", e.Slot, Instances(e.Instances))}, true
	case rollout.TrafficShifted:
		return Line{At: e.At, Text: fmt.Sprintf("traffic: blue %d%% / green %d%%", e.Weights[fleet.Blue], e.Weights[fleet.Green])}, true
	case rollout.Finished:
		return finished(e, cols), true
	}
	return Line{}, false
}

func finished(e rollout.Finished, cols bool) Line {
	ok := e.Outcome == rollout.Promoted || e.Outcome == rollout.Unchanged
	reason := ""
	if e.Reason != "" {
		reason = " [" + string(e.Reason) + "]"
	}
	text := fmt.Sprintf("%s%s in %s: %s", e.Outcome, reason, Round(e.Duration), e.Message)
	if cols {
		mark := "OK"
		switch e.Outcome {
		case rollout.RolledBack, rollout.Failed, rollout.Interrupted:
			mark = "FAILED"
		case rollout.RollbackFailed:
			mark = "NEEDS ATTENTION"
		}
		text = mark + " " + text
		switch {
		case e.Live != nil:
			text += "\nlive: " + e.Live.String()
		case e.Outcome == rollout.Failed:
			text += "\nnothing is live: what the release created was removed"
		}
	}
	return Line{At: e.At, Kind: Heading, Bad: !ok, Text: text}
}

// phaseColumn is a phase's name, padded to a column in the Columns layout.
func phaseColumn(ph rollout.Phase, step int, cols bool) string {
	if cols {
		return fmt.Sprintf("%-8s", Phase(ph, step))
	}
	return Phase(ph, step)
}

// Phase names a phase, with its step number for a traffic step ("step 2").
func Phase(ph rollout.Phase, step int) string {
	if step > 0 {
		return fmt.Sprintf("%s %d", ph, step)
	}
	return string(ph)
}

// Round rounds a duration for reading: to the second above 10s, else to 10ms.
func Round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// ShortType is a resource type without its package ("pkg:module:Instance" → "Instance").
func ShortType(t string) string {
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		return t[i+1:]
	}
	return t
}

// Instances says how many of a slot's instances are healthy, the states of the others,
// and the last error seen.
func Instances(hs []fleet.InstanceHealth) string {
	healthy := 0
	var others []string
	lastErr := ""
	for _, h := range hs {
		if h.State == fleet.Healthy {
			healthy++
		} else {
			others = append(others, string(h.State))
		}
		if h.LastError != "" {
			lastErr = h.LastError
		}
	}
	s := fmt.Sprintf("%d/%d healthy", healthy, len(hs))
	if len(others) > 0 {
		s += " (" + strings.Join(others, ", ") + ")"
	}
	if lastErr != "" {
		s += "; last error: " + lastErr
	}
	return s
}
