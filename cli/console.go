package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/tui"
	"golang.org/x/term"
)

// consoleFiles returns the terminal the console runs on: stdout and stdin must both be
// terminals and the output format auto or text. Without a TTY there is no console.
func (a *app) consoleFiles() (in, out *os.File, ok bool) {
	if a.jsonOutput() || a.lines {
		return nil, nil, false
	}
	out, isFile := a.stdout.(*os.File)
	if !isFile || !term.IsTerminal(int(out.Fd())) || !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, nil, false
	}
	return os.Stdin, out, true
}

// console consumes a rollout's events with the full-screen console until the operator
// detaches (q) or the rollout finishes, then drains the rest silently so the engine never
// blocks. Logs are held back while the console owns the screen and written afterwards.
func (a *app) console(ctx context.Context, p *project.Project, tgt rollout.Target, req rollout.Request, in, out *os.File, events <-chan rollout.Event) {
	var plan []tui.PlannedPhase
	if cur, exists, err := tgt.Current(ctx); err == nil {
		for _, ph := range rollout.Plan(cur, exists, req, fleet.Release{}) {
			plan = append(plan, tui.PlannedPhase{Phase: ph.Phase, Step: ph.Step, Waits: ph.Waits})
		}
	}
	opts := tui.Options{Plan: plan, ExitWhenDone: true, StatusInterval: targets.ConsoleInterval(tgt), Health: healthOf(ctx, tgt)}
	if a.runConsole(ctx, p, in, out, events, opts) {
		fmt.Fprintf(a.stdout, "detached from the rollout of %s: it goes on (ctrl+c now interrupts it); steer it with kiln rollout pause|resume|promote|abort, or kiln watch\n", p.Manifest.Service)
	}
	for range events {
	}
}

// runConsole shows events in the console until the operator leaves (it returns whether
// a rollout was still running) or, with opts.ExitWhenDone, the rollout ends. Controls go to
// the service's control socket.
func (a *app) runConsole(ctx context.Context, p *project.Project, in, out *os.File, events <-chan rollout.Event, opts tui.Options) bool {
	sock := p.ControlSocket()
	send := func(c rollout.Command) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return control.Send(ctx, sock, c)
	}
	held := &cappedBuffer{max: 64 << 10}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(held, &slog.HandlerOptions{Level: a.level()})))
	opts.Control, opts.Profile = send, tui.ColorProfile(out)
	detached, err := tui.Run(ctx, events, in, out, opts)
	slog.SetDefault(prev)
	a.stderr.Write(held.Bytes())
	if err != nil {
		fmt.Fprintf(a.stderr, "kiln: console: %v; the rollout goes on\n", err)
	}
	return detached
}

// healthOf reads the instances' health for a console, each reading bounded in time.
func healthOf(ctx context.Context, tgt rollout.Target) func() ([]fleet.InstanceHealth, error) {
	return func() ([]fleet.InstanceHealth, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		hs, err := tgt.Health(ctx)
		readBackupAgents(ctx, hs) // marks the instance whose backup agent holds the lease
		return hs, err
	}
}

func (a *app) level() slog.Level {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(a.logLevel))
	return lvl
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
type cappedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped int
}

var _ io.Writer = (*cappedBuffer)(nil)

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
		b.dropped += len(p) - max(room, 0)
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns what was kept, and a line saying how much was not.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.buf.Bytes()
	if b.dropped > 0 {
		out = append(out, fmt.Sprintf("kiln: %d more bytes of log dropped while the console was open\n", b.dropped)...)
	}
	return out
}
