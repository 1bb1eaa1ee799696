package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// RestoreConfig configures Restore.
type RestoreConfig struct {
	Store  store.Store
	DumpID string
	// Table is the target table (default: the dumped table's name).
	Table string
	DB    *dynamodb.Client
	// Create creates the table from the dump's schema when it does not exist.
	Create bool
	// StateFile records restored volumes so a killed restore resumes; it
	// must be on local disk. TempDir holds downloaded volumes (default: the
	// state file's directory).
	StateFile, TempDir string
	Parallel           int
	// WriteBudget is the write capacity target in WCU/s (0: unthrottled).
	WriteBudget float64
	// MaxAttempts bounds BatchWriteItem attempts for unprocessed items; after
	// that the restore fails loudly instead of dropping them (default 30).
	MaxAttempts int
	// SkipChanges restores the dump only, without replaying change volumes.
	SkipChanges bool
	Clock       clock.Clock
	Log         *slog.Logger
	Progress    *Progress
}

// RestoreState is the local checkpoint of a restore.
type RestoreState struct {
	DumpID  string          `json:"dumpId"`
	Table   string          `json:"table"`
	Volumes map[string]bool `json:"volumes"` // restored volume keys
	Changes map[string]bool `json:"changes"` // replayed change volume keys
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	Items, Changes int64
	Capacity       float64
}

type restorer struct {
	cfg    RestoreConfig
	bucket *Bucket
	retry  *retrier
	mu     sync.Mutex
	state  RestoreState
}

