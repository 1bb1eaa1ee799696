package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/targets"
	"github.com/spf13/cobra"
)

func (a *app) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history [FILE]",
		Short: "List the releases rolled out: version, image, times, outcome, reason, who and where",
		Args:  a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.load()
			if err != nil {
				return err
			}
			store, err := p.Releases()
			if err != nil {
				return err
			}
			hist, err := store.History()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if hist == nil {
					hist = []releases.Record{} // a list, also when empty
				}
				return json.NewEncoder(a.stdout).Encode(hist)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tIMAGE\tSECRETS\tSTARTED\tFINISHED\tOUTCOME\tREASON\tWHO")
			for _, r := range hist {
				finished := "-"
				if !r.Finished.IsZero() {
					finished = fmt.Sprintf("%s (%s)", r.Finished.Local().Format("15:04:05"), round(r.Finished.Sub(r.Started)))
				}
				secrets := r.Secrets
				if secrets == "" {
					secrets = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s@%s\n", r.Version, (fleet.Image{Digest: r.Digest}).Short(), secrets,
					r.Started.Local().Format("2006-01-02 15:04:05"), finished, r.Outcome, r.Reason, r.User, r.Host)
			}
			return tw.Flush()
		},
	}
}

func (a *app) rollbackCmd() *cobra.Command {
	var to string
	var breakLock bool
	c := &cobra.Command{
		Use:   "rollback [FILE]",
		Short: "Return to the previous release (or --to VERSION): instant while the old slot is still up",
		Long: `rollback returns the service to the release before the live one, or to any kept release
with --to. While a rollout still keeps the old slot (its scale-down delay), rollback aborts
it: traffic switches back at once. Otherwise the kept image is rolled out again,
blue-green, through the same health gates and steps as any release.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			p, err := a.load()
			if err != nil {
				return err
			}
			if to == "" {
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := control.Send(sctx, p.ControlSocket(), rollout.CmdAbort)
				cancel()
				if err == nil {
					return a.result(map[string]string{"service": p.Manifest.Service, "accepted": string(rollout.CmdAbort)}, func(w io.Writer) {
						fmt.Fprintf(w, "%s: the running rollout is aborted; traffic goes back to its stable release\n", p.Manifest.Service)
					})
				}
				if !errors.Is(err, control.ErrNoRollout) {
					return err
				}
			}
			tgt, err := a.target(ctx, p)
			if err != nil {
				return a.notStarted(ctx, err)
			}
			spec, exists, err := tgt.Current(ctx)
			if err != nil {
				return a.notStarted(ctx, err)
			}
			var live *fleet.Release
			if sl, ok := spec.Live(); ok && exists {
				live = spec.Slots[sl].Release
			}
			rel, err := p.RollbackRelease(ctx, tgt, live, to)
			if err != nil {
				return err
			}
			fin, err := a.redeploy(ctx, p, tgt, rel, rolloutOptions{breakLock: breakLock})
			if err != nil {
				return a.notStarted(ctx, err)
			}
			a.reported = true
			if fin.Outcome != rollout.Promoted && fin.Outcome != rollout.Unchanged {
				return &outcomeError{fin: fin}
			}
			return nil
		},
	}
	c.Flags().StringVar(&to, "to", "", "the kept release to return to (default: the one before the live release)")
	c.Flags().BoolVar(&breakLock, "break-lock", false, "clear the stack's lock if its holder is gone")
	return c
}

// redeploy rolls a kept release out again, through the same gates as any release; it may
// be older than the live one.
func (a *app) redeploy(ctx context.Context, p *project.Project, tgt targets.Target, rel fleet.Release, ro rolloutOptions) (rollout.Finished, error) {
	ro.release = &rel
	return a.rollout(ctx, p, tgt, ro)
}
