package tui

import (
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/eventtext"
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
	case rollout.PhaseFinished:
		s.paused = nil
		r := s.row(e.Phase, e.Step)
		r.dur = e.Duration
		if e.Error != "" {
			r.state, r.err = failed, clip(e.Error)
			s.problem = &problem{what: phaseName(e.Phase, e.Step) + " failed", why: r.err,
				todo: "kiln is sending traffic back to the stable slot; watch the rollback below"}
		} else {
			r.state = done
		}
	case rollout.Baked:
		rel := e.Release
		s.to = &rel
	case rollout.Paused:
		p := e
		s.paused = &p
	case rollout.Resumed:
		s.paused = nil
	case rollout.Healing:
		if e.Error != "" {
			s.healing = ""
			s.problem = &problem{what: "repair failed", why: clip(e.Error), todo: "check kiln status; the rollout will roll back if health does not return"}
		} else {
			s.healing = clip(e.Cause)
		}
	case rollout.AnalysisMeasured:
		s.measure(e)
		return // the ANALYSIS pane shows it
	case rollout.ResourceChanged:
		s.resourceOp(e)
	case rollout.HealthChanged:
		s.setInstances(e.Slot, e.Instances)
		s.healing = ""
		return // the slots' panes show it
	case rollout.TrafficShifted:
		for _, sl := range fleet.Slots {
			s.weights[sl] = e.Weights[sl]
		}
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
	}
	if l, ok := eventtext.Describe(ev, eventtext.Plain); ok {
		s.log.push(logLine{at: l.At, bad: l.Bad, text: clip(l.Text)})
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
	switch o {
	case rollout.RollbackFailed:
		return "a human must look: run kiln status, fix the target, then retry"
	case rollout.Failed:
		if r != rollout.ReasonBakeFailed {
			return "nothing was live and nothing is left; fix the release (see the log), then retry"
		}
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

// The view words durations, phases and resource types as the log's lines do.
var (
	round     = eventtext.Round
	phaseName = eventtext.Phase
	shortType = eventtext.ShortType
)
