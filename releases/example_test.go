package releases_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kilnhq/kiln/releases"
)

// A rollout takes the stack's lock, resumes from a saved state if a killed run left one,
// saves its state after every step, records itself in the history (the same ID on resume)
// and clears the state when it is over.
func Example() {
	stateDir, _ := os.MkdirTemp("", "kiln-example")
	defer os.RemoveAll(stateDir)
	store, err := releases.OpenFileStore(releases.Dir(stateDir, "shop"))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	if err := releases.CheckNewer("1.0.0", "1.1.0", false); err != nil {
		fmt.Println(err) // a *DowngradeError: invalid input
		return
	}
	unlock, err := store.Lock(ctx, releases.CurrentHolder("kiln rollout"))
	var locked *releases.LockedError
	if errors.As(err, &locked) {
		fmt.Println(err) // exit code 4; if locked.Stale, --break-lock calls store.BreakLock(locked.Holder)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unlock()

	st, resumed, err := store.LoadState()
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	if !resumed {
		st = releases.State{ID: "shop-1.1.0-1", Phase: "bake", StartedAt: start,
			Stable: &releases.Release{Version: "1.0.0"}, Desired: &releases.Release{Version: "1.1.0"}}
	}
	rec := releases.Record{ID: st.ID, Version: st.Desired.Version, Started: st.StartedAt, Outcome: "running"}
	if err := store.Record(rec); err != nil {
		fmt.Println(err)
		return
	}
	for i, phase := range []string{"deploy", "health", "switch", "retire"} {
		st.Phase, st.Step, st.UpdatedAt = phase, i+1, start.Add(time.Duration(i+1)*time.Minute)
		if err := store.SaveState(st); err != nil {
			fmt.Println(err) // ErrLockLost: someone broke our lock, stop here
			return
		}
	}
	rec.Finished, rec.Outcome = start.Add(5*time.Minute), "promoted"
	if err := store.Record(rec); err != nil { // replaces the "running" record
		fmt.Println(err)
		return
	}
	if err := store.ClearState(); err != nil {
		fmt.Println(err)
		return
	}

	hist, err := store.History()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range hist {
		fmt.Println(r.ID, r.Version, r.Outcome, r.Finished.Sub(r.Started))
	}
	// Output: shop-1.1.0-1 1.1.0 promoted 5m0s
}
