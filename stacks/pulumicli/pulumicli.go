// Package pulumicli finds the Pulumi CLI kiln drives, or builds the pinned version once
// from the Go module proxy into a cached tools directory. The CLI cannot be downloaded as
// a release binary on every machine kiln runs on, but its Go module can always be built.
package pulumicli

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Version is the Pulumi CLI version kiln pins; it matches the sdk/v3 kiln is built with.
const Version = "3.259.0"

// The tool module is kept apart from kiln's go.mod: pkg/v3 pulls in every cloud SDK and
// needs a replace directive. Its go.mod and go.sum are pinned here; they are stored as
// .txt so the directory is not a nested module that go:embed would refuse.
//
// The go.mod also replaces both password-strength libraries the CLI links (two forks of
// zxcvbn-go) with zxcvbn.go.txt: they decode their dictionaries at start, 160 of the
// 210 ms the CLI takes to start here, in every engine process kiln runs, for a warning
// about plaintext values given to `pulumi config set`, which kiln only runs with --secret
// (see that file).
//
//go:embed go.mod.txt go.sum.txt zxcvbn.go.txt
var moduleFiles embed.FS

// stubModules are the module directories the go.mod's replace directives name, with
// their go.mod: each keeps the requirements of the module it replaces, so that the rest
// of the build resolves to the same versions.
var stubModules = map[string]string{
	"zxcvbn/nbutton23": "module github.com/nbutton23/zxcvbn-go\n",
	"zxcvbn/ccojocar":  "module github.com/ccojocar/zxcvbn-go\n\ngo 1.20\n\nrequire github.com/stretchr/testify v1.8.4\n",
}

// Recipe names this build of the CLI: a hash of the files it is built from, so that a
// changed recipe builds a new CLI beside the old one rather than using it.
var Recipe = func() string {
	h := sha256.New()
	for _, f := range []string{"go.mod.txt", "go.sum.txt", "zxcvbn.go.txt"} {
		b, err := moduleFiles.ReadFile(f)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	for _, d := range slices.Sorted(maps.Keys(stubModules)) {
		fmt.Fprintf(h, "%s %q\n", d, stubModules[d])
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}()

const toolsGo = `//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
`

// Options says where to look and where to build.
type Options struct {
	// ToolsDir is the cache the CLI is built into; default DefaultToolsDir().
	ToolsDir string
	// Progress receives human lines while a build runs (it takes minutes the first time).
	Progress io.Writer
	// IgnorePath skips a `pulumi` found on PATH and always uses the pinned build.
	IgnorePath bool
}

// DefaultToolsDir is $KILN_TOOLS_DIR, or kiln/tools under the user's cache directory.
func DefaultToolsDir() string {
	if d := os.Getenv("KILN_TOOLS_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kiln", "tools")
	}
	return filepath.Join(os.TempDir(), "kiln-tools")
}

// Ensure returns the root of a Pulumi CLI installation (the binary is root/bin/pulumi):
// $KILN_PULUMI if set, else a `pulumi` on PATH, else the pinned build in the tools dir,
// building it first when it is missing. Concurrent callers build it once.
func Ensure(ctx context.Context, opts Options) (root string, err error) {
	if p := os.Getenv("KILN_PULUMI"); p != "" {
		return rootOf(p)
	}
	if !opts.IgnorePath {
		if p, err := exec.LookPath("pulumi"); err == nil {
			return rootOf(p)
		}
	}
	if opts.ToolsDir == "" {
		opts.ToolsDir = DefaultToolsDir()
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	root = filepath.Join(opts.ToolsDir, "pulumi-v"+Version+"-"+Recipe)
	bin := filepath.Join(root, "bin", "pulumi")
	if isExecutable(bin) {
		return root, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("pulumi cli: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(root, ".lock"), opts.Progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited for the lock
		return root, nil
	}
	if err := build(ctx, root, opts.Progress); err != nil {
		return "", err
	}
	return root, nil
}

func rootOf(bin string) (string, error) {
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return "", fmt.Errorf("pulumi cli %s: %w", bin, err)
	}
	if filepath.Base(filepath.Dir(real)) != "bin" {
		return "", fmt.Errorf("pulumi cli %s: expected it in a directory named bin", real)
	}
	return filepath.Dir(filepath.Dir(real)), nil
}

func build(ctx context.Context, root string, progress io.Writer) error {
	src := filepath.Join(root, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("pulumi cli: %w", err)
	}
	for name, data := range map[string]string{"go.mod": "go.mod.txt", "go.sum": "go.sum.txt"} {
		b, err := moduleFiles.ReadFile(data)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			return fmt.Errorf("pulumi cli: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "tools.go"), []byte(toolsGo), 0o644); err != nil {
		return fmt.Errorf("pulumi cli: %w", err)
	}
	stub, err := moduleFiles.ReadFile("zxcvbn.go.txt")
	if err != nil {
		return err
	}
	for dir, mod := range stubModules {
		dir = filepath.Join(src, filepath.FromSlash(dir))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("pulumi cli: %w", err)
		}
		for name, b := range map[string][]byte{"go.mod": []byte(mod), "zxcvbn.go": stub} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return fmt.Errorf("pulumi cli: %w", err)
			}
		}
	}
	tmp := filepath.Join(root, "bin", "pulumi.partial")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return fmt.Errorf("pulumi cli: %w", err)
	}
	fmt.Fprintf(progress, "kiln: building the Pulumi CLI v%s from the Go module proxy into %s\n", Version, root)
	fmt.Fprintf(progress, "kiln: this happens once per machine and takes several minutes on 2 cores\n")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build",
		"-ldflags", "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v"+Version,
		"-o", tmp, "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out := &tail{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pulumi cli: start go build: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("pulumi cli: go build failed after %s: %w\n%s", time.Since(start).Round(time.Second), err, out.String())
			}
			if err := os.Rename(tmp, filepath.Join(root, "bin", "pulumi")); err != nil {
				return fmt.Errorf("pulumi cli: %w", err)
			}
			fmt.Fprintf(progress, "kiln: Pulumi CLI v%s built in %s\n", Version, time.Since(start).Round(time.Second))
			return nil
		case <-tick.C:
			fmt.Fprintf(progress, "kiln: still building the Pulumi CLI (%s)\n", time.Since(start).Round(time.Second))
		}
	}
}

// lock takes an exclusive flock on path, telling progress when it has to wait.
func lock(ctx context.Context, path string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pulumi cli: %w", err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("pulumi cli: lock %s: %w", path, err)
		}
		if !told {
			fmt.Fprintf(progress, "kiln: waiting for another process building the Pulumi CLI\n")
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// tail keeps the last max bytes written to it: the end of a failed build's output.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
