package lb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Options tune a Server; the zero value is ready for production.
type Options struct {
	// Logger receives the lb's logs; nil discards them.
	Logger *slog.Logger
	// Rand chooses groups; inject a seeded one for reproducible tests. nil
	// uses math/rand/v2's global source.
	Rand *rand.Rand
	// Now is the clock for health-check timestamps; nil means time.Now.
	Now func() time.Time
}

// Server is a running or ready-to-run load balancer.
type Server struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	rngMu sync.Mutex
	rng   *rand.Rand

	table    atomic.Pointer[table]
	health   atomic.Pointer[HealthCheck]
	reloadMu sync.Mutex // serialises reloads and health-loop start/stop
	running  context.Context
	loops    sync.WaitGroup

	total  atomic.Int64
	failed atomic.Int64

	listenAddr string
	adminAddr  string

	healthClient *http.Client
	proxy        http.Handler
}

// Bounds of the admin listener, which only kiln's provider talks to.
const (
	adminTimeout        = 10 * time.Second // to read a request, and to write an answer once it is ready
	adminIdleTimeout    = time.Minute
	adminMaxHeaderBytes = 16 << 10
)

// table is an immutable routing table; a reload swaps in a new one.
type table struct {
	cfg      *Config
	groups   []*group
	targets  map[string]*target // by id
	draining []drainingTarget   // removed by the reload that built this table
}

type group struct {
	name    string
	weight  int
	targets []*target
	rr      atomic.Uint64
}

type drainingTarget struct {
	group string
	t     *target
}

// Ready is the JSON the lb writes atomically to its ready file once both
// listeners are bound.
type Ready struct {
	// PID is the lb's process id.
	PID int `json:"pid"`
	// Listen is the bound proxy address.
	Listen string `json:"listen"`
	// Admin is the bound admin address.
	Admin string `json:"admin"`
	// Generation is the generation of the config the lb started with.
	Generation int64 `json:"generation"`
}

// ReloadResult is the admin API's answer to a successful POST /reload.
type ReloadResult struct {
	// Generation is the generation now in effect.
	Generation int64 `json:"generation"`
	// Drained reports whether every target that stopped receiving traffic
	// finished its in-flight requests within drainTimeout.
	Drained bool `json:"drained"`
}

// Status is the admin API's answer to GET /status.
type Status struct {
	// Generation is the generation of the config in effect.
	Generation int64 `json:"generation"`
	// Listen is the bound proxy address.
	Listen string `json:"listen"`
	// Groups lists the configured groups in config order. A target removed
	// by the last reload that is still draining is listed under its old
	// group (a weight-0 entry if that group is gone).
	Groups []GroupStatus `json:"groups"`
	// Requests counts proxied requests.
	Requests RequestCounts `json:"requests"`
}

// GroupStatus is one group in Status.
type GroupStatus struct {
	// Name is the group name.
	Name string `json:"name"`
	// Weight is the group's configured weight.
	Weight int `json:"weight"`
	// Targets are the group's targets in config order.
	Targets []TargetStatus `json:"targets"`
}

// TargetStatus is one target in Status.
type TargetStatus struct {
	// ID is the target id.
	ID string `json:"id"`
	// Address is the target's host:port.
	Address string `json:"address"`
	// Health is the target's state.
	Health Health `json:"health"`
	// LastCheck is the time of the last health check (RFC 3339 with
	// nanoseconds), empty before the first.
	LastCheck string `json:"lastCheck"`
	// LastError is the last check's error, empty if it passed.
	LastError string `json:"lastError"`
	// ConsecutiveOK counts consecutive passed checks.
	ConsecutiveOK int `json:"consecutiveOk"`
	// ConsecutiveFail counts consecutive failed checks.
	ConsecutiveFail int `json:"consecutiveFail"`
	// Inflight is the number of requests being proxied to the target.
	Inflight int64 `json:"inflight"`
}

// RequestCounts counts proxied requests.
type RequestCounts struct {
	// Total counts every request received on the proxy listener.
	Total int64 `json:"total"`
	// Failed counts requests the lb itself answered with a 5xx (no eligible
	// target, upstream error).
	Failed int64 `json:"failed"`
}

// Run loads the config at configPath, serves until ctx is cancelled, then
// stops accepting, lets in-flight requests finish for up to drainTimeout and
// returns nil. Once both listeners are bound it writes a Ready document
// atomically to readyFile (skipped if empty). Reloads go through POST
// /reload on the admin listener.
func Run(ctx context.Context, configPath, readyFile string, log *slog.Logger) error {
	s, err := New(configPath, Options{Logger: log})
	if err != nil {
		return err
	}
	return s.Run(ctx, readyFile)
}

// New loads and validates the config at configPath and returns a Server
// that starts working with Run.
func New(configPath string, opts Options) (*Server, error) {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return nil, err
	}
	s := &Server{
		path: configPath,
		log:  opts.Logger,
		now:  opts.Now,
		rng:  opts.Rand,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.healthClient = &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx passes; never follow it elsewhere
		},
	}
	s.proxy = s.newReverseProxy()
	tb, _, _ := buildTable(cfg, nil)
	s.table.Store(tb)
	s.health.Store(&cfg.Health)
	return s, nil
}

