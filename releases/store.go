package releases

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Release is one version of the service baked into one image. It mirrors [fleet.Release]
// in a flat shape that stays stable in the files kiln keeps.
type Release struct {
	Version  string `json:"version"`
	Digest   string `json:"digest"`
	Location string `json:"location"`
	// Secrets is the secrets version the release runs with ([Secrets.Version]).
	Secrets string `json:"secrets,omitempty"`
}

// FromFleet converts a fleet release; nil stays nil.
func FromFleet(r *fleet.Release) *Release {
	if r == nil {
		return nil
	}
	return &Release{Version: r.Version, Digest: r.Image.Digest, Location: r.Image.Location, Secrets: r.Secrets}
}

// Fleet converts r back to the engine's vocabulary; nil stays nil.
func (r *Release) Fleet() *fleet.Release {
	if r == nil {
		return nil
	}
	return &fleet.Release{Version: r.Version, Image: fleet.Image{Digest: r.Digest, Location: r.Location}, Secrets: r.Secrets}
}

// State is the record of the rollout in progress, saved after every step so that a
// rollout killed at any moment can be resumed (or rolled back) from it.
type State struct {
	// ID names the rollout; the same ID is used for its history [Record], so a resumed
	// rollout updates its record instead of adding another one.
	ID string `json:"id"`
	// Phase and Step say how far the rollout got; their meaning belongs to the engine.
	Phase string `json:"phase"`
	Step  int    `json:"step"`
	// Stable is the release that carried the traffic before the rollout (nil for the
	// first release); Desired is the release being rolled out.
	Stable  *Release `json:"stable,omitempty"`
	Desired *Release `json:"desired,omitempty"`
	// StartedAt is when the rollout began; UpdatedAt when this state was saved.
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Reason is the named reason of the last phase change, for resume and for display.
	Reason string `json:"reason,omitempty"`
	// Extra is the engine's own data; it is stored as given (compacted).
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Record is one release in the history of a stack.
type Record struct {
	// ID is the rollout's ID ([State.ID]); [Store.Record] replaces a record of the same ID.
	ID      string `json:"id"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	// Secrets is the secrets version the release ran with: never a value.
	Secrets string `json:"secrets,omitempty"`
	// Started and Finished bound the rollout; Finished is zero while it runs.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Outcome is how it ended (e.g. promoted, rolled-back, failed, running); Reason is the
	// named reason and Message the human explanation.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// User and Host say who ran it and where.
	User string `json:"user,omitempty"`
	Host string `json:"host,omitempty"`
}

// MaxHistory is how many records a stack's history keeps; older ones are dropped.
const MaxHistory = 1000

// Store keeps a stack's lock, rollout state and release history in the stack's backend.
type Store interface {
	// Lock takes the stack's lock for h, or fails at once with a *[LockedError] naming
	// the holder; it never waits for a holder to go away. The returned unlock releases
	// the lock only if it is still h's, and reports [ErrLockLost] otherwise.
	Lock(ctx context.Context, h Holder) (unlock func() error, err error)
	// BreakLock removes the lock only if it is still held by expected (compare and
	// delete), so a lock taken by someone else since it was reported stays.
	BreakLock(expected Holder) error
	// SaveState replaces the rollout state atomically and durably.
	SaveState(s State) error
	// LoadState returns the saved rollout state, if there is one.
	LoadState() (State, bool, error)
	// ClearState removes the rollout state (the rollout is over).
	ClearState() error
	// Record inserts r into the history, or replaces the record with the same ID.
	Record(r Record) error
	// History returns the records, newest first.
	History() ([]Record, error)
	// LoadSecrets returns the stack's secrets document; an empty one (no version, no
	// values) when no secret was ever set.
	LoadSecrets() (Secrets, error)
	// UpdateSecrets changes the secrets document with fn and saves it with a new
	// [Secrets.Version] ([NewSecretsVersion]) unless fn set the version itself (a
	// migration copies it), atomically against other writers (a read,
	// fn and a conditional write, retried or serialised: fn may run more than once); an
	// error from fn saves nothing.
	// It returns the document saved. It does not need the stack's lock.
	UpdateSecrets(fn func(*Secrets) error) (Secrets, error)
	// MarkMoved records that the stack's state now lives in the backend at url, so that
	// nobody keeps deploying from the copy left here.
	MarkMoved(url string) error
	// MovedTo returns where the state was moved, if it was.
	MovedTo() (string, error)
}

// movedFile names the marker MarkMoved leaves.
const movedFile = "moved.json"

// moved is the marker's content.
type moved struct {
	To string    `json:"to"`
	At time.Time `json:"at"`
}

// ErrLockLost is returned when a lock this process took is no longer its own: someone
// broke it (and maybe someone else took it since). Whatever the holder was doing must stop.
var ErrLockLost = errors.New("the stack's lock is no longer held by this process")

// ErrLockChanged is returned by BreakLock when the lock is held by someone other than
// the holder it was asked to break.
var ErrLockChanged = errors.New("the lock changed hands")

// ErrHolderAlive is returned by BreakLock when the holder is a process on this host that
// is still running: breaking its lock would let two rollouts run at once.
var ErrHolderAlive = errors.New("the lock holder is still running")
