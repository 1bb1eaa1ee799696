// Package tui is the rollout console: a full-screen bubbletea program that shows a
// rollout's events as they arrive and sends pause, resume, promote and abort back through
// the control function its caller gives it. Given a way to read the fleet, it is also the
// status console between rollouts, from which r rolls the service back. The engine never
// imports it; it consumes the same event stream as the line and JSON printers.
package tui

import (
	"context"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/rollout"
	"github.com/muesli/termenv"
)

// Options configure a console.
type Options struct {
	// Control sends a command to the running rollout (the cli passes control.Send on the
	// rollout's socket). Nil makes the console read-only.
	Control func(rollout.Command) error
	// Plan lists the phases the rollout is expected to run, shown pending until they start.
	Plan []PlannedPhase
	// Now is the clock for elapsed times and the spinner; tests pin it.
	Now func() time.Time
	// FrameInterval caps the frame rate: events are applied as they come, the screen is
	// redrawn once per interval. Default 100ms.
	FrameInterval time.Duration
	// Profile is the colour profile; termenv.Ascii draws no colour at all.
	Profile termenv.Profile
	// ExitWhenDone leaves the console as soon as the rollout's events end, for a caller
	// that prints the outcome itself once the screen is back.
	ExitWhenDone bool
	// Width and Height are the size before the terminal reports its own (default 80x24).
	Width, Height int

	// Status reads the fleet. With it the console is a status console that outlives
	// rollouts: between them it shows the live fleet, read every StatusInterval, and one
	// stream may carry several rollouts, one after another.
	Status func() (Status, error)
	// Health reads every instance's health as the load balancer checks it; with it the
	// instances shown during a rollout are read every StatusInterval, not only when the
	// engine reports them.
	Health func() ([]fleet.InstanceHealth, error)
	// StatusInterval is how often Status and Health are read (default
	// DefaultStatusInterval).
	StatusInterval time.Duration
	// Rollback starts rolling the service back to the release given (Status.Previous)
	// when no rollout runs. It must return at once; the console calls wait, in the
	// background, for the error that kept the rollback from running. Its events must arrive
	// on the console's stream like any rollout's. Nil: r only rolls back a running rollout.
	Rollback func(to fleet.Release) (wait func() error)
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FrameInterval <= 0 {
		o.FrameInterval = 100 * time.Millisecond
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = DefaultStatusInterval
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 80, 24
	}
}

// ColorProfile returns the colour profile for out: none when NO_COLOR is set.
func ColorProfile(out *os.File) termenv.Profile {
	if os.Getenv("NO_COLOR") != "" {
		return termenv.Ascii
	}
	return termenv.NewOutput(out).EnvColorProfile()
}

// Run shows the console on the terminal in/out until the operator leaves (q) or ctx
// ends, feeding it the events read from events. It returns whether the operator detached
// while the rollout was still running; the events the console did not read stay on the
// channel for the caller, which must keep draining it so the engine never blocks.
func Run(ctx context.Context, events <-chan rollout.Event, in io.Reader, out io.Writer, opts Options) (detached bool, err error) {
	m := New(opts)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	stop := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		forward(events, stop, p.Send)
	}()
	_, err = p.Run()
	close(stop)
	<-forwarded
	if err == tea.ErrProgramKilled && ctx.Err() != nil {
		err = nil
	}
	return m.Detached(), err
}

// forward reads events and sends them in batches of what is already waiting, until the
// channel closes or stop is closed. Batching makes a burst of events one message.
func forward(events <-chan rollout.Event, stop <-chan struct{}, send func(tea.Msg)) {
	const maxBatch = 512
	for {
		var ev rollout.Event
		var ok bool
		select {
		case <-stop:
			return
		case ev, ok = <-events:
		}
		if !ok {
			send(StreamClosedMsg{})
			return
		}
		batch := EventsMsg{ev}
	drain:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-events:
				if !ok {
					send(batch)
					send(StreamClosedMsg{})
					return
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		send(batch)
	}
}
