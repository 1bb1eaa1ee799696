package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
)

// journal keeps the engine's checkpoints in the stack's backend, and the release history
// up to date with them: a rollout appears in history as running from its first
// checkpoint, and a resumed one updates the same record.
type journal struct {
	store releases.Store
	who   releases.Holder
}

var _ rollout.Journal = (*journal)(nil)

func (j *journal) Save(cp rollout.Checkpoint) error {
	extra, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	desired := cp.Desired
	st := releases.State{ID: cp.ID, Phase: string(cp.Phase), Step: cp.Step, Stable: releases.FromFleet(cp.Stable),
		Desired: releases.FromFleet(&desired), StartedAt: cp.Started, UpdatedAt: time.Now(), Reason: string(cp.Reason), Extra: extra}
	if err := j.store.SaveState(st); err != nil {
		return err
	}
	return j.store.Record(releases.Record{ID: cp.ID, Version: cp.Desired.Version, Digest: cp.Desired.Image.Digest,
		Secrets: cp.Desired.Secrets, Started: cp.Started, Outcome: "running", User: j.who.User, Host: j.who.Host})
}

func (j *journal) Load() (rollout.Checkpoint, bool, error) {
	st, ok, err := j.store.LoadState()
	if err != nil || !ok {
		return rollout.Checkpoint{}, false, err
	}
	var cp rollout.Checkpoint
	if err := json.Unmarshal(st.Extra, &cp); err != nil {
		return cp, false, fmt.Errorf("rollout state %s: %w", st.ID, err)
	}
	return cp, true, nil
}

func (j *journal) Clear() error { return j.store.ClearState() }

// record writes how a rollout ended into the history.
func (j *journal) record(fin rollout.Finished, started time.Time) {
	if fin.ID == "" || fin.To == nil {
		return // refused or failed before it started: nothing was released
	}
	j.store.Record(releases.Record{ID: fin.ID, Version: fin.To.Version, Digest: fin.To.Image.Digest,
		Secrets: fin.To.Secrets, Started: started, Finished: fin.At, Outcome: string(fin.Outcome), Reason: string(fin.Reason),
		Message: fin.Message, User: j.who.User, Host: j.who.Host})
}

// LockStack takes the stack's lock for command, breaking a stale one only when asked to.
func LockStack(ctx context.Context, store releases.Store, command string, breakStale bool) (func() error, releases.Holder, error) {
	who := releases.CurrentHolder(command)
	unlock, err := store.Lock(ctx, who)
	var le *releases.LockedError
	if errors.As(err, &le) && breakStale && (le.Stale || le.Err != nil) {
		if err := store.BreakLock(le.Holder); err != nil {
			return nil, who, err
		}
		unlock, err = store.Lock(ctx, who)
	}
	return unlock, who, err
}

// admit refuses a release that is not newer than the live one, unless allowed.
func admit(allowDowngrade bool) func(*fleet.Release, string) error {
	return func(live *fleet.Release, version string) error {
		if live == nil {
			return nil
		}
		return releases.CheckNewer(live.Version, version, allowDowngrade)
	}
}
