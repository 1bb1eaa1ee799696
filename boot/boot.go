package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/envexpand"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Restart backoff: the delay starts at BackoffMin, doubles on every
// restart up to BackoffMax, and starts over once a run lasted BackoffReset.
const (
	BackoffMin   = 100 * time.Millisecond
	BackoffMax   = 10 * time.Second
	BackoffReset = 10 * time.Second
)

// inheritedEnv are the only variables of boot's own environment that units
// see, so that whatever started boot (and its secrets) does not leak into
// the instance.
var inheritedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// Options tune RunWith; the zero value is production behaviour.
type Options struct {
	// Logger receives boot's own logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for status times and uptimes; nil means time.Now.
	Now func() time.Time
	// After is used for restart backoff and schedule waits (not for the
	// drain timeout); nil means time.After. Tests inject a fast one.
	After func(time.Duration) <-chan time.Time
}

// Run boots the instance described by the spec at specPath and supervises
// its units until ctx is cancelled; then it sends SIGTERM to every unit,
// waits up to drainTimeout, sends SIGKILL to the rest and returns nil.
// Errors are returned only for a spec or image that cannot be used.
func Run(ctx context.Context, specPath string, log *slog.Logger) error {
	return RunWith(ctx, specPath, Options{Logger: log})
}

// RunWith is Run with injectable logger, clock and timers.
func RunWith(ctx context.Context, specPath string, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	spec, err := LoadSpec(specPath)
	if err != nil {
		return err
	}
	if spec.Instance == "" {
		if spec.Instance, err = instanceID(ctx); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
		if _, set := spec.Env["KILN_INSTANCE"]; !set {
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			spec.Env["KILN_INSTANCE"] = spec.Instance
		}
	}
	log := opts.Logger.With("instance", spec.Instance)
	if spec.Digest != "" {
		if err := images.Verify(spec.ImageDir, spec.Digest); err != nil {
			return fmt.Errorf("boot %s: refusing to start from a changed image: %w", spec.Instance, err)
		}
	}
	var secrets map[string]string
	if spec.SSM != nil {
		secrets, err = readSSM(ctx, spec.SSM)
	} else {
		secrets, err = readSecrets(spec.SecretsFD)
	}
	if err != nil {
		return fmt.Errorf("boot %s: %w", spec.Instance, err)
	}
	units, err := LoadUnits(spec.ImageDir)
	if err != nil {
		return err
	}
	instEnv := spec.UnitEnv()

	logDir := filepath.Join(spec.DataDir, "logs")
	if err := os.MkdirAll(logDir, fileperm.Dir); err != nil {
		return fmt.Errorf("boot %s: %w", spec.Instance, err)
	}
	b := newBoard(filepath.Join(spec.DataDir, "status.json"), units, opts.Now, log)
	sp := startSpawner()
	defer sp.stop()

	var runners []*runner
	defer func() {
		for _, r := range runners {
			r.logs.Close()
		}
	}()
	for _, u := range units {
		argv, env, err := unitCommand(u, instEnv, secrets)
		if err != nil {
			return err
		}
		lf, err := openLog(filepath.Join(logDir, u.Name+".log"), MaxLogSize)
		if err != nil {
			return fmt.Errorf("boot %s: unit %s log: %w", spec.Instance, u.Name, err)
		}
		runners = append(runners, &runner{
			unit: u, path: filepath.Join(spec.ImageDir, u.Command), argv: argv, env: env,
			dir: spec.DataDir, logs: lf, board: b, opts: opts, spawner: sp,
			drain: time.Duration(spec.DrainTimeout), log: log.With("unit", u.Name),
		})
	}
	log.Info("boot started", "units", len(units))

	// Units start one after the other in name order; each is supervised
	// on its own once its first start was attempted.
	var wg sync.WaitGroup
	for _, r := range runners {
		r.firstStart = make(chan struct{})
		wg.Go(func() { r.supervise(ctx) })
		<-r.firstStart
	}
	wg.Wait()
	b.write()
	log.Info("boot stopped")
	return nil
}

