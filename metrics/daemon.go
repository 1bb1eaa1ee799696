package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
)

// Version is kiln-metrics' version, the component's version in component.yaml.
const Version = "0.1.0"

// Daemon is a running kiln-metrics: collectors, the HTTP server, the summary window and
// the CloudWatch publisher, rebuilt on Reload.
type Daemon struct {
	log        *slog.Logger
	getenv     func(string) string
	now        func() time.Time
	configPath string // "" runs on DefaultConfig
	listen     string // --listen, overrides the file
	statfs     func(string) (collect.FSStats, error)
	httpClient *http.Client

	mu sync.RWMutex
	st *state

	gathers       chan struct{} // bounds concurrent /metrics gathers, hence memory
	reloadsOK     atomic.Uint64
	reloadsFailed atomic.Uint64
	tickMu        sync.Mutex   // serialises ticks of the loop and of Reload
	lastPublish   time.Time    // guarded by tickMu
	lastRefresh   time.Time    // guarded by tickMu
	lastRelease   atomic.Int64 // unix nanoseconds of the last releaseMemory
	started       time.Time
}

// DaemonOptions configures NewDaemon. Zero values mean the real thing.
type DaemonOptions struct {
	ConfigPath string              // configuration file; "" runs on DefaultConfig
	Listen     string              // overrides the file's listen address
	Log        *slog.Logger        // nil discards logs
	Getenv     func(string) string // nil means an empty environment
	Now        func() time.Time    // nil means time.Now
	// Statfs replaces statfs(2) for the filesystem collector (tests).
	Statfs func(string) (collect.FSStats, error)
}

