package cli

import (
	"log/slog"

	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/spf13/cobra"
)

// The local target's load balancer daemon. kiln's provider starts it; people do not.

func (a *app) lbCmd() *cobra.Command {
	var config, ready string
	c := &cobra.Command{
		Use:    "lb",
		Short:  "Run the local target's weighted reverse proxy",
		Hidden: true,
		Args:   noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if config == "" {
				return &usageError{msg: "kiln lb needs --config"}
			}
			return lb.Run(c.Context(), config, ready, slog.New(slog.NewJSONHandler(a.stderr, nil)))
		},
	}
	c.Flags().StringVar(&config, "config", "", "the load balancer's config file")
	c.Flags().StringVar(&ready, "ready-file", "", "written once both listeners are bound")
	return c
}