// buildTable builds the table for cfg, reusing old's targets that keep
// their id and address, and reports the targets that are new and gone.
func buildTable(cfg *Config, old *table) (tb *table, added, removed []*target) {
	tb = &table{cfg: cfg, targets: map[string]*target{}}
	for _, gc := range cfg.Groups {
		g := &group{name: gc.Name, weight: gc.Weight}
		for _, tc := range gc.Targets {
			var t *target
			if old != nil {
				if o := old.targets[tc.ID]; o != nil && o.address == tc.Address {
					t = o
				}
			}
			if t == nil {
				t = newTarget(tc.ID, tc.Address)
				added = append(added, t)
			}
			g.targets = append(g.targets, t)
			tb.targets[tc.ID] = t
		}
		tb.groups = append(tb.groups, g)
	}
	if old != nil {
		for _, og := range old.groups {
			for _, t := range og.targets {
				if tb.targets[t.id] != t {
					removed = append(removed, t)
					tb.draining = append(tb.draining, drainingTarget{group: og.name, t: t})
				}
			}
		}
	}
	return tb, added, removed
}

// Run serves the proxy and admin listeners until ctx is cancelled; see the
// package-level Run.
func (s *Server) Run(ctx context.Context, readyFile string) error {
	cfg := s.table.Load().cfg
	var lc net.ListenConfig
	pl, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("lb listen: %w", err)
	}
	al, err := lc.Listen(ctx, "tcp", cfg.Admin)
	if err != nil {
		pl.Close()
		return fmt.Errorf("lb admin listen: %w", err)
	}
	s.listenAddr, s.adminAddr = pl.Addr().String(), al.Addr().String()

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	s.reloadMu.Lock()
	s.running = loopCtx
	for _, t := range s.table.Load().targets {
		s.startHealth(t)
	}
	s.reloadMu.Unlock()
	defer func() {
		stopLoops()
		s.loops.Wait()
		for _, t := range s.table.Load().targets {
			t.up.closeIdle()
		}
	}()

	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	px := cfg.Proxy
	proxySrv := &http.Server{Handler: s, MaxHeaderBytes: px.MaxHeaderBytes, ReadHeaderTimeout: px.ReadHeaderTimeout.Std(),
		IdleTimeout: px.IdleTimeout.Std(), ErrorLog: errLog}
	adminSrv := &http.Server{Handler: s.adminHandler(), MaxHeaderBytes: adminMaxHeaderBytes, ReadHeaderTimeout: adminTimeout,
		ReadTimeout: adminTimeout, WriteTimeout: adminTimeout, IdleTimeout: adminIdleTimeout, ErrorLog: errLog}
	f := newFront(s, pl, px)
	errc := make(chan error, 3)
	go func() { errc <- f.serve() }()
	go func() { errc <- proxySrv.Serve(f.handoff) }()
	go func() { errc <- adminSrv.Serve(al) }()

	if readyFile != "" {
		r := Ready{PID: os.Getpid(), Listen: s.listenAddr, Admin: s.adminAddr, Generation: cfg.Generation}
		if err := writeJSONAtomic(readyFile, r); err != nil {
			f.close()
			proxySrv.Close()
			adminSrv.Close()
			return fmt.Errorf("lb ready file: %w", err)
		}
	}
	s.log.Info("lb ready", "listen", s.listenAddr, "admin", s.adminAddr, "generation", cfg.Generation)

	select {
	case <-ctx.Done():
	case err := <-errc:
		f.close()
		proxySrv.Close()
		adminSrv.Close()
		return fmt.Errorf("lb serve: %w", err)
	}

	drain := s.table.Load().cfg.DrainTimeout.Std()
	s.log.Info("lb stopping", "drainTimeout", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	// The lean path first: its requests may still hand connections over.
	ferr := f.shutdown(sctx)
	if err := errors.Join(ferr, proxySrv.Shutdown(sctx)); err != nil {
		s.log.Warn("lb drain timed out, closing remaining connections", "err", err)
		proxySrv.Close()
	}
	if err := adminSrv.Shutdown(sctx); err != nil {
		adminSrv.Close()
	}
	s.log.Info("lb stopped")
	return nil
}

// startHealth starts t's health-check loop; reloadMu must be held.
func (s *Server) startHealth(t *target) {
	if s.running == nil {
		return // Run starts the loops of the table in effect
	}
	ctx, cancel := context.WithCancel(s.running)
	t.stopHealth = cancel
	t.healthDone = make(chan struct{})
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		defer close(t.healthDone)
		s.healthLoop(ctx, t)
	}()
}

func (s *Server) healthLoop(ctx context.Context, t *target) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		hc := *s.health.Load()
		err := t.check(ctx, s.healthClient, hc)
		if ctx.Err() != nil {
			return
		}
		if from, to := t.record(s.now(), err, hc); from != to {
			attrs := []any{"target", t.id, "address", t.address, "from", from, "to", to}
			if err != nil {
				attrs = append(attrs, "err", err)
			}
			s.log.Info("target health changed", attrs...)
		}
		timer.Reset(hc.Interval.Std())
	}
}

