package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
)

// Caps on everything the console keeps, so memory stays bounded whatever the engine sends.
const (
	maxPhases    = 64
	maxInstances = 32 // per slot
	maxMetrics   = 16
	maxSamples   = 24 // values per metric, for the sparkline
	maxResources = 64
	maxLogLines  = 500
	maxTextLen   = 240 // longest error or message kept
)

// phaseState is where a phase of the timeline is.
type phaseState int

const (
	pending phaseState = iota
	running
	done
	failed
	skipped
)

// PlannedPhase is one phase the caller expects the rollout to run (rollout.Plan gives
// them); the console shows them as pending until they start.
type PlannedPhase struct {
	Phase rollout.Phase
	Step  int
	Waits string
}

type phaseRow struct {
	phase   rollout.Phase
	step    int
	waits   string
	state   phaseState
	started time.Time
	dur     time.Duration
	err     string
}

type metric struct {
	analysis, name      string
	value               *float64
	threshold, result   string
	reason              string
	passed, failed, inc int
	samples             ring[float64]
}

type resourceRow struct {
	at time.Time
	op fleet.ResourceOp
}

type logLine struct {
	at   time.Time
	text string
	bad  bool
}

// problem is an error shown in place: what failed, why, and what to do.
type problem struct {
	what, why, todo string
}

// state is everything the console knows about the rollout, built from its events only.
type state struct {
	service, target string
	slot            fleet.Slot
	from, to        *fleet.Release
	started         time.Time
	phases          []phaseRow
	weights         map[fleet.Slot]int
	instances       map[fleet.Slot][]fleet.InstanceHealth
	metrics         []*metric
	resources       ring[resourceRow]
	log             ring[logLine]
	paused          *rollout.Paused
	healing         string
	fin             *rollout.Finished
	problem         *problem
	events          int
}

func newState(plan []PlannedPhase) *state {
	s := &state{
		weights:   map[fleet.Slot]int{},
		instances: map[fleet.Slot][]fleet.InstanceHealth{},
		resources: newRing[resourceRow](maxResources),
		log:       newRing[logLine](maxLogLines),
	}
	s.phases = append(s.phases, phaseRow{phase: rollout.PhaseBake})
	for _, p := range plan {
		if len(s.phases) == maxPhases {
			break
		}
		s.phases = append(s.phases, phaseRow{phase: p.Phase, step: p.Step, waits: p.Waits})
	}
	return s
}

// next forgets the last rollout, but not the log, for the next one on the same stream.
func (s *state) next() {
	n := newState(nil)
	n.log, n.events = s.log, s.events
	*s = *n
}

func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > maxTextLen {
		return s[:maxTextLen] + "…"
	}
	return s
}

func (s *state) logf(at time.Time, bad bool, format string, args ...any) {
	s.log.push(logLine{at: at, bad: bad, text: clip(fmt.Sprintf(format, args...))})
}

// row returns the timeline row of a phase, adding it (before the rollback row, if any)
// when the plan did not list it.
func (s *state) row(ph rollout.Phase, step int) *phaseRow {
	for i := range s.phases {
		if s.phases[i].phase == ph && s.phases[i].step == step {
			return &s.phases[i]
		}
	}
	if len(s.phases) == maxPhases {
		s.phases = s.phases[1:]
	}
	s.phases = append(s.phases, phaseRow{phase: ph, step: step})
	return &s.phases[len(s.phases)-1]
}

