package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// IncrementalConfig configures Incremental.
type IncrementalConfig struct {
	Store  store.Store
	DumpID string
	// Table names the table whose latest stream is followed, unless
	// StreamARN is given.
	Table     string
	StreamARN string
	DB        *dynamodb.Client
	Streams   *dynamodbstreams.Client
	// VolumeRecords cuts change volumes at this many records (default 10000).
	VolumeRecords int64
	// Follow keeps reading until ctx is done; otherwise Incremental returns
	// once every readable shard is caught up.
	Follow       bool
	PollInterval time.Duration
	Clock        clock.Clock
	Log          *slog.Logger
	Progress     *Progress
}

// IncrementalResult says what one Incremental run read.
type IncrementalResult struct {
	Records int64
	Volumes int
	Shards  int
}

// ErrTrimmed is returned when records the checkpoints need are past the
// stream's 24 h retention: changes were lost and a new full dump is needed.
var ErrTrimmed = errors.New("stream records trimmed before they were read")

type follower struct {
	cfg   IncrementalConfig
	retry *retrier
	res   IncrementalResult
}

// Incremental reads the table's stream from the shard checkpoints of dump
// id onward and writes change volumes (sequence-ordered records per shard)
// with a checkpoint after each, so restore can replay them after the dump.
func Incremental(ctx context.Context, cfg IncrementalConfig) (*IncrementalResult, error) {
	if cfg.Store == nil || cfg.Streams == nil || cfg.DumpID == "" {
		return nil, errors.New("incremental: store, streams client and --id are required")
	}
	if cfg.VolumeRecords <= 0 {
		cfg.VolumeRecords = 10000
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Progress == nil {
		cfg.Progress = newProgress("incremental")
	}
	f := &follower{cfg: cfg}
	f.retry = &retrier{backoff: Backoff{Base: 50 * time.Millisecond, Max: 10 * time.Second}, maxAttempts: 8, clock: cfg.Clock, throttles: &cfg.Progress.Throttles, log: cfg.Log}
	if f.cfg.StreamARN == "" {
		if cfg.DB == nil {
			return nil, errors.New("incremental: --table needs a DynamoDB client")
		}
		out, err := cfg.DB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &cfg.Table})
		if err != nil {
			return nil, fmt.Errorf("incremental: describe %s: %w", cfg.Table, err)
		}
		if out.Table.LatestStreamArn == nil {
			return nil, fmt.Errorf("incremental: table %s has no stream; enable one with view type NEW_IMAGE or NEW_AND_OLD_IMAGES", cfg.Table)
		}
		f.cfg.StreamARN = *out.Table.LatestStreamArn
	}
	for {
		finished, err := f.pass(ctx)
		if err != nil {
			return &f.res, err
		}
		if !cfg.Follow && !finished {
			break
		}
		if cfg.Follow && !finished {
			if err := clock.Sleep(ctx, cfg.Clock, cfg.PollInterval); err != nil {
				return &f.res, nil
			}
		}
	}
	cfg.Log.Info("incremental caught up", "dump", cfg.DumpID, "records", f.res.Records, "volumes", f.res.Volumes, "shards", f.res.Shards)
	return &f.res, nil
}

// pass reads every shard that can be read now (its parent is done). It
// reports whether a shard closed, which may make children readable.
func (f *follower) pass(ctx context.Context) (closedOne bool, err error) {
	shards, err := f.describe(ctx)
	if err != nil {
		return false, err
	}
	f.res.Shards = len(shards)
	states := map[string]*ShardState{}
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		st := &ShardState{ShardID: id, ParentShardID: aws.ToString(sh.ParentShardId), StreamARN: f.cfg.StreamARN}
		if _, err := getJSON(ctx, f.cfg.Store, changeStateKey(f.cfg.DumpID, id), st); err != nil {
			return false, err
		}
		states[id] = st
	}
	for _, sh := range shards {
		st := states[aws.ToString(sh.ShardId)]
		if st.Done {
			continue
		}
		if p, ok := states[st.ParentShardID]; ok && !p.Done {
			continue // a parent's records come first
		}
		if err := f.readShard(ctx, st); err != nil {
			return false, fmt.Errorf("shard %s: %w", st.ShardID, err)
		}
		closedOne = closedOne || st.Done
	}
	return closedOne, nil
}

