package project

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/targets"
)

// Sink consumes a rollout's events: it is run in its own goroutine and must read events
// until the channel is closed (the engine waits while a sink is behind).
type Sink func(events <-chan rollout.Event)

// Session is one rollout of a project's release on a target: it takes the stack's lock,
// keeps the journal and the history, serves the control socket (steering in, every event
// out to watchers), fans the engine's events out to its sinks, and collects old images
// once the release is promoted.
type Session struct {
	Project *Project
	Target  targets.Target
	// Command names who holds the lock, e.g. "kiln rollout".
	Command string
	// BreakLock clears a stale lock (its holder is gone) before taking it.
	BreakLock bool
	// AllowDowngrade admits a release older than the live one.
	AllowDowngrade bool
	// Release, if set, is rolled out instead of baking the manifest's release (a
	// rollback redeploys a kept image). Downgrades are then allowed.
	Release *fleet.Release
	// Sinks receive every event, each on its own channel.
	Sinks []Sink
	// Analyzer runs the analyses the manifest names; nil reads every new instance's
	// Prometheus endpoint.
	Analyzer rollout.Analyzer
}

// Result is how a session ended.
type Result struct {
	// Finished is the engine's last event: the outcome.
	Finished rollout.Finished
	// RemovedImages are the images collected after a promotion; GCErr says why none were.
	RemovedImages []string
	GCErr         error
}

// Request is the rollout the session runs.
func (s *Session) Request() rollout.Request {
	req := s.Project.Request()
	req.Version = s.Project.Manifest.Version.Original()
	allow := s.AllowDowngrade
	if s.Release != nil {
		req.Version, allow = s.Release.Version, true
	}
	req.Admit = admit(allow)
	return req
}

// baker bakes the manifest's release (or returns the kept one to redeploy); either runs
// with the secrets of version secrets, the stack's current ones.
func (s *Session) baker(secrets string) rollout.Baker {
	if s.Release != nil {
		rel := *s.Release
		rel.Secrets = secrets
		return rollout.BakeFunc(func(context.Context) (fleet.Release, error) { return rel, nil })
	}
	return rollout.BakeFunc(func(ctx context.Context) (fleet.Release, error) {
		rel, err := s.Project.Bake(ctx, s.Target)
		rel.Secrets = secrets
		return rel, err
	})
}

// Run runs the rollout to its end. The error is for what kept it from starting (the
// lock, the control socket); how it ended is in Result.Finished.
func (s *Session) Run(ctx context.Context) (Result, error) {
	p := s.Project
	store, err := p.Releases()
	if err != nil {
		return Result{}, err
	}
	// A secret without a value stops the rollout before anything is baked.
	secrets, err := p.secretsVersion(store)
	if err != nil {
		return Result{}, err
	}
	command := s.Command
	if command == "" {
		command = "kiln rollout"
	}
	unlock, who, err := LockStack(ctx, store, command, s.BreakLock)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	jr := &journal{store: store, who: who}

	controls := make(chan rollout.Control)
	hub := control.NewHub(5000)
	stopControl, err := control.Serve(ctx, p.ControlSocket(), controls, hub)
	if err != nil {
		return Result{}, err
	}
	defer stopControl()

	analyzer := s.Analyzer
	if analyzer == nil {
		analyzer = targetAnalyzer{templates: p.Manifest.Analysis, target: s.Target}
	}
	events, wait := fanOut(append(s.Sinks, hubSink(hub)))
	eng := &rollout.Engine{Target: s.Target, Events: events, Controls: controls, Journal: jr, Analyzer: analyzer}
	started := time.Now()
	fin := eng.Run(ctx, s.Request(), s.baker(secrets))
	close(events)
	wait()
	hub.Close()
	jr.record(fin, started)

	res := Result{Finished: fin}
	if fin.Outcome == rollout.Promoted {
		res.RemovedImages, res.GCErr = s.collectImages(ctx)
	}
	return res, nil
}

// collectImages removes images beyond the manifest's images.keep, sparing every image a
// slot still uses.
func (s *Session) collectImages(ctx context.Context) ([]string, error) {
	spec, ok, err := s.Target.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("image gc: %w", err)
	}
	var inUse []fleet.Image
	if ok {
		for _, sl := range fleet.Slots {
			if r := spec.Slots[sl].Release; r != nil {
				inUse = append(inUse, r.Image)
			}
		}
	}
	removed, err := s.Target.CollectImages(ctx, s.Project.Manifest.Images.Keep, inUse)
	if err != nil {
		return nil, fmt.Errorf("image gc: %w", err)
	}
	return removed, nil
}

// hubSink publishes every event to the control socket's watchers (kiln watch, consoles
// in other terminals).
func hubSink(hub *control.Hub) Sink {
	return func(events <-chan rollout.Event) {
		for ev := range events {
			if b, err := rollout.MarshalEvent(ev); err == nil {
				hub.Publish(b)
			}
		}
	}
}

// fanOut returns the channel the engine sends to and a wait that returns once every
// sink has drained its copy after that channel is closed.
func fanOut(sinks []Sink) (chan<- rollout.Event, func()) {
	in := make(chan rollout.Event, 64)
	var wg sync.WaitGroup
	outs := make([]chan rollout.Event, len(sinks))
	for i, sink := range sinks {
		outs[i] = make(chan rollout.Event, 64)
		wg.Go(func() { sink(outs[i]) })
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range in {
			for _, o := range outs {
				o <- ev
			}
		}
		for _, o := range outs {
			close(o)
		}
	}()
	return in, func() {
		<-done
		wg.Wait()
	}
}
