package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

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
			bin, err := ensurePlugin(c.Context(), awsPlugin, pulumi, a.stderr)
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

// awsPlugin is the provider plugin the aws target's programs are written against: the
// version of github.com/pulumi/pulumi-aws/sdk/v6 in go.mod (TestAWSPluginMatchesGoMod).
var awsPlugin = plugin{name: "aws", version: "6.83.4"}

// plugin is a Pulumi resource provider plugin at one version.
type plugin struct{ name, version string }

func (p plugin) String() string {
	return fmt.Sprintf("pulumi-%s provider plugin v%s", p.name, p.version)
}

// binary is the plugin's executable, as in its tarball and on PATH.
func (p plugin) binary() string { return "pulumi-resource-" + p.name }

// cacheDir is where the Pulumi CLI keeps it under home.
func (p plugin) cacheDir(home string) string {
	return filepath.Join(home, "plugins", fmt.Sprintf("resource-%s-v%s", p.name, p.version))
}

// tarball is the file name the plugin is released as for this machine.
func (p plugin) tarball() string {
	return fmt.Sprintf("pulumi-resource-%s-v%s-%s-%s.tar.gz", p.name, p.version, runtime.GOOS, runtime.GOARCH)
}

// installArgs are the Pulumi CLI's arguments that install it.
func (p plugin) installArgs() []string {
	return []string{"plugin", "install", "resource", p.name, "v" + p.version}
}

// pulumiHome is where the Pulumi CLI keeps its plugins: $PULUMI_HOME, else ~/.pulumi.
func pulumiHome() (string, error) {
	if h := os.Getenv("PULUMI_HOME"); h != "" {
		return filepath.Abs(h)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the Pulumi home: %w (set PULUMI_HOME)", err)
	}
	return filepath.Join(home, ".pulumi"), nil
}

// find returns the plugin's executable in the plugin cache under home (unless a partial
// install is marked there), else on PATH.
func (p plugin) find(home string) (string, bool) {
	dir := p.cacheDir(home)
	if bin := filepath.Join(dir, p.binary()); isExecutable(bin) && !exists(dir+".partial") {
		return bin, true
	}
	if bin, err := exec.LookPath(p.binary()); err == nil {
		return bin, true
	}
	return "", false
}

// ensurePlugin finds p, or installs it with the Pulumi CLI at pulumi (telling progress).
// When that fails it returns a *pluginMissingError, which says how to install it by hand.
func ensurePlugin(ctx context.Context, p plugin, pulumi string, progress io.Writer) (string, error) {
	home, err := pulumiHome()
	if err != nil {
		return "", err
	}
	if bin, ok := p.find(home); ok {
		return bin, nil
	}
	fmt.Fprintf(progress, "kiln: installing the %s (pulumi %s)\n", p, strings.Join(p.installArgs(), " "))
	cmd := exec.CommandContext(ctx, pulumi, p.installArgs()...)
	cmd.Env = append(os.Environ(), "PULUMI_SKIP_UPDATE_CHECK=true")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	bin, ok := p.find(home)
	if err == nil && ok {
		return bin, nil
	}
	if err == nil {
		err = fmt.Errorf("it installed nothing in %s", p.cacheDir(home))
	}
	return "", &pluginMissingError{plugin: p, pulumi: pulumi, home: home, err: err, output: out}
}

// pluginMissingError is a plugin the Pulumi CLI could not install (as where downloads
// are blocked): it says why and how to install it by hand.
type pluginMissingError struct {
	plugin plugin
	pulumi string // the Pulumi CLI that tried
	home   string // the Pulumi home it installs into
	err    error
	output []byte
}

func (e *pluginMissingError) Error() string {
	p := e.plugin
	var b strings.Builder
	fmt.Fprintf(&b, "the %s is not installed, and \"pulumi %s\" could not download it (%v)", p, strings.Join(p.installArgs(), " "), e.err)
	// The CLI's own reasons: its last warning (such as "dial tcp: lookup get.pulumi.com:
	// no such host") and its errors.
	var warning string
	for _, line := range strings.Split(string(e.output), "\n") {
		switch line = strings.TrimSpace(line); {
		case strings.HasPrefix(line, "warning:"):
			warning = line
		case strings.HasPrefix(line, "error:"):
			if warning != "" {
				fmt.Fprintf(&b, "\n  %s", warning)
				warning = ""
			}
			fmt.Fprintf(&b, "\n  %s", line)
		}
	}
	fmt.Fprintf(&b, "\nInstall it by hand: on a machine that can, download\n  %s\n  (or %s)\n", p.downloadURLs()[0], p.downloadURLs()[1])
	fmt.Fprintf(&b, "copy it here, then either run\n  %s %s --file %s\n", e.pulumi, strings.Join(p.installArgs(), " "), p.tarball())
	fmt.Fprintf(&b, "or unpack it into %s (which then holds %s),\nor put %s on PATH; then run kiln setup again.", p.cacheDir(e.home), p.binary(), p.binary())
	return b.String()
}

// downloadURLs are where the plugin's tarball for this machine is released: Pulumi's
// own server, and the provider's GitHub releases.
func (p plugin) downloadURLs() [2]string {
	return [2]string{
		"https://get.pulumi.com/releases/plugins/" + p.tarball(),
		fmt.Sprintf("https://github.com/pulumi/pulumi-%s/releases/download/v%s/%s", p.name, p.version, p.tarball()),
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
