package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kilnhq/kiln/internal/clock"
	"golang.org/x/sync/errgroup"
)

// AgentConfig configures Agent, the long-running mode kiln bakes into images.
type AgentConfig struct {
	// Dump is the dump to take; its DumpID is chosen by the agent.
	Dump DumpConfig
	// DumpEvery is the time from one dump's start to the next (default 24h).
	DumpEvery time.Duration
	// IncrementalEvery is how often the table's stream is read into change
	// volumes of the current dump (0: never). It must be well under 24 h.
	IncrementalEvery time.Duration
	// Incremental carries the streams client and volume size for incrementals.
	Incremental IncrementalConfig
	// RetryEvery is the wait after a failed dump or incremental (default 1m).
	RetryEvery time.Duration
}

// Agent runs until ctx is done: it keeps the table's current dump going
// (resuming an unfinished one), starts a new dump DumpEvery after the last
// one started, and every IncrementalEvery reads the stream into change
// volumes of the current dump. Failures are logged and retried; the agent
// returns only on cancellation or bad configuration.
func Agent(ctx context.Context, cfg AgentConfig) error {
	probe := cfg.Dump
	probe.DumpID = "agent" // chosen per dump below
	if err := probe.defaults(); err != nil {
		return err
	}
	cfg.Dump = probe
	if cfg.DumpEvery <= 0 {
		cfg.DumpEvery = 24 * time.Hour
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = time.Minute
	}
	if cfg.IncrementalEvery >= 24*time.Hour {
		return fmt.Errorf("agent: --incremental-every %v must be under the stream's 24 h retention", cfg.IncrementalEvery)
	}
	cfg.Dump.Clock = clock.Or(cfg.Dump.Clock)
	if cfg.Dump.Log == nil {
		cfg.Dump.Log = slog.Default()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return agentDumps(ctx, cfg) })
	if cfg.IncrementalEvery > 0 {
		g.Go(func() error { return agentIncrementals(ctx, cfg) })
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func agentDumps(ctx context.Context, cfg AgentConfig) error {
	d, log, clk := cfg.Dump, cfg.Dump.Log, cfg.Dump.Clock
	for {
		wait, err := untilNextDump(ctx, cfg)
		if err == nil && wait > 0 {
			log.Info("agent: next dump later", "in", wait.Round(time.Second).String())
			if err := clock.Sleep(ctx, clk, wait); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			d.DumpID, err = resolveAutoID(ctx, d.Store, d.Table, clk)
		}
		if err == nil {
			_, err = Dump(ctx, d)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Error("agent: dump failed; retrying", "err", err, "retry_in", cfg.RetryEvery.String())
			if err := clock.Sleep(ctx, clk, cfg.RetryEvery); err != nil {
				return err
			}
		}
	}
}

// untilNextDump returns how long until the next dump is due: 0 when the
// current one is unfinished or there is none.
func untilNextDump(ctx context.Context, cfg AgentConfig) (time.Duration, error) {
	var p autoPointer
	found, err := getJSON(ctx, cfg.Dump.Store, autoKey(cfg.Dump.Table), &p)
	if err != nil || !found {
		return 0, err
	}
	m, err := LoadManifest(ctx, cfg.Dump.Store, p.DumpID)
	if errors.Is(err, ErrIncomplete) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.StartTime.Add(cfg.DumpEvery).Sub(cfg.Dump.Clock.Now()), nil
}

func agentIncrementals(ctx context.Context, cfg AgentConfig) error {
	log, clk := cfg.Dump.Log, cfg.Dump.Clock
	for {
		var p autoPointer
		found, err := getJSON(ctx, cfg.Dump.Store, autoKey(cfg.Dump.Table), &p)
		if err == nil && found {
			inc := cfg.Incremental
			inc.Store, inc.DumpID, inc.Table, inc.DB, inc.Clock, inc.Log = cfg.Dump.Store, p.DumpID, cfg.Dump.Table, cfg.Dump.DB, clk, log
			_, err = Incremental(ctx, inc)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Error("agent: incremental failed", "err", err)
		}
		if err := clock.Sleep(ctx, clk, cfg.IncrementalEvery); err != nil {
			return err
		}
	}
}
