package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/stacks/pulumicli"
)

func (a *app) setupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "setup [FILE]",
		Short: "Install what kiln drives: the pinned Pulumi CLI (built once from the Go module proxy), and for an aws manifest the pulumi-aws plugin",
		Long: `setup installs the pinned Pulumi CLI, building it once from the Go module proxy. When the
manifest (kiln.yaml here, -f or the argument) deploys to aws, it also installs the
pulumi-aws provider plugin at the version kiln is built with, or says how to install it
by hand where it cannot be downloaded.`,
		Args: a.manifestArg,
		RunE: func(c *cobra.Command, args []string) error {
			// Without a manifest here, setup installs what every target needs.
			explicit := c.Flags().Changed("file") || len(args) > 0
			m, err := a.setupManifest(explicit)
			if err != nil {
				return err
			}
			root, err := pulumicli.Ensure(c.Context(), pulumicli.Options{Progress: a.stderr})
			if err != nil {
				return err
			}
			pulumi := filepath.Join(root, "bin", "pulumi")
			fmt.Fprintf(a.stdout, "pulumi CLI: %s\n", pulumi)
			if m == nil || m.Target.AWS == nil {
				return nil
			}
			bin, err := pulumicli.EnsurePlugin(c.Context(), awsPlugin, pulumi, a.stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: %s\n", awsPlugin, bin)
			return nil
		},
	}
}

// setupManifest reads the manifest setup installs for: nil when none was named and there
// is no kiln.yaml here.
func (a *app) setupManifest(explicit bool) (*manifests.Manifest, error) {
	if _, err := os.Stat(a.file); !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	cat, err := project.Catalog(a.catalogDir)
	if err != nil {
		return nil, err
	}
	return manifests.Load(a.file, cat)
}

// awsPlugin is the plugin kiln setup installs for an aws manifest.
var awsPlugin = pulumicli.AWSPlugin
