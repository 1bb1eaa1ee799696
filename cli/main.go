// Package cli is the kiln command: thin cobra commands over manifests, images, the
// rollout engine and the targets. Exit codes are decided in exactly one place
// (exitcode.go).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kilnhq/kiln/manifests"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Main runs kiln with the given arguments and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run is Main with the context and output streams given, for tests.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = &usageError{msg: err.Error()}
	}
	if err != nil && ctx.Err() != nil {
		// Whatever a signal surfaced as ("failed to select stack: context canceled",
		// "signal: interrupt" from a Pulumi CLI it reached), it was an interrupt.
		err = &interruptedError{err: err}
	}
	var positioned manifests.Errors
	switch {
	case err == nil || a.reported:
	case errors.As(err, &positioned):
		// One problem a line, each starting with file:line:col, as compilers print them.
		fmt.Fprintln(stderr, positioned.Error())
	default:
		fmt.Fprintf(stderr, "kiln: %v\n", err)
	}
	return exitCode(err)
}

// app holds the global flags and the streams.
type app struct {
	stdout, stderr io.Writer
	file           string
	stateDir       string
	backend        string
	catalogDir     string
	output         string
	logLevel       string
	// reported is set when a command already told the user how it ended.
	reported bool
	// lines keeps rollouts printing lines even on a terminal (the demo tells a story).
	lines bool
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Immutable-server deployments: bake, boot blue-green, shift traffic, roll back",
		Long: `kiln bakes a release into an image, boots new instances from it beside the live
ones, moves traffic once they are healthy and retires the old ones, or sends
traffic back and removes the new ones when anything goes wrong.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: fmt.Sprintf("%v (see kiln %s --help)", err, c.Name())}
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.file, "file", "f", "kiln.yaml", "the manifest (or give it as the command's argument)")
	pf.StringVar(&a.stateDir, "state-dir", "", "kiln's state directory (default $KILN_STATE_DIR, else .kiln beside the manifest)")
	pf.StringVar(&a.backend, "backend", "", "where the stack's state lives: file:///dir or s3://bucket/prefix?region=… (default $KILN_BACKEND, else the file backend in the state directory)")
	pf.StringVar(&a.catalogDir, "catalog", os.Getenv("KILN_CATALOG"), "an extra component catalog directory (<dir>/<name>/<version>/component.yaml)")
	pf.StringVarP(&a.output, "output", "o", "auto", "output format: auto (text on a terminal, json lines otherwise), text or json")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error")
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		switch a.output {
		case "auto", "text", "json":
		default:
			return &usageError{msg: fmt.Sprintf("--output %q: want auto, text or json", a.output)}
		}
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
			return &usageError{msg: fmt.Sprintf("--log-level %q: want debug, info, warn or error", a.logLevel)}
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl})))
		return nil
	}
	root.AddCommand(
		a.initCmd(), a.validateCmd(), a.bakeCmd(), a.rolloutCmd(), a.statusCmd(),
		a.watchCmd(), a.historyCmd(), a.stateCmd(), a.rollbackCmd(), a.destroyCmd(), a.imagesCmd(), a.secretCmd(), a.demoCmd(), a.setupCmd(), a.versionCmd(),
	)
	return root
}

// jsonOutput reports whether a command writes JSON (one object, or events as JSON
// lines): asked for, or auto with stdout not a terminal.
func (a *app) jsonOutput() bool {
	switch a.output {
	case "json":
		return true
	case "text":
		return false
	}
	f, ok := a.stdout.(*os.File)
	return !ok || !term.IsTerminal(int(f.Fd()))
}

// manifestArg takes the manifest as the command's one optional argument, as -f does
// (kiln validate kiln.yaml, like promtool check or packer validate).
func (a *app) manifestArg(c *cobra.Command, args []string) error {
	name := strings.TrimPrefix(c.CommandPath(), "kiln ")
	switch {
	case len(args) == 0:
		return nil
	case len(args) > 1:
		return &usageError{msg: fmt.Sprintf("kiln %s takes at most one argument, the manifest; got %q", name, args)}
	case c.Flags().Changed("file") && args[0] != a.file:
		return &usageError{msg: fmt.Sprintf("kiln %s: the manifest is given twice, -f %s and %s", name, a.file, args[0])}
	}
	a.file = args[0]
	return nil
}

// noArgs refuses positional arguments as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{msg: fmt.Sprintf("kiln %s takes no arguments, got %q", c.Name(), args)}
	}
	return nil
}

// Version is kiln's version, set at build time.
var Version = "0.1.0-dev"

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.result(map[string]string{"version": Version}, func(w io.Writer) { fmt.Fprintf(w, "kiln %s\n", Version) })
		},
	}
}