// unitCommand expands a unit's args and env and builds its environment. A secret may
// only reach a unit's environment: an argument that names one, directly or through an
// env variable holding one, is refused, since any process can read a command line.
func unitCommand(u *Unit, instEnv, secrets map[string]string) (argv, env []string, err error) {
	fromInst := func(k string) (string, bool) {
		if name, ok := strings.CutPrefix(k, envexpand.SecretPrefix); ok {
			v, ok := secrets[name]
			return v, ok
		}
		v, ok := instEnv[k]
		return v, ok
	}
	unitEnv := map[string]string{}
	holdsSecret := map[string]bool{}
	for k, v := range u.Env {
		x, err := envexpand.Expand(v, fromInst)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: env.%s: %w (the instance env and its secrets have no such variable)", u.file, k, err)
		}
		unitEnv[k] = x
		_, holdsSecret[k] = envexpand.SecretRefs(v)
	}
	var onCommandLine string
	lookup := func(k string) (string, bool) {
		if strings.HasPrefix(k, envexpand.SecretPrefix) || holdsSecret[k] {
			onCommandLine = k
			return "", false
		}
		if v, ok := instEnv[k]; ok {
			return v, true
		}
		v, ok := unitEnv[k]
		return v, ok
	}
	for i, a := range u.Args {
		x, err := envexpand.Expand(a, lookup)
		if onCommandLine != "" {
			return nil, nil, fmt.Errorf("%s: args[%d]: ${%s} is a secret, which is never put on a command line; read it from the environment", u.file, i, onCommandLine)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: args[%d]: %w (neither the instance env nor the unit env has it)", u.file, i, err)
		}
		argv = append(argv, x)
	}
	merged := map[string]string{}
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			merged[k] = v
		}
	}
	for k, v := range instEnv {
		merged[k] = v
	}
	for k, v := range unitEnv {
		merged[k] = v
	}
	for k, v := range merged {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return argv, env, nil
}

// maxSecrets bounds what boot reads from the secrets descriptor.
const maxSecrets = 1 << 20

// readSecrets reads the instance's secrets from the inherited descriptor fd (none when fd
// is 0) and closes it. Errors never quote the content.
func readSecrets(fd int) (map[string]string, error) {
	secrets := map[string]string{}
	if fd == 0 {
		return secrets, nil
	}
	f := os.NewFile(uintptr(fd), "secrets")
	if f == nil {
		return nil, fmt.Errorf("secrets: descriptor %d is not open", fd)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecrets+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: read descriptor %d: %w", fd, err)
	}
	if len(data) > maxSecrets {
		return nil, fmt.Errorf("secrets: more than %d bytes on descriptor %d", maxSecrets, fd)
	}
	if err := json.Unmarshal(data, &secrets); err != nil {
		return nil, fmt.Errorf("secrets: descriptor %d does not hold a JSON object of strings", fd)
	}
	return secrets, nil
}

// spawner starts every child from one goroutine locked to its OS thread:
// Pdeathsig fires when the thread that forked the child exits, not the
// process, and a locked thread that never exits makes it mean "boot died".
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: stop is called only after every
		// child has exited, and then the thread may go.
		close(ready)
		for r := range s.reqs {
			r.done <- r.cmd.Start()
		}
	}()
	<-ready
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

func (s *spawner) stop() { close(s.reqs) }

// runner supervises one unit.
type runner struct {
	unit    *Unit
	path    string
	argv    []string
	env     []string
	dir     string
	logs    *logFile
	board   *board
	opts    Options
	spawner *spawner
	drain   time.Duration
	log     *slog.Logger

	firstStart chan struct{} // closed once the first start was attempted
	firstOnce  sync.Once
}

func (r *runner) attempted() { r.firstOnce.Do(func() { close(r.firstStart) }) }

// runResult is how one run of a unit ended.
type runResult struct {
	exit    string // "exit status 1", "signal: killed", "start failed: ..."
	failed  bool   // non-zero exit, signal, or start failure
	stopped bool   // ended because boot is stopping
	uptime  time.Duration
}

func (r *runner) supervise(ctx context.Context) {
	if r.unit.Mode == ModeSchedule {
		r.schedule(ctx)
		return
	}
	r.service(ctx)
}