// Addrs returns the bound proxy and admin addresses once Run has bound them.
func (s *Server) Addrs() (listen, admin string) { return s.listenAddr, s.adminAddr }

// InvalidConfigError is returned by Reload when the config file cannot be
// used; nothing changed.
type InvalidConfigError struct{ Err error }

func (e *InvalidConfigError) Error() string { return e.Err.Error() }
func (e *InvalidConfigError) Unwrap() error { return e.Err }

// Reload re-reads and validates the config file, swaps the routing table
// atomically, then waits until every target that stopped receiving traffic
// (removed, or its group's weight became 0) has no in-flight requests,
// bounded by the new drainTimeout and ctx. An invalid config, or one that
// changes listen or admin, returns an *InvalidConfigError and changes
// nothing.
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := LoadConfig(s.path)
	if err != nil {
		return ReloadResult{}, &InvalidConfigError{Err: err}
	}
	old := s.table.Load()
	if f := old.cfg.RestartField(cfg); f != "" {
		return ReloadResult{}, &InvalidConfigError{Err: fmt.Errorf("%s: %s: cannot change on reload; restart the lb", s.path, f)}
	}

	tb, added, removed := buildTable(cfg, old)
	// Targets that were routable and are not any more must drain.
	var wait []*target
	routable := func(tb *table) map[*target]bool {
		m := map[*target]bool{}
		for _, g := range tb.groups {
			if g.weight > 0 {
				for _, t := range g.targets {
					m[t] = true
				}
			}
		}
		return m
	}
	before, after := routable(old), routable(tb)
	for t := range before {
		if !after[t] {
			wait = append(wait, t)
		}
	}
	for _, t := range removed {
		if !before[t] {
			wait = append(wait, t) // not routable, but may still finish older requests
		}
	}

	s.health.Store(&cfg.Health)
	for _, t := range added {
		s.startHealth(t)
	}
	// From here on no request picks from the old table (see acquire).
	s.table.Store(tb)
	for _, t := range removed {
		t.retired.Store(true)
		if t.stopHealth != nil {
			t.stopHealth()
		}
	}
	s.log.Info("lb reloaded", "generation", cfg.Generation, "added", len(added), "removed", len(removed), "draining", len(wait))

	drained := s.waitIdle(ctx, wait, cfg.DrainTimeout.Std())
	// Requests that outlive the drain close their target's idle
	// connections themselves when the last one ends (see releaser).
	for _, t := range removed {
		t.up.closeIdle()
	}
	if !drained {
		s.log.Warn("lb reload: targets still busy after drainTimeout", "generation", cfg.Generation)
	}
	return ReloadResult{Generation: cfg.Generation, Drained: drained}, nil
}

// waitIdle polls until every target has no in-flight request, d elapses or
// ctx ends, and reports whether they all became idle.
func (s *Server) waitIdle(ctx context.Context, ts []*target, d time.Duration) bool {
	idle := func() bool {
		for _, t := range ts {
			if t.inflight.Load() > 0 {
				return false
			}
		}
		return true
	}
	if idle() {
		return true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return idle()
		case <-deadline.C:
			return idle()
		case <-tick.C:
			if idle() {
				return true
			}
		}
	}
}

// Status returns the lb's current state.
func (s *Server) Status() Status {
	tb := s.table.Load()
	st := Status{
		Generation: tb.cfg.Generation,
		Listen:     s.listenAddr,
		Groups:     make([]GroupStatus, 0, len(tb.groups)),
		Requests:   RequestCounts{Total: s.total.Load(), Failed: s.failed.Load()},
	}
	for _, g := range tb.groups {
		gs := GroupStatus{Name: g.name, Weight: g.weight, Targets: make([]TargetStatus, 0, len(g.targets))}
		for _, t := range g.targets {
			gs.Targets = append(gs.Targets, t.snapshot(false))
		}
		st.Groups = append(st.Groups, gs)
	}
	for i := range tb.draining {
		d := &tb.draining[i]
		if d.t.inflight.Load() == 0 {
			continue
		}
		idx := -1
		for j := range st.Groups {
			if st.Groups[j].Name == d.group {
				idx = j
			}
		}
		if idx < 0 {
			st.Groups = append(st.Groups, GroupStatus{Name: d.group, Targets: []TargetStatus{}})
			idx = len(st.Groups) - 1
		}
		st.Groups[idx].Targets = append(st.Groups[idx].Targets, d.t.snapshot(true))
	}
	return st
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Reload(r.Context())
		// A reload waits for draining targets, longer than adminTimeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(adminTimeout))
		if err != nil {
			s.log.Warn("lb reload refused", "err", err)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSONAtomic writes v as JSON so that readers never see a partial document.
func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, fileperm.File)
}

func (s *Server) intN(n int) int {
	if s.rng == nil {
		return rand.IntN(n)
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}
