package cli

import (
	"log/slog"

	"github.com/kilnhq/kiln/targets/local/boot"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/spf13/cobra"
)

// The daemons of the local target. kiln's provider starts them; people do not.

func (a *app) bootCmd() *cobra.Command {
	var spec string
	c := &cobra.Command{
		Use:    "boot",
		Short:  "Run one local instance: the init that supervises the image's units",
		Hidden: true,
		Args:   noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if spec == "" {
				return &usageError{msg: "kiln boot needs --spec"}
			}
			return boot.Run(c.Context(), spec, slog.New(slog.NewJSONHandler(a.stderr, nil)))
		},
	}
	c.Flags().StringVar(&spec, "spec", "", "the instance spec file")
	return c
}

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
