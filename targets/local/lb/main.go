package lb

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
)

// Main is kiln-lb's command line, as the local target's provider starts it: it serves the
// config at --config until SIGTERM, SIGINT or SIGHUP and returns the exit code.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln-lb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the load balancer's config file (JSON)")
	ready := fs.String("ready-file", "", "written once both listeners are bound")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *config == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kiln-lb --config FILE [--ready-file FILE]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := Run(ctx, *config, *ready, slog.New(slog.NewJSONHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "kiln-lb: %v\n", err)
		return 1
	}
	return 0
}