// describe lists the stream's shards, parents before children.
func (f *follower) describe(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	var start *string
	for {
		var out *dynamodbstreams.DescribeStreamOutput
		err := f.retry.do(ctx, "describe stream", func(ctx context.Context) error {
			var err error
			out, err = f.cfg.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: &f.cfg.StreamARN, ExclusiveStartShardId: start, Limit: aws.Int32(100)})
			return err
		})
		if err != nil {
			return nil, err
		}
		shards = append(shards, out.StreamDescription.Shards...)
		if start = out.StreamDescription.LastEvaluatedShardId; start == nil {
			break
		}
	}
	byID := map[string]types.Shard{}
	for _, s := range shards {
		byID[aws.ToString(s.ShardId)] = s
	}
	sort.Slice(shards, func(i, j int) bool { return aws.ToString(shards[i].ShardId) < aws.ToString(shards[j].ShardId) })
	var ordered []types.Shard
	seen := map[string]bool{}
	var visit func(types.Shard)
	visit = func(s types.Shard) {
		id := aws.ToString(s.ShardId)
		if seen[id] {
			return
		}
		seen[id] = true
		if p, ok := byID[aws.ToString(s.ParentShardId)]; ok {
			visit(p)
		}
		ordered = append(ordered, s)
	}
	for _, s := range shards {
		visit(s)
	}
	return ordered, nil
}

func (f *follower) iterator(ctx context.Context, shard, after string) (*string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: &f.cfg.StreamARN, ShardId: &shard, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if after != "" {
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, &after
	}
	var out *dynamodbstreams.GetShardIteratorOutput
	err := f.retry.do(ctx, "get shard iterator", func(ctx context.Context) error {
		var err error
		out, err = f.cfg.Streams.GetShardIterator(ctx, in)
		return err
	})
	if err != nil {
		return nil, trimmed(err)
	}
	return out.ShardIterator, nil
}

func trimmed(err error) error {
	var t *types.TrimmedDataAccessException
	if errors.As(err, &t) {
		return fmt.Errorf("%w: %v (take a new full dump; run incremental more often than the 24 h retention)", ErrTrimmed, err)
	}
	return err
}

