package rollouttest

import (
	"sync"

	"github.com/kilnhq/kiln/rollout"
)

// Journal keeps the checkpoint in memory and records every save.
type Journal struct {
	mu    sync.Mutex
	cp    *rollout.Checkpoint
	saves []rollout.Checkpoint
}

var _ rollout.Journal = (*Journal)(nil)

// Left returns a journal holding cp, as a killed kiln leaves it.
func Left(cp rollout.Checkpoint) *Journal { return &Journal{cp: &cp} }

// Save implements rollout.Journal.
func (j *Journal) Save(c rollout.Checkpoint) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cp = &c
	j.saves = append(j.saves, c)
	return nil
}

// Load implements rollout.Journal.
func (j *Journal) Load() (rollout.Checkpoint, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cp == nil {
		return rollout.Checkpoint{}, false, nil
	}
	return *j.cp, true, nil
}

// Clear implements rollout.Journal.
func (j *Journal) Clear() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cp = nil
	return nil
}

// Saves returns every checkpoint saved, in order.
func (j *Journal) Saves() []rollout.Checkpoint {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]rollout.Checkpoint(nil), j.saves...)
}

// Holds reports whether a checkpoint is kept (a rollout is not over).
func (j *Journal) Holds() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cp != nil
}
