// Package rollout is kiln's deployment engine. A rollout is an ordered plan of stages —
// deploy, health, pre-promotion analysis, traffic steps with pauses and analyses,
// post-promotion analysis, scale-down delay, retire — each idempotent, with a checkpoint
// saved before it runs, so a killed kiln resumes at the same stage and converges to the
// same outcome. Any failure runs one undo: traffic back to the stable slot (only if that
// slot is healthy), then the new slot removed. The engine knows nothing of processes,
// AMIs or terminals: it drives a Target and reports typed Events.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
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

// Engine runs rollouts against one target.
type Engine struct {
	Target Target
	// Events receives every event; the engine blocks while it is full, so a consumer
	// must drain it. Nil discards events.
	Events chan<- Event
	// Controls carries pause, resume, promote and abort; nil means none arrive.
	Controls <-chan Control
	// Journal persists checkpoints for crash-safe resume; nil keeps none.
	Journal Journal
	// Analyzer runs the analyses the request names.
	Analyzer Analyzer
	// Clock decides deadlines and pauses; nil is the wall clock.
	Clock Clock
	// RollbackTimeout bounds the undo of a failed or cancelled release, which runs even
	// after the caller's context is done.
	RollbackTimeout time.Duration
}

// run is the state of one rollout.
type run struct {
	e      *Engine
	req    Request
	cp     Checkpoint
	spec   fleet.Spec // what is applied now
	live   fleet.Slot // the stable slot, when hasStable
	phases []PhaseFinished

	paused, pauseRequested, promoted bool
	lastHeal                         time.Time
}

// stageError is a failure with its reason.
type stageError struct {
	reason Reason
	msg    string
}

func (e *stageError) Error() string { return e.msg }

