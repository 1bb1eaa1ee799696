package cli

import (
	"context"
	"errors"

	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
)

// Exit codes of every kiln command. This table is the only place they are decided; the
// README documents the same table.
const (
	// ExitOK: success; for rollout, the new release was promoted (or already live).
	ExitOK = 0
	// ExitFailed: the command failed and changed nothing that stays; for rollout, the
	// release failed and traffic stayed on (or went back to) the stable release, or, with
	// none, what it created was removed (outcome failed).
	ExitFailed = 1
	// ExitInvalid: invalid input (manifest, flags, arguments); nothing was done.
	ExitInvalid = 2
	// ExitNeedsHuman: undoing a failed release failed too; the fleet needs a human.
	ExitNeedsHuman = 3
	// ExitLocked: another rollout of the same stack holds the lock.
	ExitLocked = 4
	// ExitInterrupted: SIGINT, SIGTERM or SIGHUP; the fleet was left on the stable release.
	ExitInterrupted = 130
)

// usageError is invalid input on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// interruptedError is a command's failure after a signal cancelled its context.
type interruptedError struct{ err error }

func (e *interruptedError) Error() string { return e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// outcomeError carries a rollout's outcome to the exit code.
type outcomeError struct {
	fin rollout.Finished
}

func (e *outcomeError) Error() string {
	msg := string(e.fin.Outcome)
	if e.fin.Reason != "" {
		msg += " (" + string(e.fin.Reason) + ")"
	}
	if e.fin.Message != "" {
		msg += ": " + e.fin.Message
	}
	return msg
}

// exitCode maps an error to the table above.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var oe *outcomeError
	if errors.As(err, &oe) {
		switch oe.fin.Outcome {
		case rollout.Promoted, rollout.Unchanged:
			return ExitOK
		case rollout.RolledBack, rollout.Failed:
			return ExitFailed
		case rollout.RollbackFailed:
			return ExitNeedsHuman
		case rollout.Interrupted:
			return ExitInterrupted
		case rollout.Refused:
			return ExitInvalid
		}
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		return ExitInterrupted
	}
	var le *releases.LockedError
	if errors.As(err, &le) {
		return ExitLocked
	}
	var me manifests.Errors
	var ue *usageError
	var pe *project.InputError
	if errors.As(err, &me) || errors.As(err, &ue) || errors.As(err, &pe) {
		return ExitInvalid
	}
	var one *manifests.Error
	if errors.As(err, &one) {
		return ExitInvalid
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	return ExitFailed
}
