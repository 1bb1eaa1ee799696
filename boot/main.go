package boot

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/daemon"
)

// Main is kiln-boot's command line, and returns the exit code. `--spec FILE` runs the
// instance described by FILE until SIGTERM, SIGINT or SIGHUP, then stops its units.
// `--verify DIR --digest D` checks that the image at DIR hashes to D and exits 0, or 1
// naming the first file that differs (an AMI's build validates its image so).
func Main(args []string, stderr io.Writer) int {
	var spec, verify, digest string
	return daemon.Command{
		Name:  "kiln-boot",
		Usage: "--spec FILE | --verify DIR --digest DIGEST",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&spec, "spec", "", "the instance spec file (JSON)")
			fs.StringVar(&verify, "verify", "", "verify the image at this directory, then exit")
			fs.StringVar(&digest, "digest", "", "the digest the image of --verify must have")
		},
		Valid: func() bool { return (spec != "") != (verify != "" && digest != "") && (verify == "") == (digest == "") },
		Run: func(ctx context.Context, log *slog.Logger) error {
			if verify != "" {
				if err := images.Verify(verify, digest); err != nil {
					return err
				}
				log.Info("image verified", "dir", verify, "digest", digest)
				return nil
			}
			return Run(ctx, spec, log)
		},
	}.Main(args, stderr)
}