func fail(reason Reason, format string, args ...any) error {
	return &stageError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

var errAborted = &stageError{reason: ReasonAborted, msg: "aborted by a human"}

func (e *Engine) clock() Clock {
	if e.Clock == nil {
		return RealClock{}
	}
	return e.Clock
}

// Run rolls out the release baker produces, or resumes the rollout of that release
// if a killed kiln left one, and returns how it ended. The same Finished event is also
// the last event sent.
func (e *Engine) Run(ctx context.Context, req Request, baker Baker) Finished {
	if e.RollbackTimeout == 0 {
		e.RollbackTimeout = 5 * time.Minute
	}
	r := &run{e: e, req: req}
	start := e.clock().Now()
	fin := r.do(ctx, baker)
	fin.At = e.clock().Now()
	fin.Duration = fin.At.Sub(start)
	fin.ID, fin.From, fin.Phases = r.cp.ID, r.cp.Stable, r.phases
	if r.cp.Desired.Version != "" {
		to := r.cp.Desired
		fin.To = &to
	}
	if l, ok := r.spec.Live(); ok {
		rel := *r.spec.Slots[l].Release
		fin.Live = &rel
	}
	e.emit(fin)
	return fin
}

func (e *Engine) emit(ev Event) {
	if e.Events != nil {
		e.Events <- ev
	}
}

func (r *run) now() time.Time { return r.e.clock().Now() }

func (r *run) hasStable() bool { return r.cp.Stable != nil }

func (r *run) do(ctx context.Context, baker Baker) Finished {
	if err := ValidateSteps(r.req.Steps); err != nil {
		return Finished{Outcome: RolledBack, Reason: ReasonInvalid, Message: err.Error()}
	}
	cur, exists, err := r.e.Target.Current(ctx)
	if err != nil {
		return Finished{Outcome: RolledBack, Reason: ReasonTargetFailed, Message: fmt.Sprintf("read the current fleet: %v", err)}
	}
	r.spec = fleet.Spec{Slots: map[fleet.Slot]fleet.SlotSpec{}}
	if exists {
		r.spec = cur.Clone()
	}
	prior, resumable, err := r.loadJournal()
	if err != nil {
		return Finished{Outcome: RolledBack, Reason: ReasonJournalFailed, Message: err.Error()}
	}
	live, hasLive := r.spec.Live()
	var from *fleet.Release
	if hasLive {
		rel := *r.spec.Slots[live].Release
		from = &rel
	}
	slot := fleet.Blue
	if hasLive {
		slot = live.Other()
	}
	if resumable {
		slot, from = prior.Slot, prior.Stable
	}
	r.e.emit(RolloutStarted{At: r.now(), Service: r.req.Template.Service, Target: r.e.Target.Name(), From: from, Slot: slot})
	if r.req.Admit != nil && !resumable {
		if err := r.req.Admit(from, r.req.Version); err != nil {
			return Finished{Outcome: Refused, Reason: ReasonRefused, Message: err.Error()}
		}
	}

	var rel fleet.Release
	if err := r.phase(ctx, PhaseBake, 0, func(ctx context.Context) (err error) {
		rel, err = baker.Bake(ctx)
		return err
	}); err != nil {
		if ctx.Err() != nil {
			return Finished{Outcome: Interrupted, Reason: ReasonCancelled, Message: err.Error()}
		}
		return Finished{Outcome: RolledBack, Reason: ReasonBakeFailed, Message: err.Error()}
	}
	r.e.emit(Baked{At: r.now(), Release: rel})

	switch {
	case resumable && prior.Desired.Image.Digest == rel.Image.Digest && prior.Desired.Version == rel.Version:
		r.cp = prior
		r.live = prior.Slot.Other()
		r.e.emit(Recovered{At: r.now(), ID: prior.ID, Phase: prior.Phase, Step: prior.Step, Aborting: prior.Aborting})
		r.heal(ctx, errors.New("resuming a rollout a stopped kiln left"))
		if prior.Aborting {
			return r.undo(ctx, prior.Reason, errors.New(prior.Message))
		}
	case resumable:
		// A killed kiln left a rollout of another release: undo it before this one.
		r.cp = prior
		r.live = prior.Slot.Other()
		r.e.emit(Recovered{At: r.now(), ID: prior.ID, Phase: prior.Phase, Step: prior.Step, Aborting: true})
		r.heal(ctx, errors.New("undoing a rollout a stopped kiln left"))
		undone := r.undo(ctx, ReasonSuperseded, fmt.Errorf("superseded by %s", rel))
		if undone.Outcome == RollbackFailed {
			return undone
		}
		r.phases = nil
		live, hasLive = r.spec.Live()
		from = nil
		if hasLive {
			l := *r.spec.Slots[live].Release
			from = &l
		}
		slot = fleet.Blue
		if hasLive {
			slot = live.Other()
		}
		fallthrough
	default:
		if hasLive && from.Image.Digest == rel.Image.Digest && from.Version == rel.Version {
			return Finished{Outcome: Unchanged, Message: fmt.Sprintf("%s is already live", rel)}
		}
		r.cp = Checkpoint{ID: newID(), Slot: slot, Stable: from, Desired: rel, Started: r.now()}
		r.live = slot.Other()
	}

	stages := r.plan()
	for i := r.cp.Stage; i < len(stages); i++ {
		st := stages[i]
		if i != r.cp.Stage || r.cp.StageStarted.IsZero() {
			r.cp.StageStarted = r.now()
		}
		r.cp.Stage, r.cp.Phase, r.cp.Step = i, st.phase, st.step
		if err := r.save(); err != nil {
			return r.undo(ctx, ReasonJournalFailed, err)
		}
		if err := r.phase(ctx, st.phase, st.step, st.run); err != nil {
			return r.undo(ctx, reasonOf(err, st.phase), err)
		}
	}
	r.clearJournal()
	return Finished{Outcome: Promoted, Message: fmt.Sprintf("%s is live on slot %s", rel, r.cp.Slot)}
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func reasonOf(err error, p Phase) Reason {
	var se *stageError
	if errors.As(err, &se) {
		return se.reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonProgressDeadline
	}
	switch p {
	case PhaseDeploy:
		return ReasonDeployFailed
	case PhaseHealth:
		return ReasonNotHealthy
	case PhaseStep:
		return ReasonSwitchFailed
	case PhaseRetire:
		return ReasonRetireFailed
	}
	return ReasonTargetFailed
}

func (r *run) loadJournal() (Checkpoint, bool, error) {
	if r.e.Journal == nil {
		return Checkpoint{}, false, nil
	}
	cp, ok, err := r.e.Journal.Load()
	if err != nil {
		return cp, false, fmt.Errorf("read the rollout journal: %w", err)
	}
	return cp, ok, nil
}

func (r *run) save() error {
	if r.e.Journal == nil {
		return nil
	}
	if err := r.e.Journal.Save(r.cp); err != nil {
		return fmt.Errorf("save the rollout checkpoint: %w", err)
	}
	return nil
}

func (r *run) clearJournal() {
	if r.e.Journal != nil {
		r.e.Journal.Clear()
	}
}

// phase runs fn as the named phase, reporting its start, end and duration. Stages that
// only wait on the target are bounded by the progress deadline, counted from when the
// stage first started (also across a resume).
func (r *run) phase(ctx context.Context, p Phase, step int, fn func(context.Context) error) error {
	start := r.now()
	r.e.emit(PhaseStarted{At: start, Phase: p, Step: step})
	pctx := ctx
	switch p {
	case PhaseDeploy, PhaseRetire:
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, r.req.ProgressDeadline)
		defer cancel()
	}
	err := fn(pctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	end := r.now()
	pf := PhaseFinished{At: end, Phase: p, Step: step, Duration: end.Sub(start)}
	if err != nil {
		pf.Error = err.Error()
	}
	r.phases = append(r.phases, pf)
	r.e.emit(pf)
	return err
}

// apply converges the target to spec; on success it becomes the applied spec.
func (r *run) apply(ctx context.Context, spec fleet.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	err := r.e.Target.Apply(ctx, spec, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.now(), ResourceOp: op})
	})
	if err != nil {
		return err
	}
	r.spec = spec
	return nil
}

