package awsmodel

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/atomicfile"
	"github.com/kilnhq/kiln/internal/fileperm"
)

// DirEnv names the directory that holds the model's "cloud": one JSON file per resource.
const DirEnv = "KILN_AWSMODEL_DIR"

// Record is one resource of the model's cloud, as the provider double created it.
type Record struct {
	Type string `json:"type"` // the Pulumi type token, e.g. aws:autoscaling/group:Group
	URN  string `json:"urn"`  // the URN of the resource that created it
	ID   string `json:"id"`
	// Inputs are the resource's inputs as the engine sent them, secrets still marked
	// (Pulumi's JSON form of property values); Outputs are what the provider answered.
	Inputs  map[string]any `json:"inputs"`
	Outputs map[string]any `json:"outputs"`
	State   string         `json:"state"` // StateAvailable, StateUpdating, StateDeleting
	// Created and Updated are when the model accepted the create and the last update;
	// Ready is when the operation in progress ends (its modelled latency).
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Ready   time.Time `json:"ready"`
	// Launched is when an auto scaling group's current instances were launched: its
	// create, or the last update that changed its template or size.
	Launched time.Time `json:"launched"`
}

// States of a record.
const (
	StateAvailable = "available"
	StateCreating  = "creating"
	StateUpdating  = "updating"
	StateDeleting  = "deleting"
)

// Input returns a top-level input with any secret marking removed.
func (r Record) Input(key string) any { return Plain(r.Inputs[key]) }

// Output returns a top-level output with any secret marking removed.
func (r Record) Output(key string) any { return Plain(r.Outputs[key]) }

// Store is the model's cloud on disk. Every record is written whole (atomically) and
// readable by its owner only; a reader never sees half a resource.
type Store struct {
	Dir string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// OpenStore returns the store in dir, creating the directory.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("awsmodel: no model directory: set %s", DirEnv)
	}
	if err := os.MkdirAll(dir, fileperm.Dir); err != nil {
		return nil, fmt.Errorf("awsmodel: %w", err)
	}
	return &Store{Dir: dir}, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// path is the file of a resource: readable by a human (the type's module and name),
// unique by a hash of type and ID (IDs hold ARNs' slashes and colons).
func (s *Store) path(typ, id string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + id))
	short := strings.NewReplacer("aws:", "", "/", "-", ":", "-").Replace(typ)
	return filepath.Join(s.Dir, short+"-"+hex.EncodeToString(sum[:8])+".json")
}

// Put writes a record, replacing any earlier version of it.
func (s *Store) Put(r Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("awsmodel: put %s %s: %w", r.Type, r.ID, err)
	}
	if err := atomicfile.Write(s.path(r.Type, r.ID), b, fileperm.File); err != nil {
		return fmt.Errorf("awsmodel: put %s %s: %w", r.Type, r.ID, err)
	}
	return nil
}

// Get returns the record of a resource; ok is false when it does not exist (or its
// deletion has ended).
func (s *Store) Get(typ, id string) (r Record, ok bool, err error) {
	b, err := os.ReadFile(s.path(typ, id))
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("awsmodel: get %s %s: %w", typ, id, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, false, fmt.Errorf("awsmodel: get %s %s: %w", typ, id, err)
	}
	if s.gone(r) {
		return Record{}, false, nil
	}
	return r, true, nil
}

// gone says a record's deletion has ended: the provider that deleted it was killed before
// it removed the file, but the cloud finishes a delete it accepted on its own.
func (s *Store) gone(r Record) bool {
	return r.State == StateDeleting && !s.now().Before(r.Ready)
}

// Delete removes a resource's record; removing one that does not exist is no error.
func (s *Store) Delete(typ, id string) error {
	err := os.Remove(s.path(typ, id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("awsmodel: delete %s %s: %w", typ, id, err)
	}
	return nil
}

// List returns every resource of the cloud (of the given types; none given is all),
// ordered by type and ID.
func (s *Store) List(types ...string) ([]Record, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("awsmodel: list: %w", err)
	}
	var out []Record
	for _, e := range ents {
		// Dot files are the temporaries of writes in progress and the model's own
		// bookkeeping.
		if strings.HasPrefix(e.Name(), ".") || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted while we listed
		}
		if err != nil {
			return nil, fmt.Errorf("awsmodel: list: %w", err)
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("awsmodel: list: %s: %w", e.Name(), err)
		}
		if s.gone(r) || len(types) > 0 && !slices.Contains(types, r.Type) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