// Restore writes every item of dump id into the target table, then replays
// the dump's change volumes in order. Items are never dropped: unprocessed
// items are retried with backoff and the restore fails after MaxAttempts.
func Restore(ctx context.Context, cfg RestoreConfig) (*RestoreResult, error) {
	if cfg.Store == nil || cfg.DB == nil || cfg.DumpID == "" {
		return nil, errors.New("restore: store, DynamoDB client and --id are required")
	}
	if cfg.StateFile == "" {
		return nil, errors.New("restore: --state is required (a local file that lets a killed restore resume)")
	}
	if cfg.TempDir == "" {
		cfg.TempDir = filepath.Dir(cfg.StateFile)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 30
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Progress == nil {
		cfg.Progress = newProgress("restore")
	}
	m, err := LoadManifest(ctx, cfg.Store, cfg.DumpID)
	if err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = m.Table
	}
	r := &restorer{cfg: cfg}
	r.bucket = NewBucket(cfg.WriteBudget, 0, cfg.Clock)
	cfg.Progress.Capacity = r.bucket.Spent
	cfg.Progress.EstimatedItems.Store(m.Items)
	r.retry = &retrier{backoff: Backoff{Base: 50 * time.Millisecond, Max: 10 * time.Second}, maxAttempts: 8, clock: cfg.Clock, throttles: &cfg.Progress.Throttles, log: cfg.Log}
	if err := r.loadState(); err != nil {
		return nil, err
	}
	if err := r.ensureTable(ctx, m.Schema); err != nil {
		return nil, err
	}
	cfg.Log.Info("restore start", "dump", cfg.DumpID, "table", cfg.Table, "items", m.Items, "volumes", m.Volumes, "write_budget", cfg.WriteBudget)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Parallel)
	for _, seg := range m.Segments {
		for _, v := range seg.Volumes {
			r.mu.Lock()
			done := r.state.Volumes[v.Key]
			r.mu.Unlock()
			if done {
				continue
			}
			g.Go(func() error { return r.volume(gctx, v) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := &RestoreResult{Items: cfg.Progress.Items.Load()}
	if !cfg.SkipChanges {
		n, err := r.replay(ctx)
		if err != nil {
			return nil, err
		}
		res.Changes = n
	}
	res.Capacity = r.bucket.Spent()
	cfg.Progress.Log(cfg.Log)
	cfg.Log.Info("restore complete", "dump", cfg.DumpID, "table", cfg.Table)
	return res, nil
}

func (r *restorer) loadState() error {
	r.state = RestoreState{DumpID: r.cfg.DumpID, Table: r.cfg.Table, Volumes: map[string]bool{}, Changes: map[string]bool{}}
	b, err := os.ReadFile(r.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	var st RestoreState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("restore state %s: %w", r.cfg.StateFile, err)
	}
	if st.DumpID != r.cfg.DumpID || st.Table != r.cfg.Table {
		return fmt.Errorf("restore state %s is for dump %q into %q, not %q into %q: use another --state", r.cfg.StateFile, st.DumpID, st.Table, r.cfg.DumpID, r.cfg.Table)
	}
	if st.Volumes == nil {
		st.Volumes = map[string]bool{}
	}
	if st.Changes == nil {
		st.Changes = map[string]bool{}
	}
	r.state = st
	return nil
}

// saveState writes the state file atomically; callers hold r.mu.
func (r *restorer) saveState() error {
	b, err := json.Marshal(r.state)
	if err != nil {
		return err
	}
	tmp := r.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	if err := os.Rename(tmp, r.cfg.StateFile); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	return nil
}

func (r *restorer) ensureTable(ctx context.Context, s Schema) error {
	db := r.cfg.DB
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &r.cfg.Table})
	if err == nil {
		have, want := keyElems(out.Table.KeySchema), s.KeySchema
		if fmt.Sprint(have) != fmt.Sprint(want) {
			return fmt.Errorf("restore: table %s has key schema %v, the dump's is %v: restore into a new table (--table NAME --create)", r.cfg.Table, have, want)
		}
		return waitActive(ctx, db, r.cfg.Clock, r.cfg.Table)
	}
	if !isNotFoundTable(err) {
		return fmt.Errorf("restore: describe %s: %w", r.cfg.Table, err)
	}
	if !r.cfg.Create {
		return fmt.Errorf("restore: table %s does not exist (pass --create to create it from the dump's schema)", r.cfg.Table)
	}
	in := &dynamodb.CreateTableInput{TableName: &r.cfg.Table, BillingMode: types.BillingModePayPerRequest}
	for _, k := range s.KeySchema {
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
	}
	for _, a := range s.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(a.AttributeName), AttributeType: types.ScalarAttributeType(a.AttributeType)})
	}
	ks := func(in []KeyElement) (out []types.KeySchemaElement) {
		for _, k := range in {
			out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
		}
		return out
	}
	proj := func(i SecondaryIndex) *types.Projection {
		return &types.Projection{ProjectionType: types.ProjectionType(i.ProjectionType), NonKeyAttributes: i.NonKeyAttributes}
	}
	for _, i := range s.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{IndexName: aws.String(i.IndexName), KeySchema: ks(i.KeySchema), Projection: proj(i)})
	}
	for _, i := range s.LocalSecondaryIndexes {
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, types.LocalSecondaryIndex{IndexName: aws.String(i.IndexName), KeySchema: ks(i.KeySchema), Projection: proj(i)})
	}
	if _, err := db.CreateTable(ctx, in); err != nil {
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			return fmt.Errorf("restore: create table %s: %w", r.cfg.Table, err)
		}
	}
	r.cfg.Log.Info("created table", "table", r.cfg.Table)
	return waitActive(ctx, db, r.cfg.Clock, r.cfg.Table)
}