// deploy brings the new slot up beside the stable one, without traffic.
func (r *run) deploy(ctx context.Context) error {
	return r.apply(ctx, deploySpec(r.spec, r.req, r.cp.Slot, r.cp.Desired, r.hasStable()))
}

// setWeight gives the new slot w% of traffic and the stable slot the rest.
func (r *run) setWeight(ctx context.Context, w int) error {
	if err := r.apply(ctx, weightSpec(r.spec, r.cp.Slot, w, r.hasStable())); err != nil {
		return err
	}
	r.e.emit(TrafficShifted{At: r.now(), Weights: weights(r.spec)})
	return nil
}

// The specs each stage converges to are pure functions of the applied spec, shared by
// the engine and by Preview.

func deploySpec(cur fleet.Spec, req Request, slot fleet.Slot, rel fleet.Release, hasStable bool) fleet.Spec {
	next := cur.Clone()
	tpl := req.Template
	next.Service, next.Port, next.Health, next.DrainTimeout, next.Env = tpl.Service, tpl.Port, tpl.Health, tpl.DrainTimeout, tpl.Env
	if next.Slots == nil {
		next.Slots = map[fleet.Slot]fleet.SlotSpec{}
	}
	next.Slots[slot] = fleet.SlotSpec{Release: &rel, Size: req.Size, Weight: 0}
	if hasStable {
		st := next.Slots[slot.Other()]
		st.Weight = 100
		next.Slots[slot.Other()] = st
	}
	return next
}

func weightSpec(cur fleet.Spec, slot fleet.Slot, w int, hasStable bool) fleet.Spec {
	next := cur.Clone()
	ns := next.Slots[slot]
	ns.Weight = w
	next.Slots[slot] = ns
	if hasStable {
		st := next.Slots[slot.Other()]
		st.Weight = 100 - w
		next.Slots[slot.Other()] = st
	}
	return next
}