// readShard reads one shard from its checkpoint until it is caught up or
// closed, writing a change volume every VolumeRecords records.
func (f *follower) readShard(ctx context.Context, st *ShardState) error {
	lastRead := st.LastSequence
	iter, err := f.iterator(ctx, st.ShardID, lastRead)
	if err != nil {
		return err
	}
	var buf []Change
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := f.writeVolume(ctx, st, buf); err != nil {
			return err
		}
		buf = buf[:0]
		return nil
	}
	for {
		var out *dynamodbstreams.GetRecordsOutput
		err := f.retry.do(ctx, "get records", func(ctx context.Context) error {
			var err error
			out, err = f.cfg.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
			return err
		})
		var expired *types.ExpiredIteratorException
		if errors.As(err, &expired) {
			// Iterators live 15 minutes; pick up after the last record read.
			f.cfg.Log.Info("shard iterator expired; renewing", "shard", st.ShardID, "after", lastRead)
			if iter, err = f.iterator(ctx, st.ShardID, lastRead); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return trimmed(err)
		}
		for _, r := range out.Records {
			c, err := toChange(st.ShardID, r)
			if err != nil {
				return err
			}
			buf = append(buf, c)
			lastRead = c.Sequence
			f.cfg.Progress.Items.Add(1)
			if int64(len(buf)) >= f.cfg.VolumeRecords {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if out.NextShardIterator == nil {
			if err := flush(); err != nil {
				return err
			}
			st.Done = true
			return f.saveShard(ctx, st)
		}
		if len(out.Records) == 0 {
			if err := flush(); err != nil {
				return err
			}
			return f.saveShard(ctx, st) // caught up; remember the shard exists
		}
		iter = out.NextShardIterator
	}
}

func (f *follower) saveShard(ctx context.Context, st *ShardState) error {
	st.UpdatedAt = f.cfg.Clock.Now().UTC()
	return putJSON(ctx, f.cfg.Store, changeStateKey(f.cfg.DumpID, st.ShardID), st)
}

func (f *follower) writeVolume(ctx context.Context, st *ShardState, changes []Change) error {
	var b bytes.Buffer
	w, err := newVolumeWriter(&b)
	if err != nil {
		return err
	}
	for _, c := range changes {
		line, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := w.addLine(append(line, '\n')); err != nil {
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	idx := len(st.Volumes)
	key := changeVolumeKey(f.cfg.DumpID, st.ShardID, idx)
	if err := f.cfg.Store.Put(ctx, key, bytes.NewReader(b.Bytes())); err != nil {
		return err
	}
	st.Volumes = append(st.Volumes, VolumeInfo{Key: key, Index: idx, Items: w.items, Bytes: w.counter.n, RawBytes: w.raw, SHA256: w.sha256()})
	st.Records += w.items
	st.LastSequence = changes[len(changes)-1].Sequence
	f.res.Records += w.items
	f.res.Volumes++
	f.cfg.Progress.Volumes.Add(1)
	f.cfg.Progress.Bytes.Add(w.raw)
	return f.saveShard(ctx, st)
}

func toChange(shard string, r types.Record) (Change, error) {
	if r.Dynamodb == nil {
		return Change{}, fmt.Errorf("record %s has no dynamodb part", aws.ToString(r.EventID))
	}
	d := r.Dynamodb
	c := Change{Shard: shard, Sequence: aws.ToString(d.SequenceNumber), Event: string(r.EventName)}
	if d.ApproximateCreationDateTime != nil {
		c.Time = d.ApproximateCreationDateTime.Unix()
	}
	var err error
	if c.Keys, err = appendItemJSON(nil, fromStreamItem(d.Keys)); err != nil {
		return c, err
	}
	if c.Event != "REMOVE" {
		if d.NewImage == nil {
			return c, fmt.Errorf("record %s (%s) has no NewImage: set the stream view type to NEW_IMAGE or NEW_AND_OLD_IMAGES", c.Sequence, c.Event)
		}
		if c.NewImage, err = appendItemJSON(nil, fromStreamItem(d.NewImage)); err != nil {
			return c, err
		}
	}
	return c, nil
}

func fromStreamItem(m map[string]types.AttributeValue) Item {
	out := make(Item, len(m))
	for k, v := range m {
		out[k] = fromStreamAV(v)
	}
	return out
}

// fromStreamAV converts the Streams SDK's attribute values to DynamoDB's
// (the two services have separate but identical types).
func fromStreamAV(av types.AttributeValue) ddbtypes.AttributeValue {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return &ddbtypes.AttributeValueMemberS{Value: v.Value}
	case *types.AttributeValueMemberN:
		return &ddbtypes.AttributeValueMemberN{Value: v.Value}
	case *types.AttributeValueMemberB:
		return &ddbtypes.AttributeValueMemberB{Value: v.Value}
	case *types.AttributeValueMemberBOOL:
		return &ddbtypes.AttributeValueMemberBOOL{Value: v.Value}
	case *types.AttributeValueMemberNULL:
		return &ddbtypes.AttributeValueMemberNULL{Value: v.Value}
	case *types.AttributeValueMemberSS:
		return &ddbtypes.AttributeValueMemberSS{Value: v.Value}
	case *types.AttributeValueMemberNS:
		return &ddbtypes.AttributeValueMemberNS{Value: v.Value}
	case *types.AttributeValueMemberBS:
		return &ddbtypes.AttributeValueMemberBS{Value: v.Value}
	case *types.AttributeValueMemberL:
		l := make([]ddbtypes.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = fromStreamAV(e)
		}
		return &ddbtypes.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &ddbtypes.AttributeValueMemberM{Value: fromStreamItem(v.Value)}
	}
	return nil
}
