package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// maxProbeOutput bounds what an exec probe may print: a probe that prints more fails, and
// none of its output is served (a cut text could parse and silently lose series).
const maxProbeOutput = 1 << 20

// Exec runs a probe command with a timeout. Its standard output, when not empty, is read as
// Prometheus text. It always yields kiln_metrics_probe_success, _duration_seconds and
// _exit_code labelled with the probe's name. The command runs in its own process group, and
// the whole group is killed when the timeout expires, so a probe's children cannot linger.
type Exec struct {
	// ProbeName labels the probe's self metrics.
	ProbeName string
	// Command is the program and its arguments; no shell is involved.
	Command []string
	// Timeout bounds one run.
	Timeout time.Duration
	// Env is the probe's whole environment (nil inherits the daemon's).
	Env []string
	// Now is the clock used for the duration metric; nil means time.Now.
	Now func() time.Time
}

// Name implements Collector.
func (e *Exec) Name() string { return "exec:" + e.ProbeName }

// Collect implements Collector.
func (e *Exec) Collect(ctx context.Context, fams []Family) ([]Family, error) {
	now := e.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Env = e.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // do not wait forever for pipes a grandchild holds open
	out := &limitedBuffer{max: maxProbeOutput}
	cmd.Stdout = out
	start := now()
	runErr := cmd.Run()
	took := now().Sub(start).Seconds()

	exit := 0.0
	var runFailure error
	if runErr != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			exit = -1
			runFailure = fmt.Errorf("probe %s: timed out after %s", e.ProbeName, e.Timeout)
		case errors.As(runErr, &ee):
			exit = float64(ee.ExitCode())
			runFailure = fmt.Errorf("probe %s: %w", e.ProbeName, runErr)
		default:
			exit = -1
			runFailure = fmt.Errorf("probe %s: %w", e.ProbeName, runErr)
		}
	}
	if runFailure == nil && out.cut {
		runFailure = fmt.Errorf("probe %s: output over the %d byte limit", e.ProbeName, maxProbeOutput)
	}
	var parsed []Family
	var parseErr error
	if runFailure == nil && len(bytes.TrimSpace(out.buf.Bytes())) > 0 {
		parsed, parseErr = ParseText(bytes.NewReader(out.buf.Bytes()))
		if parseErr != nil {
			parseErr = fmt.Errorf("probe %s: output: %w", e.ProbeName, parseErr)
		}
	}
	ok := 1.0
	if runFailure != nil || parseErr != nil {
		ok = 0
	}
	labels := []Label{{"probe", e.ProbeName}}
	fams = append(fams, parsed...)
	fams = append(fams,
		Family{Name: "kiln_metrics_probe_success", Help: "1 if the exec probe exited 0 and its output parsed.", Type: Gauge,
			Samples: []Sample{{"kiln_metrics_probe_success", labels, ok}}},
		Family{Name: "kiln_metrics_probe_duration_seconds", Help: "How long the exec probe ran.", Type: Gauge,
			Samples: []Sample{{"kiln_metrics_probe_duration_seconds", labels, took}}},
		Family{Name: "kiln_metrics_probe_exit_code", Help: "Exit code of the exec probe, -1 when it did not exit on its own.", Type: Gauge,
			Samples: []Sample{{"kiln_metrics_probe_exit_code", labels, exit}}},
	)
	return fams, errors.Join(runFailure, parseErr)
}

// limitedBuffer keeps the first max bytes written and discards the rest, remembering that
// it did, so the probe never blocks on a full pipe and never makes the daemon grow.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
	cut bool // more than max bytes were written
}

// Write implements io.Writer; it never fails.
func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := l.max - l.buf.Len(); n > room {
		l.cut = true
		p = p[:max(room, 0)]
	}
	l.buf.Write(p)
	return n, nil
}
