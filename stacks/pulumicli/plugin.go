package pulumicli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// AWSPlugin is the provider plugin the aws target's programs are written against: the
// version of github.com/pulumi/pulumi-aws/sdk/v6 in go.mod (a test of package cli holds
// them together).
var AWSPlugin = Plugin{Name: "aws", Version: "6.83.4"}

// Plugin is a Pulumi resource provider plugin at one version.
type Plugin struct{ Name, Version string }

func (p Plugin) String() string {
	return fmt.Sprintf("pulumi-%s provider plugin v%s", p.Name, p.Version)
}

// Binary is the plugin's executable, as in its tarball and on PATH.
func (p Plugin) Binary() string { return "pulumi-resource-" + p.Name }

// CacheDir is where the Pulumi CLI keeps it under home.
func (p Plugin) CacheDir(home string) string {
	return filepath.Join(home, "plugins", fmt.Sprintf("resource-%s-v%s", p.Name, p.Version))
}

// Tarball is the file name the plugin is released as for this machine.
func (p Plugin) Tarball() string {
	return fmt.Sprintf("pulumi-resource-%s-v%s-%s-%s.tar.gz", p.Name, p.Version, runtime.GOOS, runtime.GOARCH)
}

// InstallArgs are the Pulumi CLI's arguments that install it.
func (p Plugin) InstallArgs() []string {
	return []string{"plugin", "install", "resource", p.Name, "v" + p.Version}
}

// Home is where the Pulumi CLI keeps its plugins: $PULUMI_HOME, else ~/.pulumi.
func Home() (string, error) {
	if h := os.Getenv("PULUMI_HOME"); h != "" {
		return filepath.Abs(h)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the Pulumi home: %w (set PULUMI_HOME)", err)
	}
	return filepath.Join(home, ".pulumi"), nil
}

// Find returns the plugin's executable in the plugin cache under home (unless a partial
// install is marked there), else on PATH.
func (p Plugin) Find(home string) (string, bool) {
	dir := p.CacheDir(home)
	if bin := filepath.Join(dir, p.Binary()); isExecutable(bin) && !exists(dir+".partial") {
		return bin, true
	}
	if bin, err := exec.LookPath(p.Binary()); err == nil {
		return bin, true
	}
	return "", false
}

// EnsurePlugin finds p, or installs it with the Pulumi CLI at pulumi (telling progress).
// When that fails it returns a *PluginMissingError, which says how to install it by hand.
func EnsurePlugin(ctx context.Context, p Plugin, pulumi string, progress io.Writer) (string, error) {
	home, err := Home()
	if err != nil {
		return "", err
	}
	if bin, ok := p.Find(home); ok {
		return bin, nil
	}
	fmt.Fprintf(progress, "kiln: installing the %s (pulumi %s)\n", p, strings.Join(p.InstallArgs(), " "))
	cmd := exec.CommandContext(ctx, pulumi, p.InstallArgs()...)
	cmd.Env = append(os.Environ(), "PULUMI_SKIP_UPDATE_CHECK=true")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	bin, ok := p.Find(home)
	if err == nil && ok {
		return bin, nil
	}
	if err == nil {
		err = fmt.Errorf("it installed nothing in %s", p.CacheDir(home))
	}
	return "", &PluginMissingError{plugin: p, pulumi: pulumi, home: home, err: err, output: out}
}

// PluginMissingError is a plugin the Pulumi CLI could not install (as where downloads
// are blocked): it says why and how to install it by hand.
type PluginMissingError struct {
	plugin Plugin
	pulumi string // the Pulumi CLI that tried
	home   string // the Pulumi home it installs into
	err    error
	output []byte
}

func (e *PluginMissingError) Error() string {
	p := e.plugin
	var b strings.Builder
	fmt.Fprintf(&b, "the %s is not installed, and \"pulumi %s\" could not download it (%v)", p, strings.Join(p.InstallArgs(), " "), e.err)
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
	fmt.Fprintf(&b, "\nInstall it by hand: on a machine that can, download\n  %s\n  (or %s)\n", p.DownloadURLs()[0], p.DownloadURLs()[1])
	fmt.Fprintf(&b, "copy it here, then either run\n  %s %s --file %s\n", e.pulumi, strings.Join(p.InstallArgs(), " "), p.Tarball())
	fmt.Fprintf(&b, "or unpack it into %s (which then holds %s),\nor put %s on PATH; then run kiln setup again.", p.CacheDir(e.home), p.Binary(), p.Binary())
	return b.String()
}

// DownloadURLs are where the plugin's tarball for this machine is released: Pulumi's
// own server, and the provider's GitHub releases.
func (p Plugin) DownloadURLs() [2]string {
	return [2]string{
		"https://get.pulumi.com/releases/plugins/" + p.Tarball(),
		fmt.Sprintf("https://github.com/pulumi/pulumi-%s/releases/download/v%s/%s", p.Name, p.Version, p.Tarball()),
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
