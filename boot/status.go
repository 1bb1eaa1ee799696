package boot

import (
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// Unit states in Status.
const (
	// StateRunning: the unit's process is alive.
	StateRunning = "running"
	// StateBackoff: the unit waits to (re)start: it exited or failed to
	// start, or boot has not reached it yet.
	StateBackoff = "backoff"
	// StateExited: the unit is not running and will not be started again
	// by its restart policy; a scheduled unit waiting for its next run.
	StateExited = "exited"
	// StateStopped: boot stopped the unit on shutdown.
	StateStopped = "stopped"
)

// Status is <dataDir>/status.json, rewritten atomically on every change.
type Status struct {
	// PID is boot's process id.
	PID int `json:"pid"`
	// Started is when boot started (RFC 3339 with nanoseconds).
	Started string `json:"started"`
	// Units are the units in name order.
	Units []UnitStatus `json:"units"`
}

// UnitStatus is one unit in Status.
type UnitStatus struct {
	// Name is the unit name.
	Name string `json:"name"`
	// PID is the process id of the current or last run, 0 if never started.
	PID int `json:"pid"`
	// State is running, backoff, exited or stopped.
	State string `json:"state"`
	// Restarts counts starts after the first (restarts, or scheduled runs).
	Restarts int `json:"restarts"`
	// LastExit is how the last run ended ("exit status 1", "signal:
	// killed"), or "start failed: ..." when the command could not start.
	LastExit string `json:"lastExit"`
	// Since is when the unit entered State (RFC 3339 with nanoseconds).
	Since string `json:"since"`
}

// board holds the status and writes it to disk on every change.
type board struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu sync.Mutex
	st Status
	ix map[string]int
}

func newBoard(path string, units []*Unit, now func() time.Time, log *slog.Logger) *board {
	b := &board{path: path, log: log, now: now, ix: map[string]int{}}
	t := now().UTC().Format(time.RFC3339Nano)
	b.st = Status{PID: os.Getpid(), Started: t, Units: make([]UnitStatus, len(units))}
	for i, u := range units {
		// Not started yet: waiting to start, like a restart.
		b.st.Units[i] = UnitStatus{Name: u.Name, State: StateBackoff, Since: t}
		b.ix[u.Name] = i
	}
	return b
}

// update applies f to the named unit's status, stamps Since if the state
// changed, and rewrites the file.
func (b *board) update(name string, f func(*UnitStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := &b.st.Units[b.ix[name]]
	before := u.State
	f(u)
	if u.State != before {
		u.Since = b.now().UTC().Format(time.RFC3339Nano)
	}
	b.writeLocked()
}

func (b *board) write() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writeLocked()
}

func (b *board) writeLocked() {
	if err := writeJSONAtomic(b.path, b.st); err != nil {
		b.log.Error("write status", "path", b.path, "err", err)
	}
}

// snapshot returns a copy of the status.
func (b *board) snapshot() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.Units = append([]UnitStatus(nil), b.st.Units...)
	return st
}

// writeJSONAtomic writes v as JSON so that readers never see a partial document.
func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, fileperm.File)
}