// NewDaemon loads the configuration (or the defaults without a file) and builds the
// collectors. Configuration problems come back as joined *ConfigError values.
func NewDaemon(ctx context.Context, o DaemonOptions) (*Daemon, error) {
	d := &Daemon{log: o.Log, getenv: o.Getenv, now: o.Now, configPath: o.ConfigPath, listen: o.Listen, statfs: o.Statfs,
		gathers: make(chan struct{}, 2), httpClient: &http.Client{Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: 4, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute, DisableCompression: false,
		}}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.getenv == nil {
		d.getenv = func(string) string { return "" }
	}
	d.started = d.now()
	cfg, err := d.loadConfig()
	if err != nil {
		return nil, err
	}
	st, err := d.buildState(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	d.st = st
	return d, nil
}

func (d *Daemon) loadConfig() (Config, error) {
	var cfg Config
	if d.configPath == "" {
		cfg = DefaultConfig(d.getenv)
		l := &loader{file: "(defaults)"}
		if err := l.validate(&cfg); err != nil {
			return cfg, err
		}
	} else {
		var err error
		if cfg, err = LoadConfig(d.configPath, d.getenv); err != nil {
			return cfg, err
		}
	}
	if d.listen != "" {
		cfg.Listen = d.listen
	}
	return cfg, nil
}

func (d *Daemon) state() *state {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.st
}

// Config returns the configuration in effect.
func (d *Daemon) Config() Config { return d.state().cfg }

// Reload re-reads the configuration file. On error the running configuration stays in
// effect. The listen address cannot change without a restart.
func (d *Daemon) Reload(ctx context.Context) error {
	err := d.reload(ctx)
	if err != nil {
		d.reloadsFailed.Add(1)
		d.log.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	d.reloadsOK.Add(1)
	d.log.Info("configuration reloaded", "config", d.configPath)
	return nil
}

func (d *Daemon) reload(ctx context.Context) error {
	cfg, err := d.loadConfig()
	if err != nil {
		return err
	}
	old := d.state()
	if cfg.Listen != old.cfg.Listen {
		d.log.Warn("listen address changes need a restart; keeping the old one", "running", old.cfg.Listen, "configured", cfg.Listen)
		cfg.Listen = old.cfg.Listen
	}
	st, err := d.buildState(ctx, cfg, old)
	if err != nil {
		return err
	}
	if old.pub != nil && old.pub != st.pub {
		if err := old.stopPublisher(old.cfg.ShutdownTimeout.D()); err != nil {
			d.log.Warn("flush of the replaced CloudWatch publisher incomplete", "err", err)
		}
	}
	st.startPublisher(ctx)
	d.mu.Lock()
	d.st = st
	d.mu.Unlock()
	d.tickMu.Lock()
	d.lastRefresh = time.Time{} // fill the new probes' caches now rather than an interval later
	d.tickMu.Unlock()
	d.tick(ctx)
	return nil
}

// Run serves HTTP on ln and runs the collection loop until ctx ends, then flushes the
// publisher within the configured shutdown timeout.
func (d *Daemon) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	d.state().startPublisher(ctx)

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		d.loop(loopCtx)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr: // the listener failed: stop everything as on SIGTERM
	}
	stopLoop()
	<-loopDone
	st := d.state()
	timeout := st.cfg.ShutdownTimeout.D()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		d.log.Warn("HTTP shutdown", "err", serr)
	}
	if st.pub != nil {
		// One last gather so that the final interval is not lost, then flush.
		st.pub.Publish(d.now(), d.gather(sctx, st))
		if ferr := st.stopPublisher(timeout); ferr != nil {
			d.log.Warn("CloudWatch flush incomplete at shutdown", "err", ferr, "buffered", st.pub.Stats().Buffered)
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (d *Daemon) loop(ctx context.Context) {
	for {
		d.tick(ctx)
		t := time.NewTimer(d.untilDue())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// untilDue is the wait until the next refresh or publish is due, so that the cadences do
// not drift by the time a tick takes.
func (d *Daemon) untilDue() time.Duration {
	d.tickMu.Lock()
	defer d.tickMu.Unlock()
	cfg := d.state().cfg
	now := d.now()
	wait := d.lastRefresh.Add(cfg.Interval.D()).Sub(now)
	if cfg.CloudWatch.Enabled {
		wait = min(wait, d.lastPublish.Add(cfg.CloudWatch.Interval.D()).Sub(now))
	}
	return max(wait, 10*time.Millisecond)
}

// tick refreshes probes and scrapes when their interval has passed (concurrently, each
// under its own timeout) and hands a gather to the publisher when its interval has passed.
// The due times allow for a timer firing a little early.
func (d *Daemon) tick(ctx context.Context) {
	d.tickMu.Lock()
	defer d.tickMu.Unlock()
	st := d.state()
	const slack = 50 * time.Millisecond
	if now := d.now(); now.Sub(d.lastRefresh) >= st.cfg.Interval.D()-slack {
		d.lastRefresh = now
		var wg sync.WaitGroup
		for _, c := range st.periodic {
			wg.Go(func() { c.refresh(ctx, d.now) })
		}
		wg.Wait()
	}
	if st.pub != nil && ctx.Err() == nil {
		if now := d.now(); now.Sub(d.lastPublish) >= st.cfg.CloudWatch.Interval.D()-slack {
			d.lastPublish = now
			st.pub.Publish(now, d.gather(ctx, st))
			d.releaseMemory()
		}
	}
}

// releaseMemoryEvery bounds how often releaseMemory collects: at Prometheus' usual 15-60 s
// and up to 10 scrapes a second every gather's garbage goes back to the OS; a faster
// scrape storm shares one collection per 100 ms.
const releaseMemoryEvery = 100 * time.Millisecond

// releaseMemory runs a garbage collection and returns free memory to the OS, at most once
// per releaseMemoryEvery. Left alone, the Go runtime keeps the garbage of several gathers
// resident until the heap reaches its goal. Collecting after every gather rather than
// once a second costs about 0.35 ms of CPU per gather and lowers the peak resident set by
// about 0.9 MiB (docs/benchmarks.md).
func (d *Daemon) releaseMemory() {
	now := d.now().UnixNano()
	last := d.lastRelease.Load()
	if now-last < int64(releaseMemoryEvery) || !d.lastRelease.CompareAndSwap(last, now) {
		return
	}
	debug.FreeOSMemory()
}
