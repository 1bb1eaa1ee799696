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
		Use:   "watch",
		Short: "Attach to the running rollout: its console on a terminal, its events otherwise",
		Long: `watch attaches to the rollout of the manifest's service that another kiln is running:
the console on a terminal (q leaves it; the rollout goes on), human lines or JSON lines
otherwise, starting with what already happened. It exits with the rollout's exit code.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(c.Context())
			defer cancel()
			lines, err := control.Watch(ctx, control.SocketPath(p.stateDir, p.m.Service))
			if errors.Is(err, control.ErrNoRollout) {
				return fmt.Errorf("no rollout of %s is running (kiln status shows the fleet, kiln history the past)", p.m.Service)
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
			if in, out, ok := a.consoleFiles(); ok {
				if a.runConsole(ctx, p, nil, in, out, events) {
					cancel() // leave now; the rollout goes on
					for range events {
					}
					fmt.Fprintf(a.stdout, "detached from the rollout of %s: it goes on\n", p.m.Service)
					return nil
				}
				for range events {
				}
				if fin != nil {
					(&linePrinter{w: a.stdout}).event(*fin)
				}
			} else {
				var pr printer = &linePrinter{w: a.stdout}
				if a.jsonOutput() {
					pr = jsonPrinter{w: a.stdout}
				}
				for ev := range events {
					pr.event(ev)
				}
			}
			if fin == nil {
				return fmt.Errorf("the rollout of %s stopped sending events before it finished (was its kiln killed? kiln rollout --resume continues it)", p.m.Service)
			}
			a.reported = true
			if fin.Outcome != rollout.Promoted && fin.Outcome != rollout.Unchanged {
				return &outcomeError{fin: *fin}
			}
			return nil
		},
	}
}
