package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/kilnhq/kiln/backend"
	"github.com/spf13/cobra"
)

func (a *app) stateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Manage where the stack's state lives",
		Args:  noArgs,
	}
	var to string
	migrate := &cobra.Command{
		Use:   "migrate --to URL",
		Short: "Move the stack's state (Pulumi state, history) to another backend, e.g. a shared S3 one",
		Long: `migrate moves the stack's state from its backend (--backend, $KILN_BACKEND or the file
backend in the state directory) to the backend at --to: Pulumi's state, with its secrets
encrypted anew by the destination's secrets provider, and the release history. It holds
both backends' locks, so it refuses while a rollout runs (exit 4), and refuses while an
interrupted rollout waits to be resumed. The old backend is marked as moved: a kiln still
pointed at it is told where the state went. Moving back works the same way.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, _ []string) error {
			if to == "" {
				return &usageError{msg: "kiln state migrate needs --to URL (file:///dir or s3://bucket/prefix?region=…)"}
			}
			dst, err := backend.Parse(to)
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			p, err := a.load()
			if err != nil {
				return err
			}
			res, err := p.MigrateState(c.Context(), dst, a.stderr)
			if err != nil {
				return err
			}
			out := struct {
				Service string   `json:"service"`
				From    string   `json:"from"`
				To      string   `json:"to"`
				Records int      `json:"records"`
				Stacks  []string `json:"stacks"`
			}{p.Service(), res.From.String(), res.To.String(), res.Records, res.Stacks}
			return a.result(out, func(w io.Writer) {
				fmt.Fprintf(w, "moved the state of %s from %s to %s (stacks %s, %d release(s) of history); from now on use --backend '%s' or KILN_BACKEND\n",
					out.Service, out.From, out.To, strings.Join(out.Stacks, ", "), out.Records, out.To)
			})
		},
	}
	migrate.Flags().StringVar(&to, "to", "", "the backend to move the state to")
	c.AddCommand(migrate)
	return c
}
