// Package daemon is the command line of kiln's small daemons (kiln-boot, kiln-lb): their
// flags and usage line, a context that SIGTERM, SIGINT or SIGHUP ends, a JSON logger on
// stderr, and the exit code (2 for wrong usage, 1 when the daemon fails, 0 otherwise).
package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
)

// Command is one daemon's command line.
type Command struct {
	// Name is the program's name, e.g. kiln-boot; Usage what follows it in the usage line.
	Name, Usage string
	// Flags declares the flags on fs.
	Flags func(fs *flag.FlagSet)
	// Valid reports whether the parsed flags are enough to run.
	Valid func() bool
	// Run runs the daemon until ctx ends.
	Run func(ctx context.Context, log *slog.Logger) error
}

// Main parses args and runs c, returning the exit code.
func (c Command) Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !c.Valid() || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: %s %s\n", c.Name, c.Usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := c.Run(ctx, slog.New(slog.NewJSONHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 1
	}
	return 0
}