// apply folds one event into the state. It never renders: rendering waits for the
// next frame, so a burst of events costs one redraw.
func (s *state) apply(ev rollout.Event) {
	s.events++
	switch e := ev.(type) {
	case rollout.RolloutStarted:
		if s.service != "" {
			s.next()
		}
		s.service, s.target, s.slot, s.started = e.Service, e.Target, e.Slot, e.At
		s.from = e.From
		from := "nothing live"
		if e.From != nil {
			from = e.From.String()
		}
		s.logf(e.At, false, "rollout %s on %s: live %s; new release goes to slot %s", e.Service, e.Target, from, e.Slot)
	case rollout.Recovered:
		what := "resuming"
		if e.Aborting {
			what = "undoing"
		}
		s.logf(e.At, false, "%s rollout %s, left at %s by a kiln that stopped", what, e.ID, phaseName(e.Phase, e.Step))
	case rollout.PhaseStarted:
		// A pause lives inside one phase: a phase starting or ending means it is over
		// (an abort ends a pause without a Resumed).
		s.paused = nil
		r := s.row(e.Phase, e.Step)
		r.state, r.started, r.dur, r.err = running, e.At, 0, ""
		// Phases listed before this one that never ran were skipped (a promote skips steps).
		for i := range s.phases {
			if &s.phases[i] == r {
				break
			}
			if s.phases[i].state == pending && e.Phase != rollout.PhaseRollback {
				s.phases[i].state = skipped
			}
		}
		s.logf(e.At, false, "%s started", phaseName(e.Phase, e.Step))
	case rollout.PhaseFinished:
		s.paused = nil
		r := s.row(e.Phase, e.Step)
		r.dur = e.Duration
		if e.Error != "" {
			r.state, r.err = failed, clip(e.Error)
			s.problem = &problem{what: phaseName(e.Phase, e.Step) + " failed", why: r.err,
				todo: "kiln is sending traffic back to the stable slot; watch the rollback below"}
			s.logf(e.At, true, "%s FAILED after %s: %s", phaseName(e.Phase, e.Step), round(e.Duration), e.Error)
		} else {
			r.state = done
			s.logf(e.At, false, "%s done in %s", phaseName(e.Phase, e.Step), round(e.Duration))
		}
	case rollout.Baked:
		rel := e.Release
		s.to = &rel
		s.logf(e.At, false, "baked %s", rel)
	case rollout.Paused:
		p := e
		s.paused = &p
		if e.Indefinite {
			s.logf(e.At, false, "paused until a human decides")
		} else {
			s.logf(e.At, false, "paused with %s of the pause left", round(e.Remaining))
		}
	case rollout.Resumed:
		s.paused = nil
		if e.Promoted {
			s.logf(e.At, false, "promoted: remaining steps, pauses and step analyses skipped")
		} else {
			s.logf(e.At, false, "resumed")
		}
	case rollout.Healing:
		if e.Error != "" {
			s.healing = ""
			s.problem = &problem{what: "repair failed", why: clip(e.Error), todo: "check kiln status; the rollout will roll back if health does not return"}
			s.logf(e.At, true, "repair FAILED: %s", e.Error)
		} else {
			s.healing = clip(e.Cause)
			s.logf(e.At, false, "repairing the target (%s)", e.Cause)
		}
	case rollout.AnalysisMeasured:
		s.measure(e)
	case rollout.AnalysisFinished:
		bad := e.Outcome != rollout.AnalysisSuccessful
		s.logf(e.At, bad, "analysis %s: %s %s", e.Analysis, e.Outcome, e.Message)
	case rollout.ResourceChanged:
		s.resourceOp(e)
		switch e.Status {
		case fleet.OpDone:
			s.logf(e.At, false, "%s %s %s (%s)", e.Op, shortType(e.Type), e.Name, round(e.Duration))
		case fleet.OpFailed:
			s.logf(e.At, true, "%s %s %s FAILED: %s", e.Op, shortType(e.Type), e.Name, e.Error)
		}
	case rollout.HealthChanged:
		s.setInstances(e.Slot, e.Instances)
		s.healing = ""
	case rollout.TrafficShifted:
		for _, sl := range fleet.Slots {
			s.weights[sl] = e.Weights[sl]
		}
		s.logf(e.At, false, "traffic: blue %d%% / green %d%%", e.Weights[fleet.Blue], e.Weights[fleet.Green])
	case rollout.Finished:
		f := e
		f.Message = clip(f.Message)
		s.fin, s.paused, s.healing = &f, nil, ""
		for i := range s.phases {
			if s.phases[i].state == pending {
				s.phases[i].state = skipped
			}
		}
		if e.To != nil && s.to == nil {
			s.to = e.To
		}
		switch e.Outcome {
		case rollout.Promoted, rollout.Unchanged:
			s.problem = nil
		default:
			s.problem = &problem{what: string(e.Outcome), why: reasonText(e.Reason, f.Message), todo: advice(e.Outcome, e.Reason)}
		}
		reason := ""
		if e.Reason != "" {
			reason = " [" + string(e.Reason) + "]"
		}
		s.logf(e.At, s.problem != nil, "%s%s in %s: %s", e.Outcome, reason, round(e.Duration), e.Message)
	}
}

