package cli

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/tui"
)

// follow feeds events into events from every rollout of the service, one after another,
// until ctx ends: whenever one runs (here or in another kiln) it attaches to its control
// socket, which replays what already happened. finished is called with each rollout's end.
func follow(ctx context.Context, sock string, events chan<- rollout.Event, finished func(rollout.Finished)) {
	var lastStart time.Time
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		lines, err := control.Watch(wctx, sock)
		if err == nil {
			first := true
			for l := range lines {
				ev, err := rollout.UnmarshalEvent(l)
				if err != nil {
					continue // not an event ("the rollout is ending"), or one a newer kiln sends
				}
				if s, ok := ev.(rollout.RolloutStarted); ok && first {
					if s.At.Equal(lastStart) {
						break // the same rollout again, ending: it was shown already
					}
					lastStart = s.At
				}
				first = false
				if f, ok := ev.(rollout.Finished); ok {
					finished(f)
				}
				select {
				case events <- ev:
				case <-ctx.Done():
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// fleetReader reads the fleet for the status console: the target's spec, the history
// and what r returns to when they may have changed (at first, after each rollout, and
// every specMaxAge), instance health each time.
type fleetReader struct {
	p   *project.Project
	tgt targets.Target

	mu      sync.Mutex
	st      tui.Status // all but the instances
	readAt  time.Time
	changed bool
}

const specMaxAge = 30 * time.Second

// invalidate makes the next read fetch the spec again: a rollout ended.
func (r *fleetReader) invalidate() {
	r.mu.Lock()
	r.changed = true
	r.mu.Unlock()
}

func (r *fleetReader) read(ctx context.Context) (tui.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed || r.readAt.IsZero() || time.Since(r.readAt) > specMaxAge {
		st, err := r.fleet(ctx)
		if err != nil {
			return tui.Status{}, err
		}
		r.st, r.readAt, r.changed = st, time.Now(), false
	}
	st := r.st
	if !st.Deployed {
		return st, nil
	}
	hs, err := r.tgt.Health(ctx)
	if err != nil {
		return tui.Status{}, fmt.Errorf("instance health: %w", err)
	}
	st.Instances = hs
	return st, nil
}

// fleet reads what kiln status shows, the history, and the release r would return to.
func (r *fleetReader) fleet(ctx context.Context) (tui.Status, error) {
	spec, exists, err := r.tgt.Current(ctx)
	if err != nil {
		return tui.Status{}, err
	}
	rep := newStatusReport(ctx, r.p, r.tgt, spec, exists)
	st := tui.Status{Service: rep.Service, Target: rep.Target, Endpoint: rep.Endpoint, Deployed: exists,
		Live: rep.Live, LiveSlot: rep.LiveSlot, Weights: rep.Weights}
	if !exists {
		return st, nil
	}
	store, err := r.p.Releases()
	if err != nil {
		return st, nil // no history: nothing to list or return to
	}
	hist, err := store.History()
	if err != nil {
		return st, nil
	}
	if prev, err := r.p.RollbackReleaseIn(ctx, r.tgt, hist, st.Live, ""); err == nil {
		st.Previous = &prev
	}
	for _, h := range hist[:min(len(hist), 20)] {
		past := tui.Past{Version: h.Version, Outcome: h.Outcome, Started: h.Started}
		if !h.Finished.IsZero() {
			past.Duration = h.Finished.Sub(h.Started)
		}
		st.History = append(st.History, past)
	}
	return st, nil
}

// watchConsole is kiln watch on a terminal: the status console. It shows the fleet
// between rollouts, follows every rollout of the service (started anywhere) as it runs,
// and r rolls back, here in this process. It returns when the operator leaves; the error
// carries the outcome of the last rollout that ended while it watched.
func (a *app) watchConsole(ctx context.Context, p *project.Project, in, out *os.File) error {
	tgt, err := a.target(ctx, p)
	if err != nil {
		return err
	}
	reader := &fleetReader{p: p, tgt: tgt}
	sctx, leave := context.WithCancel(ctx)
	defer leave()

	var mu sync.Mutex
	var last *rollout.Finished // the last rollout seen to end
	events := make(chan rollout.Event, 64)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		follow(sctx, p.ControlSocket(), events, func(f rollout.Finished) {
			mu.Lock()
			last = &f
			mu.Unlock()
			reader.invalidate()
		})
	}()

	// A rollback started with r runs in this process, under the command's context (not
	// the console's): leaving the console does not stop it, ctrl+c does.
	var rolling sync.WaitGroup
	inFlight := 0
	var rbErr error // why the last rollback could not run
	rollback := func(to fleet.Release) func() error {
		rolling.Add(1)
		mu.Lock()
		inFlight++
		mu.Unlock()
		result := make(chan error, 1)
		go func() {
			defer rolling.Done()
			fin, err := a.rollbackOnce(ctx, p, to)
			mu.Lock()
			inFlight--
			rbErr = err
			if err == nil && (last == nil || fin.At.After(last.At)) {
				last = &fin
			}
			mu.Unlock()
			result <- err
		}()
		return func() error { return <-result }
	}

	detached := a.runConsole(sctx, p, in, out, events, tui.Options{
		StatusInterval: targets.ConsoleInterval(tgt),
		Status:         func() (tui.Status, error) { return reader.read(sctx) },
		Health:         healthOf(sctx, tgt),
		Rollback:       rollback,
	})
	leave()
	go func() {
		for range events {
		}
	}()
	<-followed
	close(events)

	mu.Lock()
	leftRolling := inFlight > 0
	mu.Unlock()
	switch {
	case leftRolling:
		fmt.Fprintf(a.stdout, "left the console of %s: the rollback started from it goes on in this process until it ends (ctrl+c interrupts it; kiln watch follows it)\n", p.Manifest.Service)
	case detached:
		fmt.Fprintf(a.stdout, "left the console of %s: its rollout goes on (kiln watch re-attaches)\n", p.Manifest.Service)
	}
	rolling.Wait()
	mu.Lock()
	defer mu.Unlock()
	if leftRolling && rbErr != nil {
		return rbErr
	}
	if last == nil {
		return nil
	}
	(&linePrinter{w: a.stdout}).event(*last)
	a.reported = true
	if last.Outcome != rollout.Promoted && last.Outcome != rollout.Unchanged {
		return &outcomeError{fin: *last}
	}
	return nil
}

// rollbackOnce rolls the kept release to out again, printing nothing: the console that
// started it follows its events through the control socket.
func (a *app) rollbackOnce(ctx context.Context, p *project.Project, to fleet.Release) (rollout.Finished, error) {
	tgt, err := a.target(ctx, p)
	if err != nil {
		return rollout.Finished{}, err
	}
	return a.redeploy(ctx, p, tgt, to, rolloutOptions{quiet: true})
}