// download copies a volume into a local temp file, checking its digest
// before a single item is written to the table.
func (r *restorer) download(ctx context.Context, v VolumeInfo) (*os.File, error) {
	rc, err := r.cfg.Store.Get(ctx, v.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if err := os.MkdirAll(r.cfg.TempDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(r.cfg.TempDir, "restore-vol-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // unlinked: a kill leaves nothing behind
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("download %s: %w", v.Key, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != v.SHA256 || n != v.Bytes {
		f.Close()
		return nil, fmt.Errorf("restore: volume %s: sha256 %s (%d bytes), manifest says %s (%d bytes): %w", v.Key, sum, n, v.SHA256, v.Bytes, errCorrupt)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (r *restorer) volume(ctx context.Context, v VolumeInfo) error {
	r.cfg.Progress.VolumesInFlight.Add(1)
	defer r.cfg.Progress.VolumesInFlight.Add(-1)
	f, err := r.download(ctx, v)
	if err != nil {
		return err
	}
	defer f.Close()
	batch := make([]types.WriteRequest, 0, 25)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.writeBatch(ctx, batch)
		batch = batch[:0]
		return err
	}
	n, _, _, err := readVolume(f, func(it Item) error {
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		r.cfg.Progress.Items.Add(1)
		if len(batch) == 25 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("restore volume %s: %w", v.Key, err)
	}
	if n != v.Items {
		return fmt.Errorf("restore volume %s: %d items, manifest says %d: %w", v.Key, n, v.Items, errCorrupt)
	}
	r.cfg.Progress.Bytes.Add(v.RawBytes)
	r.cfg.Progress.Volumes.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state.Volumes[v.Key] = true
	return r.saveState()
}

// writeBatch writes up to 25 items, retrying unprocessed ones with backoff;
// after MaxAttempts it fails, naming how many items are still unwritten.
func (r *restorer) writeBatch(ctx context.Context, reqs []types.WriteRequest) error {
	table := r.cfg.Table
	for attempt := 0; len(reqs) > 0; attempt++ {
		if attempt >= r.cfg.MaxAttempts {
			return fmt.Errorf("%d items still unprocessed after %d BatchWriteItem attempts; failing instead of dropping them", len(reqs), attempt)
		}
		if attempt > 0 {
			if err := clock.Sleep(ctx, r.cfg.Clock, r.retry.backoff.Wait(attempt-1)); err != nil {
				return err
			}
		}
		estimate := float64(len(reqs))
		if err := r.bucket.Reserve(ctx, estimate); err != nil {
			return err
		}
		var out *dynamodb.BatchWriteItemOutput
		err := r.retry.do(ctx, "batch write", func(ctx context.Context) error {
			var err error
			out, err = r.cfg.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems:           map[string][]types.WriteRequest{table: reqs},
				ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
			})
			return err
		})
		if err != nil {
			r.bucket.Settle(estimate, 0)
			return err
		}
		used := 0.0
		for _, c := range out.ConsumedCapacity {
			used += aws.ToFloat64(c.CapacityUnits)
		}
		r.bucket.Settle(estimate, used)
		reqs = out.UnprocessedItems[table]
	}
	return nil
}

// replay applies the change volumes in order: shards parent first, volumes
// by index, records by sequence. Every change sets or deletes a whole item,
// so replaying a volume twice (after a kill) gives the same table.
func (r *restorer) replay(ctx context.Context) (int64, error) {
	shards, err := loadShards(ctx, r.cfg.Store, r.cfg.DumpID)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, sh := range shards {
		for _, v := range sh.Volumes {
			if r.state.Changes[v.Key] {
				continue
			}
			f, err := r.download(ctx, v)
			if err != nil {
				return n, err
			}
			_, _, _, err = readChanges(f, func(c Change) error {
				n++
				return r.apply(ctx, c)
			})
			f.Close()
			if err != nil {
				return n, fmt.Errorf("replay %s: %w", v.Key, err)
			}
			r.mu.Lock()
			r.state.Changes[v.Key] = true
			err = r.saveState()
			r.mu.Unlock()
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (r *restorer) apply(ctx context.Context, c Change) error {
	table := r.cfg.Table
	if err := r.bucket.Reserve(ctx, 1); err != nil {
		return err
	}
	var used float64
	err := r.retry.do(ctx, "replay "+c.Sequence, func(ctx context.Context) error {
		if c.Event == "REMOVE" {
			keys, err := decodeItemJSON(c.Keys)
			if err != nil {
				return err
			}
			out, err := r.cfg.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &table, Key: keys, ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal})
			if err == nil && out.ConsumedCapacity != nil {
				used = aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
			}
			return err
		}
		item, err := decodeItemJSON(c.NewImage)
		if err != nil {
			return err
		}
		out, err := r.cfg.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: item, ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal})
		if err == nil && out.ConsumedCapacity != nil {
			used = aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
		}
		return err
	})
	r.bucket.Settle(1, used)
	if err == nil {
		r.cfg.Progress.Items.Add(1)
	}
	return err
}