// setInstances shows a slot's instances.
func (s *state) setInstances(sl fleet.Slot, in []fleet.InstanceHealth) {
	hs := append([]fleet.InstanceHealth(nil), in...)
	fleet.SortHealth(hs)
	if len(hs) > maxInstances {
		hs = hs[:maxInstances]
	}
	for i := range hs {
		hs[i].LastError = clip(hs[i].LastError)
	}
	s.instances[sl] = hs
}

func (s *state) measure(e rollout.AnalysisMeasured) {
	var m *metric
	for _, x := range s.metrics {
		if x.analysis == e.Analysis && x.name == e.Metric {
			m = x
		}
	}
	if m == nil {
		if len(s.metrics) == maxMetrics {
			s.metrics = s.metrics[1:]
		}
		m = &metric{analysis: e.Analysis, name: e.Metric, samples: newRing[float64](maxSamples)}
		s.metrics = append(s.metrics, m)
	}
	m.value, m.threshold, m.result, m.reason = nil, e.Threshold, e.Result, clip(e.Reason)
	if e.Value != nil {
		v := *e.Value
		m.value = &v
		m.samples.push(v)
	}
	m.passed, m.failed, m.inc = e.Passed, e.Failed, e.Inconclusive
}

// sortedSlots returns the slots that have instances, blue first.
func (s *state) sortedSlots() []fleet.Slot {
	var out []fleet.Slot
	for sl := range s.instances {
		out = append(out, sl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func reasonText(r rollout.Reason, msg string) string {
	switch {
	case r != "" && msg != "":
		return string(r) + ": " + msg
	case r != "":
		return string(r)
	}
	return msg
}

// advice says what an operator should do after a rollout ended without promoting.
func advice(o rollout.Outcome, r rollout.Reason) string {
	if o == rollout.RollbackFailed {
		return "a human must look: run kiln status, fix the target, then retry"
	}
	switch r {
	case rollout.ReasonBakeFailed:
		return "fix the build (see the log), then run kiln rollout again"
	case rollout.ReasonNotHealthy, rollout.ReasonNewSlotUnhealthy, rollout.ReasonProgressDeadline:
		return "see the new instances' last errors and the health check, then retry"
	case rollout.ReasonAnalysisFailed:
		return "a metric missed its threshold (see ANALYSIS); fix the release, then retry"
	case rollout.ReasonAborted:
		return "aborted on request; the stable slot serves all traffic"
	case rollout.ReasonCancelled:
		return "interrupted; run kiln rollout again to resume or undo it"
	case rollout.ReasonStableUnhealthy:
		return "the live slot is unhealthy: check kiln status before another rollout"
	case rollout.ReasonRefused:
		return "nothing changed; use --allow-downgrade if this release is meant"
	}
	return "see the log below and kiln history"
}

func phaseName(ph rollout.Phase, step int) string {
	if step > 0 {
		return fmt.Sprintf("%s %d", ph, step)
	}
	return string(ph)
}

func shortType(t string) string {
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		return t[i+1:]
	}
	return t
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// resourceOp records an operation; its end replaces its start, so each operation is one row.
func (s *state) resourceOp(e rollout.ResourceChanged) {
	if e.Status != fleet.OpStarted {
		for i := s.resources.len() - 1; i >= 0 && i >= s.resources.len()-16; i-- {
			r := s.resources.ptr(i)
			if r.op.Status == fleet.OpStarted && r.op.Op == e.Op && r.op.Type == e.Type && r.op.Name == e.Name {
				r.at, r.op = e.At, e.ResourceOp
				r.op.Error = clip(r.op.Error)
				return
			}
		}
	}
	op := e.ResourceOp
	op.Error = clip(op.Error)
	s.resources.push(resourceRow{at: e.At, op: op})
}
