package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kilnhq/kiln/backup/store"
)

// Change is one line of a change volume: a stream record reduced to what
// a replay needs. Keys and NewImage are DynamoDB JSON.
type Change struct {
	Shard    string          `json:"shard"`
	Sequence string          `json:"seq"`
	Event    string          `json:"event"` // INSERT, MODIFY or REMOVE
	Time     int64           `json:"time"`  // approximate creation time, Unix seconds
	Keys     json.RawMessage `json:"keys"`
	NewImage json.RawMessage `json:"newImage,omitempty"`
}

// readChanges decodes a change volume, calling fn for each change.
func readChanges(r io.Reader, fn func(Change) error) (int64, string, int64, error) {
	return readLines(r, func(b []byte) error {
		var c Change
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		switch c.Event {
		case "INSERT", "MODIFY":
			if len(c.NewImage) == 0 {
				return fmt.Errorf("%s %s: no newImage (the stream must be NEW_IMAGE or NEW_AND_OLD_IMAGES)", c.Event, c.Sequence)
			}
		case "REMOVE":
		default:
			return fmt.Errorf("seq %s: unknown event %q", c.Sequence, c.Event)
		}
		if len(c.Keys) == 0 || c.Sequence == "" {
			return fmt.Errorf("change without keys or seq")
		}
		if fn != nil {
			return fn(c)
		}
		return nil
	})
}

// loadShards reads every shard checkpoint of dump id and returns them in
// replay order: a parent before its children, otherwise by shard id.
func loadShards(ctx context.Context, s store.Store, id string) ([]ShardState, error) {
	prefix := id + "/changes/shards/"
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	byID := map[string]ShardState{}
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		var st ShardState
		if _, err := getJSON(ctx, s, k, &st); err != nil {
			return nil, err
		}
		byID[st.ShardID] = st
	}
	ids := make([]string, 0, len(byID))
	for k := range byID {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	var out []ShardState
	seen := map[string]bool{}
	var visit func(string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		st := byID[id]
		if _, ok := byID[st.ParentShardID]; ok {
			visit(st.ParentShardID)
		}
		out = append(out, st)
	}
	for _, id := range ids {
		visit(id)
	}
	return out, nil
}
