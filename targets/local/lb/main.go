package lb

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/kilnhq/kiln/internal/daemon"
)

// Main is kiln-lb's command line, as the local target's provider starts it: it serves the
// config at --config until SIGTERM, SIGINT or SIGHUP and returns the exit code.
func Main(args []string, stderr io.Writer) int {
	var config, ready string
	return daemon.Command{
		Name:  "kiln-lb",
		Usage: "--config FILE [--ready-file FILE]",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&config, "config", "", "the load balancer's config file (JSON)")
			fs.StringVar(&ready, "ready-file", "", "written once both listeners are bound")
		},
		Valid: func() bool { return config != "" },
		Run:   func(ctx context.Context, log *slog.Logger) error { return Run(ctx, config, ready, log) },
	}.Main(args, stderr)
}
