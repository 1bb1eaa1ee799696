// Package rollout is kiln's deployment engine. A rollout is an ordered plan of stages —
// deploy, health, pre-promotion analysis, traffic steps with pauses and analyses,
// post-promotion analysis, scale-down delay, retire — each idempotent, with a checkpoint
// saved before it runs, so a killed kiln resumes at the same stage and converges to the
// same outcome. Any failure runs one undo: traffic back to the stable slot (only if that
// slot is healthy), then the new slot removed. The engine knows nothing of processes,
// AMIs or terminals: it drives a Target and reports typed Events.
//
// The engine by concern: request.go (what is asked), start.go (how a run starts: fresh,
// resumed, superseding a left-over one), plan.go (the stages), stages.go (what each stage
// applies), health.go (waiting for health, repairs), pause.go (holds and controls),
// analysis.go (the analysis runner), undo.go (the rollback), journal.go (checkpoints).
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/internal/clock"
)

// Engine runs rollouts against one target. Run does not change it: one Engine may run
// one rollout after another.
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
	Clock clock.Clock
	// RollbackTimeout bounds the undo of a failed or cancelled release, which runs even
	// after the caller's context is done; zero means DefaultRollbackTimeout.
	RollbackTimeout time.Duration
}

// DefaultRollbackTimeout bounds an undo when the Engine sets no RollbackTimeout.
const DefaultRollbackTimeout = 5 * time.Minute

// run is the state of one rollout.
type run struct {
	e   *Engine
	req Request
	// cp is the rollout's progress, as saved in the journal before every stage.
	cp Checkpoint
	// applied is the spec last applied to the target.
	applied fleet.Spec
	// stableSlot is the slot that served before the rollout (cp.Slot.Other()); it holds
	// a release only when cp.Stable is set.
	stableSlot fleet.Slot
	// finished lists every phase that ended, in order, for the Finished event.
	finished []PhaseFinished

	// The controls' effect on the run; see pause.go.
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

func (e *Engine) clock() clock.Clock { return clock.Or(e.Clock) }

func (e *Engine) rollbackTimeout() time.Duration {
	if e.RollbackTimeout > 0 {
		return e.RollbackTimeout
	}
	return DefaultRollbackTimeout
}

// Run rolls out the release baker produces, or resumes the rollout of that release
// if a killed kiln left one, and returns how it ended. The same Finished event is also
// the last event sent.
func (e *Engine) Run(ctx context.Context, req Request, baker Baker) Finished {
	r := &run{e: e, req: req}
	start := e.clock().Now()
	fin := r.do(ctx, baker)
	fin.At = e.clock().Now()
	fin.Duration = fin.At.Sub(start)
	fin.ID, fin.From, fin.Phases = r.cp.ID, r.cp.Stable, r.finished
	if r.cp.Desired.Version != "" {
		to := r.cp.Desired
		fin.To = &to
	}
	if l, ok := r.applied.Live(); ok {
		rel := *r.applied.Slots[l].Release
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

// runStages runs the plan's stages from the checkpoint's stage on, saving the checkpoint
// before each; the first failure undoes the rollout.
func (r *run) runStages(ctx context.Context) Finished {
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
	return Finished{Outcome: Promoted, Message: fmt.Sprintf("%s is live on slot %s", r.cp.Desired, r.cp.Slot)}
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
	r.finished = append(r.finished, pf)
	r.e.emit(pf)
	return err
}
