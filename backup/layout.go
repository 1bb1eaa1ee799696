package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kilnhq/kiln/backup/store"
)

// FormatVersion is the version of the dump layout described in
// docs/backup-format.md. Version 2 names volumes relative to their dump;
// version 1 (which named them with the id they were written under) is read too.
const FormatVersion = 2

// Key layout of one dump under its id in the store.
func planKey(id string) string           { return id + "/plan.json" }
func manifestKey(id string) string       { return id + "/manifest.json" }
func segmentKey(id string, s int) string { return fmt.Sprintf("%s/segments/seg-%05d.json", id, s) }

// Volume keys are relative to the dump: manifests and checkpoints hold them,
// and objectKey places them under whatever id the dump is read as, so a
// dump copied to another id, prefix or bucket reads its own volumes.
func volumeKey(s, v int) string { return fmt.Sprintf("data/seg-%05d/vol-%06d.json.zst", s, v) }
func changeStateKey(id, shard string) string {
	return fmt.Sprintf("%s/changes/shards/%s.json", id, shard)
}
func changeVolumeKey(shard string, v int) string {
	return fmt.Sprintf("changes/data/%s/chg-%06d.json.zst", shard, v)
}

// objectKey is the store key of volume key of dump id. A format 1 key
// starts with the id it was written under, which is replaced.
func objectKey(id, key string) string {
	if first, rest, ok := strings.Cut(key, "/"); ok && first != "data" && first != "changes" {
		key = rest
	}
	return id + "/" + key
}

// Schema is the table description a restore needs to recreate the table.
type Schema struct {
	TableName              string            `json:"tableName"`
	KeySchema              []KeyElement      `json:"keySchema"`
	AttributeDefinitions   []AttributeDef    `json:"attributeDefinitions"`
	GlobalSecondaryIndexes []SecondaryIndex  `json:"globalSecondaryIndexes,omitempty"`
	LocalSecondaryIndexes  []SecondaryIndex  `json:"localSecondaryIndexes,omitempty"`
	BillingMode            string            `json:"billingMode,omitempty"`
	ItemCountEstimate      int64             `json:"itemCountEstimate"`
	SizeBytesEstimate      int64             `json:"sizeBytesEstimate"`
	Extra                  map[string]string `json:"extra,omitempty"`
}

// KeyElement is one element of a key schema.
type KeyElement struct {
	AttributeName string `json:"attributeName"`
	KeyType       string `json:"keyType"` // HASH or RANGE
}

// AttributeDef is one key attribute definition.
type AttributeDef struct {
	AttributeName string `json:"attributeName"`
	AttributeType string `json:"attributeType"` // S, N or B
}

// SecondaryIndex is a global or local secondary index.
type SecondaryIndex struct {
	IndexName        string       `json:"indexName"`
	KeySchema        []KeyElement `json:"keySchema"`
	ProjectionType   string       `json:"projectionType"`
	NonKeyAttributes []string     `json:"nonKeyAttributes,omitempty"`
}

// keyNames returns the table's key attribute names, hash key first.
func (s Schema) keyNames() []string {
	var names []string
	for _, t := range []string{"HASH", "RANGE"} {
		for _, k := range s.KeySchema {
			if k.KeyType == t {
				names = append(names, k.AttributeName)
			}
		}
	}
	return names
}

// Plan is written once when a dump starts (plan.json) and fixes what every
// machine and every resumed run of that dump must agree on.
type Plan struct {
	FormatVersion int       `json:"formatVersion"`
	DumpID        string    `json:"dumpId"`
	Table         string    `json:"table"`
	TotalSegments int       `json:"totalSegments"`
	VolumeBytes   int64     `json:"volumeBytes"`
	VolumeItems   int64     `json:"volumeItems"`
	Schema        Schema    `json:"schema"`
	StartTime     time.Time `json:"startTime"`
}

// VolumeInfo describes one uploaded volume.
type VolumeInfo struct {
	Key      string `json:"key"`
	Segment  int    `json:"segment"`
	Index    int    `json:"index"`
	Items    int64  `json:"items"`
	Bytes    int64  `json:"bytes"`    // compressed size in the store
	RawBytes int64  `json:"rawBytes"` // uncompressed JSON lines
	SHA256   string `json:"sha256"`
	// LastKey is the key of the volume's last item (DynamoDB JSON): a scan
	// resumes after it.
	LastKey json.RawMessage `json:"lastKey,omitempty"`
}

// SegmentState is the checkpoint of one scan segment, rewritten after each
// uploaded volume. Done means the segment's scan reached its end.
type SegmentState struct {
	Segment       int          `json:"segment"`
	TotalSegments int          `json:"totalSegments"`
	Done          bool         `json:"done"`
	Items         int64        `json:"items"`
	Volumes       []VolumeInfo `json:"volumes"`
	UpdatedAt     time.Time    `json:"updatedAt"`
}

// Manifest is written last, atomically: a dump without one is incomplete.
type Manifest struct {
	FormatVersion int            `json:"formatVersion"`
	DumpID        string         `json:"dumpId"`
	Table         string         `json:"table"`
	Schema        Schema         `json:"schema"`
	TotalSegments int            `json:"totalSegments"`
	Segments      []SegmentState `json:"segments"`
	Items         int64          `json:"items"`
	Bytes         int64          `json:"bytes"`
	RawBytes      int64          `json:"rawBytes"`
	Volumes       int            `json:"volumes"`
	StartTime     time.Time      `json:"startTime"`
	EndTime       time.Time      `json:"endTime"`
}

// ShardState is the checkpoint of one stream shard followed by `incremental`.
type ShardState struct {
	ShardID       string       `json:"shardId"`
	ParentShardID string       `json:"parentShardId,omitempty"`
	StreamARN     string       `json:"streamArn"`
	LastSequence  string       `json:"lastSequence,omitempty"`
	Done          bool         `json:"done"` // shard closed and fully read
	Records       int64        `json:"records"`
	Volumes       []VolumeInfo `json:"volumes"`
	UpdatedAt     time.Time    `json:"updatedAt"`
}

func putJSON(ctx context.Context, s store.Store, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return s.Put(ctx, key, bytes.NewReader(append(b, '\n')))
}

// getJSON decodes key into v; found is false when the object does not exist.
func getJSON(ctx context.Context, s store.Store, key string, v any) (found bool, err error) {
	rc, err := s.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return true, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// LoadManifest reads the manifest of dump id; a missing manifest is an error
// that says the dump is incomplete.
func LoadManifest(ctx context.Context, s store.Store, id string) (*Manifest, error) {
	var m Manifest
	found, err := getJSON(ctx, s, manifestKey(id), &m)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("dump %q in %s has no manifest: it is incomplete (resume it with `dump`, or run `finalize`): %w", id, s, ErrIncomplete)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("%s: formatVersion %d, this kiln-backup reads 1 to %d", manifestKey(id), m.FormatVersion, FormatVersion)
	}
	return &m, nil
}

// ErrIncomplete is returned when a dump has no manifest yet.
var ErrIncomplete = errors.New("dump incomplete")