func (r *runner) service(ctx context.Context) {
	next := BackoffMin
	for first := true; ; first = false {
		if !first {
			r.board.update(r.unit.Name, func(s *UnitStatus) { s.Restarts++ })
		}
		res := r.runOnce(ctx)
		if res.stopped {
			return
		}
		if !shouldRestart(r.unit.Restart, res.failed) {
			r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateExited })
			r.log.Info("unit exited, not restarting", "exit", res.exit, "restart", r.unit.Restart)
			<-ctx.Done()
			return
		}
		var delay time.Duration
		delay, next = backoff(next, res.uptime)
		r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateBackoff })
		r.log.Info("unit will restart", "exit", res.exit, "in", delay)
		select {
		case <-r.opts.After(delay):
		case <-ctx.Done():
			r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateStopped })
			return
		}
	}
}

func (r *runner) schedule(ctx context.Context) {
	for first := true; ; first = false {
		if !first {
			r.board.update(r.unit.Name, func(s *UnitStatus) { s.Restarts++ })
		}
		started := r.opts.Now()
		res := r.runOnce(ctx)
		if res.stopped {
			return
		}
		r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateExited })
		// Runs never overlap: the next one is due a period after this one
		// started, or at once if this one took longer than the period.
		wait := max(started.Add(r.unit.period).Sub(r.opts.Now()), 0)
		r.log.Info("scheduled run finished", "exit", res.exit, "next in", wait)
		select {
		case <-r.opts.After(wait):
		case <-ctx.Done():
			r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateStopped })
			return
		}
	}
}

// backoff returns the delay before the next restart and the delay to use
// after that: prev doubles up to BackoffMax, and a run that lasted
// BackoffReset counts as healthy and starts over from BackoffMin.
func backoff(prev, uptime time.Duration) (delay, next time.Duration) {
	delay = prev
	if uptime >= BackoffReset {
		delay = BackoffMin
	}
	return delay, min(delay*2, BackoffMax)
}

func shouldRestart(policy string, failed bool) bool {
	switch policy {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return failed
	default:
		return false
	}
}

// runOnce starts the unit and waits until it exits or ctx ends; then it
// stops it.
func (r *runner) runOnce(ctx context.Context) runResult {
	defer r.attempted()
	if ctx.Err() != nil {
		r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateStopped })
		return runResult{stopped: true}
	}
	started := r.opts.Now()
	cmd := exec.Command(r.path, r.argv...)
	cmd.Env = r.env
	cmd.Dir = r.dir
	cmd.Stdout = r.logs
	cmd.Stderr = r.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A grandchild that keeps the output pipe open must not block Wait.
	cmd.WaitDelay = time.Second
	if err := r.spawner.start(cmd); err != nil {
		exit := "start failed: " + err.Error()
		r.log.Error("unit cannot start", "command", r.path, "err", err)
		r.board.update(r.unit.Name, func(s *UnitStatus) { s.LastExit = exit; s.PID = 0 })
		return runResult{exit: exit, failed: true}
	}
	pid := cmd.Process.Pid
	r.log.Info("unit started", "pid", pid)
	r.board.update(r.unit.Name, func(s *UnitStatus) { s.State = StateRunning; s.PID = pid })
	r.attempted()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var res runResult
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = r.stop(cmd, done)
		res.stopped = true
	}
	res.uptime = r.opts.Now().Sub(started)
	res.exit = describeExit(cmd, err)
	res.failed = cmd.ProcessState == nil || !cmd.ProcessState.Success()
	r.board.update(r.unit.Name, func(s *UnitStatus) {
		s.LastExit = res.exit
		if res.stopped {
			s.State = StateStopped
		}
	})
	return res
}

// stop sends SIGTERM, waits up to the drain timeout, then SIGKILL.
func (r *runner) stop(cmd *exec.Cmd, done <-chan error) error {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		r.log.Warn("SIGTERM unit", "err", err)
	}
	t := time.NewTimer(r.drain)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	r.log.Warn("unit ignored SIGTERM for the drain timeout, killing it", "drainTimeout", r.drain)
	_ = cmd.Process.Kill()
	return <-done
}

func describeExit(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}
