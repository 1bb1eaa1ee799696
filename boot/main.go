package boot

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/kilnhq/kiln/internal/daemon"
)

// Main is kiln-boot's command line: it runs the instance described by --spec until
// SIGTERM, SIGINT or SIGHUP, then stops its units, and returns the exit code.
func Main(args []string, stderr io.Writer) int {
	var spec string
	return daemon.Command{
		Name:  "kiln-boot",
		Usage: "--spec FILE",
		Flags: func(fs *flag.FlagSet) { fs.StringVar(&spec, "spec", "", "the instance spec file (JSON)") },
		Valid: func() bool { return spec != "" },
		Run:   func(ctx context.Context, log *slog.Logger) error { return Run(ctx, spec, log) },
	}.Main(args, stderr)
}