func retireSpec(cur fleet.Spec, live fleet.Slot) fleet.Spec {
	next := cur.Clone()
	next.Slots[live] = fleet.SlotSpec{}
	return next
}

// trafficStep moves traffic to the step's weight — only onto a healthy slot — then holds
// for the step's pause and runs its analysis. Once promoted, intermediate steps are
// skipped and the last one only switches.
func (r *run) trafficStep(ctx context.Context, n int, s Step) error {
	if r.promoted && s.Weight < 100 {
		return nil
	}
	if err := r.waitHealthy(ctx); err != nil {
		return fail(ReasonNewSlotUnhealthy, "step %d: %v", n, err)
	}
	if err := r.setWeight(ctx, s.Weight); err != nil {
		return err
	}
	if r.promoted {
		return nil
	}
	if s.Pause > 0 || s.Indefinite {
		if err := r.hold(ctx, s.Pause, s.Indefinite); err != nil {
			return err
		}
	}
	if s.Analysis != "" && !r.promoted {
		return r.analyze(ctx, s.Analysis)
	}
	return nil
}

// retire removes the old slot.
func (r *run) retire(ctx context.Context) error {
	return r.apply(ctx, retireSpec(r.spec, r.live))
}

func weights(s fleet.Spec) map[fleet.Slot]int {
	w := map[fleet.Slot]int{}
	for _, sl := range fleet.Slots {
		w[sl] = s.Slots[sl].Weight
	}
	return w
}

func (r *run) poll() time.Duration {
	p := r.req.Template.Health.Interval / 2
	if p < 100*time.Millisecond {
		p = 100 * time.Millisecond
	}
	return p
}

// heal asks the target to repair what it cannot read health from (a killed load
// balancer), at most every few seconds.
func (r *run) heal(ctx context.Context, cause error) {
	h, ok := r.e.Target.(Healer)
	if !ok || r.spec.Slots == nil || (!r.lastHeal.IsZero() && r.now().Sub(r.lastHeal) < 5*time.Second) {
		return
	}
	r.lastHeal = r.now()
	r.e.emit(Healing{At: r.now(), Cause: cause.Error()})
	if err := h.Heal(ctx, r.spec, func(op fleet.ResourceOp) {
		r.e.emit(ResourceChanged{At: r.now(), ResourceOp: op})
	}); err != nil {
		r.e.emit(Healing{At: r.now(), Cause: cause.Error(), Error: err.Error()})
	}
}

// control applies a command received while waiting. It reports whether the rollout must
// abort.
func (r *run) control(c Control) bool {
	var err error
	abort := false
	switch c.Command {
	case CmdPause:
		if r.paused {
			err = errors.New("the rollout is already paused")
		} else {
			r.pauseRequested = true
		}
	case CmdResume:
		if !r.paused && !r.pauseRequested {
			err = errors.New("the rollout is not paused")
		}
		r.pauseRequested = false
	case CmdPromote:
		r.promoted, r.pauseRequested = true, false
	case CmdAbort:
		abort = true
	default:
		err = fmt.Errorf("unknown command %q", c.Command)
	}
	if c.Reply != nil {
		c.Reply <- err
	}
	return abort
}

// waitHealthy waits until every instance of the new slot passes its health check, or
// the progress deadline of the stage passes.
func (r *run) waitHealthy(ctx context.Context) error {
	deadline := r.cp.StageStarted.Add(r.req.ProgressDeadline)
	var last []fleet.InstanceHealth
	var lastErr error
	for {
		hs, err := r.e.Target.Health(ctx)
		lastErr = err
		if err != nil {
			r.heal(ctx, err)
		} else {
			mine := inSlot(hs, r.cp.Slot)
			if !sameHealth(mine, last) {
				r.e.emit(HealthChanged{At: r.now(), Slot: r.cp.Slot, Instances: mine})
				last = mine
			}
			if fleet.AllHealthy(mine, r.req.Size) {
				return nil
			}
		}
		if !r.now().Before(deadline) {
			return fail(ReasonNotHealthy, "slot %s not healthy within the progress deadline of %s: %s", r.cp.Slot, r.req.ProgressDeadline, describe(last, lastErr))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-r.e.Controls:
			if r.control(c) {
				return errAborted
			}
		case <-r.e.clock().After(r.poll()):
		}
	}
}

