package project

import (
	"context"
	"fmt"
	"io"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/kilnhq/kiln/targets"
)

// MigrateResult says what a state migration moved.
type MigrateResult struct {
	From, To backend.Backend
	// Records is how many history records were copied.
	Records int
	// Stacks are the Pulumi stacks whose state was moved.
	Stacks []string
}

// MigrateState moves the stack's state — Pulumi's state, the release history, the
// encrypted secrets — from the project's backend to to, holding both backends' locks, so
// it refuses while a rollout runs (a *releases.LockedError, exit 4) and while one that was
// interrupted waits to be resumed. The source keeps its copy; from then on, use the new backend.
func (p *Project) MigrateState(ctx context.Context, to backend.Backend, progress io.Writer) (MigrateResult, error) {
	res := MigrateResult{From: p.Backend, To: to}
	if p.Backend.String() == to.String() {
		return res, &InputError{Msg: fmt.Sprintf("the state of %s is already in %s", p.Service(), to)}
	}
	src, err := p.Releases()
	if err != nil {
		return res, err
	}
	dst, err := releases.Open(ctx, to, p.Service())
	if err != nil {
		return res, err
	}
	unlockSrc, _, err := LockStack(ctx, src, "kiln state migrate", false)
	if err != nil {
		return res, err
	}
	defer unlockSrc()
	unlockDst, _, err := LockStack(ctx, dst, "kiln state migrate", false)
	if err != nil {
		return res, err
	}
	defer unlockDst()
	if st, ok, err := src.LoadState(); err != nil {
		return res, err
	} else if ok {
		return res, fmt.Errorf("a rollout of %s %s was interrupted at %s: finish it with kiln rollout --resume before moving the state", p.Service(), releaseVersion(st), st.Phase)
	}
	// The destination may be where the state was moved from before (moving back): its
	// old copy is then overwritten. Any other history there is someone else's.
	movedFrom, err := dst.MovedTo()
	if err != nil {
		return res, err
	}
	if hist, err := dst.History(); err != nil {
		return res, err
	} else if len(hist) > 0 && movedFrom != p.Backend.String() {
		return res, &InputError{Msg: fmt.Sprintf("%s already holds a history of %s (%d releases): kiln will not mix two histories", to, p.Service(), len(hist))}
	}

	// Secrets are copied as their ciphertexts: the destination must read them with the
	// same passphrase, or the next rollout could not decrypt them.
	if secrets, err := src.LoadSecrets(); err != nil {
		return res, err
	} else if secrets.Version != "" && len(secrets.Values) > 0 {
		same, err := stacks.SamePassphrase(p.StateDir, p.Backend.PulumiURL(), to.PulumiURL())
		if err != nil {
			return res, err
		}
		if !same {
			return res, &InputError{Msg: fmt.Sprintf("the secrets of %s are encrypted with a passphrase that %s would not use: "+
				"set KILN_PASSPHRASE to the passphrase they were set with (a file backend's generated one is in %s/passphrase) for the move and from then on, "+
				"or remove the secrets (kiln secret rm), move, and set them again", p.Service(), to, p.StateDir)}
		}
	}
	root, err := pulumicli.Ensure(ctx, pulumicli.Options{Progress: progress})
	if err != nil {
		return res, err
	}
	open := func(b backend.Backend, name string) (*stacks.Stack, error) {
		return stacks.Open(ctx, stacks.Options{StateDir: p.StateDir, Backend: b.PulumiURL(), Env: b.EngineEnv(),
			Stack: name, PulumiRoot: root, PluginDir: p.BinDir})
	}
	// Every stack the target keeps for the service (aws: the fleet's and the images').
	for _, name := range targets.Stacks(p.Manifest.Target.Name(), p.Service()) {
		from, err := open(p.Backend, name)
		if err != nil {
			return res, err
		}
		into, err := open(to, name)
		if err != nil {
			return res, err
		}
		if err := from.MoveStateTo(ctx, into); err != nil {
			return res, fmt.Errorf("move the Pulumi state of %s (stack %s): %w", p.Service(), name, err)
		}
		res.Stacks = append(res.Stacks, name)
	}
	hist, err := src.History()
	if err != nil {
		return res, err
	}
	// Oldest first, so the destination's order is the source's.
	for i := len(hist) - 1; i >= 0; i-- {
		if err := dst.Record(hist[i]); err != nil {
			return res, fmt.Errorf("copy the history of %s: %w", p.Service(), err)
		}
		res.Records++
	}
	// The secrets keep their ciphertexts, the settings they were made with and their
	// version: the fleet is not replaced for having moved.
	secrets, err := src.LoadSecrets()
	if err != nil {
		return res, err
	}
	if secrets.Version != "" {
		if _, err := dst.UpdateSecrets(func(d *releases.Secrets) error { *d = secrets.Clone(); return nil }); err != nil {
			return res, fmt.Errorf("copy the secrets of %s: %w", p.Service(), err)
		}
	}
	if err := dst.MarkMoved(""); err != nil {
		return res, err
	}
	if err := src.MarkMoved(to.String()); err != nil {
		return res, fmt.Errorf("the state of %s was copied to %s, but the old backend could not be marked as moved: %w", p.Service(), to, err)
	}
	return res, nil
}

func releaseVersion(st releases.State) string {
	if st.Desired == nil {
		return "(unknown release)"
	}
	return st.Desired.Version
}
