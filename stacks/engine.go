package stacks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// engineWaitDelay is how long an interrupted engine gets to save the stack's state
// before it is killed; the Automation API allows the same.
const engineWaitDelay = 10 * time.Second

// engineCmd is the pinned Pulumi CLI run for this stack as the Automation API runs it:
// the workspace's work dir, Pulumi home and environment, never prompting. Cancelling ctx
// interrupts it (SIGINT), so that the engine ends the update and saves what it did.
func (s *Stack) engineCmd(ctx context.Context, stderr io.Writer, args ...string) *exec.Cmd {
	args = append(args, "--non-interactive", "--stack", s.opts.Stack)
	cmd := exec.CommandContext(ctx, filepath.Join(s.opts.PulumiRoot, "bin", "pulumi"), args...)
	cmd.Dir = s.ws.WorkDir()
	env := append(os.Environ(), "PULUMI_HOME="+s.ws.PulumiHome())
	for k, v := range s.ws.GetEnvVars() {
		env = append(env, k+"="+v)
	}
	// PULUMI_DEBUG_COMMANDS makes `--event-log` a flag.
	cmd.Env = append(env, "PULUMI_AUTOMATION_API=true", "PULUMI_DEBUG_COMMANDS=true")
	cmd.Stdout = s.opts.Log
	cmd.Stderr = io.MultiWriter(s.opts.Log, stderr)
	interruptOnCancel(cmd)
	return cmd
}

// interruptOnCancel makes cancelling cmd's context interrupt it (SIGINT), so that the
// engine ends what it does and saves it, and kill it engineWaitDelay later.
func interruptOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			_ = cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = engineWaitDelay
}

// cliError is a failed run of the Pulumi CLI, with what it wrote to stderr.
type cliError struct {
	cmd    string
	err    error
	stderr string
}

func newCLIError(cmd string, err error, stderr *bytes.Buffer) *cliError {
	return &cliError{cmd: cmd, err: err, stderr: strings.TrimSpace(stderr.String())}
}

func (e *cliError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("pulumi %s: %v", e.cmd, e.err)
	}
	return fmt.Sprintf("pulumi %s: %v: %s", e.cmd, e.err, e.stderr)
}

func (e *cliError) Unwrap() error { return e.err }

// locked says the file backend refused the update: another engine holds the stack.
func (e *cliError) locked() bool {
	return strings.Contains(e.stderr, "the stack is currently locked by")
}
