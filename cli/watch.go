package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/spf13/cobra"
)

func (a *app) watchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch [FILE]",
		Short: "The service's console: its fleet live, every rollout as it runs, r to roll back",
		Long: `On a terminal, watch opens the service's console: between rollouts it shows the live
release, traffic and every instance's health, read every second; it follows each rollout
of the service (started here or in any other kiln) as it runs, and its keys steer it.
r rolls back: during a rollout, traffic goes back to the release it replaces; between
rollouts, the previous kept release is rolled out again, in this process. q leaves (a
rollout goes on); watch then exits with the outcome of the last rollout that ended while
it watched (0 if none).

Without a terminal, watch attaches to the running rollout and prints its events, human
lines or JSON lines, starting with what already happened, and exits with the rollout's
exit code; with no rollout running it fails.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			if in, out, ok := a.consoleFiles(); ok {
				return a.watchConsole(c.Context(), p, in, out)
			}
			ctx, cancel := context.WithCancel(c.Context())
			defer cancel()
			lines, err := control.Watch(ctx, p.ControlSocket())
			if errors.Is(err, control.ErrNoRollout) {
				return fmt.Errorf("no rollout of %s is running (kiln status shows the fleet, kiln history the past)", p.Manifest.Service)
			}
			if err != nil {
				return err
			}
			events := make(chan rollout.Event, 64)
			var fin *rollout.Finished
			go func() {
				defer close(events)
				for l := range lines {
					ev, err := rollout.UnmarshalEvent(l)
					if err != nil {
						continue // an event this kiln does not know: a newer kiln runs the rollout
					}
					if f, ok := ev.(rollout.Finished); ok {
						fin = &f
					}
					events <- ev
				}
			}()
			pr := a.printer()
			for ev := range events {
				pr.event(ev)
			}
			if fin == nil {
				return fmt.Errorf("the rollout of %s stopped sending events before it finished (was its kiln killed? kiln rollout --resume continues it)", p.Manifest.Service)
			}
			a.reported = true
			if fin.Outcome != rollout.Promoted && fin.Outcome != rollout.Unchanged {
				return &outcomeError{fin: *fin}
			}
			return nil
		},
	}
}
