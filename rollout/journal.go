package rollout

import (
	"fmt"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

// Checkpoint is a rollout's progress as persisted before every stage, so that a killed
// kiln resumes where it was.
type Checkpoint struct {
	ID string `json:"id"`
	// Stage indexes the plan's stages; Phase and Step name that stage.
	Stage int        `json:"stage"`
	Phase Phase      `json:"phase"`
	Step  int        `json:"step"`
	Slot  fleet.Slot `json:"slot"` // the new slot
	// Stable is the release that served before the rollout (nil for a first release);
	// Desired is the release being rolled out.
	Stable  *fleet.Release `json:"stable,omitempty"`
	Desired fleet.Release  `json:"desired"`
	// Started is when the rollout began; StageStarted when the current stage did
	// (deadlines survive a restart).
	Started      time.Time `json:"started"`
	StageStarted time.Time `json:"stageStarted"`
	// Aborting is set once the rollout is being undone: a resume finishes the undo.
	Aborting bool   `json:"aborting,omitempty"`
	Reason   Reason `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Journal persists checkpoints. A nil Journal keeps nothing (a killed rollout cannot be
// resumed, only undone by the next one).
type Journal interface {
	Save(Checkpoint) error
	Load() (Checkpoint, bool, error)
	Clear() error
}

// loadJournal returns the checkpoint a killed kiln left, or nil.
func (r *run) loadJournal() (*Checkpoint, error) {
	if r.e.Journal == nil {
		return nil, nil
	}
	cp, ok, err := r.e.Journal.Load()
	if err != nil {
		return nil, fmt.Errorf("read the rollout journal: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return &cp, nil
}

func (r *run) save() error {
	if r.e.Journal == nil {
		return nil
	}
	if err := r.e.Journal.Save(r.cp); err != nil {
		return fmt.Errorf("save the rollout checkpoint: %w", err)
	}
	return nil
}

func (r *run) clearJournal() {
	if r.e.Journal != nil {
		r.e.Journal.Clear()
	}
}
