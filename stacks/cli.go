package stacks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/blang/semver"
)

// cliCommand is the pinned Pulumi CLI as the Automation API's workspace runs it
// (auto.PulumiCommand). The SDK's own, from auto.NewPulumiCommand, runs `pulumi version`
// whenever one is made, about 0.17 s of every stack's opening; kiln runs the CLI it built
// itself (pulumicli.Version), so there is nothing to ask.
type cliCommand struct {
	path    string
	version semver.Version
}

func newCLICommand(root string, version semver.Version) cliCommand {
	return cliCommand{path: filepath.Join(root, "bin", "pulumi"), version: version}
}

func (c cliCommand) Version() semver.Version { return c.version }

// Run runs the CLI as the SDK's command does: never prompting, the CLI's own directory
// first on PATH, interrupted (then killed after engineWaitDelay) when ctx ends. Unlike
// the SDK's, and like engineCmd, it stays in kiln's process group, so that whatever kills
// kiln's group kills it too. It returns stdout, stderr and the exit code.
func (c cliCommand) Run(ctx context.Context, workdir string, stdin io.Reader, outs, errs []io.Writer,
	env []string, args ...string) (string, string, int, error) {
	if !slices.Contains(args, "--non-interactive") {
		args = append(args, "--non-interactive")
	}
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Dir = workdir
	cmd.Env = append(append(os.Environ(), env...), "PULUMI_AUTOMATION_API=true")
	cmd.Env = withPathFirst(cmd.Env, filepath.Dir(c.path))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = io.MultiWriter(append(outs, &stdout)...)
	cmd.Stderr = io.MultiWriter(append(errs, &stderr)...)
	cmd.Stdin = stdin
	interruptOnCancel(cmd)
	err := cmd.Run()
	code := -2 // the SDK's "unknown"
	var exit *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.ExitCode()
	}
	return stdout.String(), stderr.String(), code, err
}

// withPathFirst puts dir first on env's PATH (the last PATH in env wins, as for exec).
func withPathFirst(env []string, dir string) []string {
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if path != "" {
		dir += string(os.PathListSeparator) + path
	}
	return append(env, "PATH="+dir)
}
