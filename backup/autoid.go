package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// AutoID is the --id value that lets a scheduled agent pick its dump: the
// dump of the table it started last if that one has no manifest yet (so a
// restarted or re-scheduled agent resumes it, however many days it takes),
// otherwise a new one named <table>-<UTC start time>.
const AutoID = "auto"

type autoPointer struct {
	DumpID string `json:"dumpId"`
}

func autoKey(table string) string { return "_auto/" + table + ".json" }

// resolveAutoID returns the dump id to use for table.
func resolveAutoID(ctx context.Context, s store.Store, table string, clk clock.Clock) (string, error) {
	var p autoPointer
	found, err := getJSON(ctx, s, autoKey(table), &p)
	if err != nil {
		return "", err
	}
	if found && p.DumpID != "" {
		_, err := LoadManifest(ctx, s, p.DumpID)
		if errors.Is(err, ErrIncomplete) {
			return p.DumpID, nil
		}
		if err != nil {
			return "", err
		}
	}
	id := fmt.Sprintf("%s-%s", table, clk.Now().UTC().Format("20060102T150405Z"))
	if err := putJSON(ctx, s, autoKey(table), autoPointer{DumpID: id}); err != nil {
		return "", err
	}
	return id, nil
}