// hold waits d (or, when indefinite, until resumed or promoted) while the new slot
// serves; pause freezes the remaining time, promote and resume end the hold, abort
// fails it. The new slot's health is watched all along: losing it fails the hold.
func (r *run) hold(ctx context.Context, d time.Duration, indefinite bool) error {
	remaining := d
	end := r.now().Add(d)
	if r.pauseRequested {
		r.paused, r.pauseRequested = true, false
	}
	if indefinite {
		r.paused = true
	}
	if r.paused {
		r.e.emit(Paused{At: r.now(), Remaining: remaining, Indefinite: indefinite})
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-r.e.Controls:
			wasPaused := r.paused
			if r.control(c) {
				return errAborted
			}
			switch {
			case r.promoted:
				r.paused = false
				r.e.emit(Resumed{At: r.now(), Promoted: true})
				return nil
			case r.pauseRequested && !wasPaused:
				r.paused, r.pauseRequested = true, false
				remaining = end.Sub(r.now())
				r.e.emit(Paused{At: r.now(), Remaining: remaining, Indefinite: indefinite})
			case c.Command == CmdResume && wasPaused:
				r.paused = false
				r.e.emit(Resumed{At: r.now()})
				if indefinite {
					return nil
				}
				end = r.now().Add(remaining)
			}
		case <-r.e.clock().After(r.poll()):
			if !r.paused && !r.now().Before(end) {
				return nil
			}
			if r.spec.Slots[r.cp.Slot].Weight > 0 {
				if err := r.checkServing(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// checkServing fails when an instance of the new slot, which carries traffic, is no
// longer healthy.
func (r *run) checkServing(ctx context.Context) error {
	hs, err := r.e.Target.Health(ctx)
	if err != nil {
		r.heal(ctx, err)
		return nil // a missed reading is not a verdict; the next poll reads again
	}
	mine := inSlot(hs, r.cp.Slot)
	if !fleet.AllHealthy(mine, r.req.Size) {
		r.e.emit(HealthChanged{At: r.now(), Slot: r.cp.Slot, Instances: mine})
		return fail(ReasonNewSlotUnhealthy, "slot %s lost its health while serving: %s", r.cp.Slot, describe(mine, nil))
	}
	return nil
}

// analyze runs a named analysis. Failed rolls back; inconclusive pauses for a human, who
// resumes (accepting it), promotes or aborts.
func (r *run) analyze(ctx context.Context, name string) error {
	if r.e.Analyzer == nil {
		return fail(ReasonAnalysisFailed, "analysis %s is configured but kiln has no analyzer", name)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	type verdict struct {
		outcome AnalysisOutcome
		msg     string
		err     error
	}
	measured := make(chan AnalysisMeasured, 16)
	done := make(chan verdict, 1)
	go func() {
		o, m, err := r.e.Analyzer.Analyze(actx, name, r.cp.Slot, func(am AnalysisMeasured) {
			select {
			case measured <- am:
			case <-actx.Done():
			}
		})
		done <- verdict{o, m, err}
	}()
	for {
		select {
		case am := <-measured:
			am.At, am.Analysis = r.now(), name
			r.e.emit(am)
		case c := <-r.e.Controls:
			if r.control(c) {
				return errAborted
			}
		case v := <-done:
			for len(measured) > 0 {
				am := <-measured
				am.At, am.Analysis = r.now(), name
				r.e.emit(am)
			}
			if v.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fail(ReasonAnalysisFailed, "analysis %s: %v", name, v.err)
			}
			r.e.emit(AnalysisFinished{At: r.now(), Analysis: name, Outcome: v.outcome, Message: v.msg})
			switch v.outcome {
			case AnalysisSuccessful:
				return nil
			case AnalysisInconclusive:
				return r.hold(ctx, 0, true)
			default:
				return fail(ReasonAnalysisFailed, "analysis %s failed: %s", name, v.msg)
			}
		}
	}
}

func inSlot(hs []fleet.InstanceHealth, s fleet.Slot) []fleet.InstanceHealth {
	var out []fleet.InstanceHealth
	for _, h := range hs {
		if h.Slot == s {
			out = append(out, h)
		}
	}
	fleet.SortHealth(out)
	return out
}

func sameHealth(a, b []fleet.InstanceHealth) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].State != b[i].State || a[i].LastError != b[i].LastError || a[i].Restarts != b[i].Restarts {
			return false
		}
	}
	return true
}

// describe says what is wrong with a slot's instances, in one line.
func describe(hs []fleet.InstanceHealth, err error) string {
	if err != nil {
		return "health unavailable: " + err.Error()
	}
	if len(hs) == 0 {
		return "no instance registered"
	}
	count := map[fleet.HealthState]int{}
	var errs []string
	for _, h := range hs {
		count[h.State]++
		if h.LastError != "" && !contains(errs, h.LastError) {
			errs = append(errs, h.LastError)
		}
	}
	var parts []string
	for st, n := range count {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	s := strings.Join(parts, ", ")
	if len(errs) > 0 {
		s += "; last check: " + strings.Join(errs, "; ")
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// undo takes the rollout back: traffic to the stable slot at once — only if that slot is
// healthy — then, after the abort scale-down delay, the new slot is removed. It runs on a
// context of its own: a cancelled rollout must still end on the stable slot. A killed
// kiln finishes the undo when it resumes.
func (r *run) undo(ctx context.Context, reason Reason, cause error) Finished {
	outcome := RolledBack
	if ctx.Err() != nil && (errors.Is(cause, context.Canceled) || errors.Is(cause, ctx.Err())) {
		outcome, reason = Interrupted, ReasonCancelled
	}
	r.cp.Aborting, r.cp.Reason, r.cp.Message = true, reason, cause.Error()
	saveErr := r.save()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.e.RollbackTimeout)
	defer cancel()
	err := r.phase(uctx, PhaseRollback, 0, func(ctx context.Context) error {
		if r.spec.Slots == nil {
			return nil // nothing was ever applied
		}
		if r.spec.Slots[r.cp.Slot].Weight > 0 && r.hasStable() {
			hs, err := r.e.Target.Health(ctx)
			if err != nil {
				r.lastHeal = time.Time{}
				r.heal(ctx, err)
				hs, err = r.e.Target.Health(ctx)
			}
			if err != nil {
				return fail(ReasonStableUnhealthy, "cannot read the stable slot's health, traffic left as it is: %v", err)
			}
			size := r.spec.Slots[r.live].Size
			if stable := inSlot(hs, r.live); !fleet.AllHealthy(stable, size) {
				return fail(ReasonStableUnhealthy, "the stable slot %s is not healthy (%s), traffic left as it is", r.live, describe(stable, nil))
			}
			if err := r.setWeight(ctx, 0); err != nil {
				return err
			}
		}
		if d := r.req.AbortScaleDownDelay; d > 0 && !r.spec.Slots[r.cp.Slot].Empty() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.e.clock().After(d):
			}
		}
		next := r.spec.Clone()
		next.Slots[r.cp.Slot] = fleet.SlotSpec{}
		if r.hasStable() {
			st := next.Slots[r.live]
			st.Weight = 100
			next.Slots[r.live] = st
		}
		return r.apply(ctx, next)
	})
	if err != nil {
		return Finished{Outcome: RollbackFailed, Reason: reason,
			Message: fmt.Sprintf("%v; undoing it failed too: %v", cause, err)}
	}
	if saveErr == nil {
		r.clearJournal()
	}
	return Finished{Outcome: outcome, Reason: reason, Message: cause.Error()}
}
