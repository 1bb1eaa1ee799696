package boot

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
)

// Main is kiln-boot's command line: it runs the instance described by --spec until
// SIGTERM, SIGINT or SIGHUP, then stops its units, and returns the exit code.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln-boot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	spec := fs.String("spec", "", "the instance spec file (JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *spec == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kiln-boot --spec FILE")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := Run(ctx, *spec, slog.New(slog.NewJSONHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "kiln-boot: %v\n", err)
		return 1
	}
	return 0
}
