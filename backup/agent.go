package backup

import (
	"context"
	"errors"
	"fmt"
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
	// Holder names this agent in the table's lease (instance, host, release).
	Holder LeaseHolder
	// LeaseTTL is how long a lease outlives its holder's last renewal
	// (default 30s): a killed holder's work is taken over after about that.
	LeaseTTL time.Duration
}

// Agent runs until ctx is done. Of all agents of a table (every instance
// of every slot bakes one) only the holder of the table's lease works; the
// others stand by and take over when the lease is released or lapses. The
// holder keeps the table's current dump going (resuming an unfinished one
// where any agent left it), starts a new dump DumpEvery after the last one
// started, and every IncrementalEvery reads the stream into change volumes
// of the current dump. Failures are logged and retried; the agent returns
// only on cancellation (after its work stopped and it released the lease)
// or bad configuration.
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
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.IncrementalEvery >= 24*time.Hour {
		return fmt.Errorf("agent: --incremental-every %v must be under the stream's 24 h retention", cfg.IncrementalEvery)
	}
	d := cfg.Dump
	log := d.Log.With("instance", cfg.Holder.Instance)
	cfg.Dump.Log = log
	lease := NewLease(d.Store, d.Table, cfg.Holder, cfg.LeaseTTL, d.Clock)
	d.Progress.Lease.Store(lease)
	var lastHolder string
	for {
		held, err := lease.TryAcquire(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Error("agent: reading the table's lease failed; retrying", "err", err)
		}
		if !held {
			if st := lease.Status(); st.Holder.Instance != lastHolder {
				lastHolder = st.Holder.Instance
				log.Info("agent: standby", "table", d.Table, "state", LeaseStandby, "holder", st.Holder.Instance, "holder_host", st.Holder.Host, "holder_release", st.Holder.Release)
			}
			if err := clock.Sleep(ctx, d.Clock, cfg.LeaseTTL/3); err != nil {
				return nil
			}
			continue
		}
		lastHolder = cfg.Holder.Instance
		log.Info("agent: lease acquired; working", "table", d.Table, "state", LeaseActive, "lease_ttl", cfg.LeaseTTL.String())
		err = agentWork(ctx, cfg, lease)
		if ctx.Err() != nil {
			// The work has stopped: hand the lease over at once.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			rerr := lease.Release(rctx)
			cancel()
			log.Info("agent: stopped; lease released", "err", rerr)
			return nil
		}
		if err != nil && !errors.Is(err, ErrLeaseLost) {
			return err
		}
		log.Warn("agent: lease lost; standing by", "err", err)
	}
}

// agentWork does the holder's work until ctx is done or the lease is lost.
func agentWork(ctx context.Context, cfg AgentConfig, lease *Lease) error {
	g, wctx := errgroup.WithContext(ctx)
	cfg.Dump.Guard = func() error {
		if !lease.Held() {
			return ErrLeaseLost
		}
		return nil
	}
	g.Go(func() error {
		return lease.Keep(wctx, func(err error) { cfg.Dump.Log.Warn("agent: lease renewal failed; retrying", "err", err) })
	})
	g.Go(func() error { return agentDumps(wctx, cfg) })
	if cfg.IncrementalEvery > 0 {
		g.Go(func() error { return agentIncrementals(wctx, cfg) })
	}
	return g.Wait()
}

func agentDumps(ctx context.Context, cfg AgentConfig) error {
	d, log, clk := cfg.Dump, cfg.Dump.Log, cfg.Dump.Clock
	d.AdoptPlan = true // a dump started under other settings goes on with its own
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
		if errors.Is(err, ErrLeaseLost) {
			return err
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
			inc.Store, inc.DumpID, inc.Table, inc.DB, inc.Clock, inc.Log, inc.Guard = cfg.Dump.Store, p.DumpID, cfg.Dump.Table, cfg.Dump.DB, clk, log, cfg.Dump.Guard
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
