package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/backup/store"
	"github.com/kilnhq/kiln/internal/clock"
)

// DumpConfig configures Dump.
type DumpConfig struct {
	Table  string
	DumpID string
	Store  store.Store
	DB     *dynamodb.Client
	// Share is this machine's part of the segments (default: all of 1..N).
	Share SegmentShare
	// Parallel is how many segments are scanned at once (default 4).
	Parallel int
	// VolumeBytes and VolumeItems cut volumes by uncompressed size and/or
	// item count; 0 means no limit of that kind (one of them must be set).
	VolumeBytes, VolumeItems int64
	// LocalVolumes is K: at most K volume files exist in SpoolDir at once;
	// 0 streams volumes straight into uploads.
	LocalVolumes int
	SpoolDir     string
	// ReadBudget is the read capacity target in RCU/s (0: unthrottled).
	ReadBudget float64
	// PageLimit is Scan's Limit (0: DynamoDB's 1 MB pages).
	PageLimit      int32
	ConsistentRead bool
	Clock          clock.Clock
	Log            *slog.Logger
	Progress       *Progress
}

// DumpResult says what Dump did.
type DumpResult struct {
	// Manifest is set when this run (or an earlier one) completed the dump.
	Manifest *Manifest
	// MissingSegments lists segments other machines have not finished yet.
	MissingSegments []int
	// MaxLocalVolumes is the most volume files that existed in SpoolDir at once.
	MaxLocalVolumes int64
	Capacity        float64
}

func (c *DumpConfig) defaults() error {
	if c.Table == "" {
		return errors.New("dump: --table is required")
	}
	if c.DumpID == "" || strings.ContainsAny(c.DumpID, "/\\ ") || strings.Contains(c.DumpID, "..") {
		return fmt.Errorf("dump: --id %q must be a non-empty name without slashes or spaces", c.DumpID)
	}
	if c.Store == nil || c.DB == nil {
		return errors.New("dump: store and DynamoDB client are required")
	}
	if c.Share.Total == 0 {
		c.Share = SegmentShare{0, 0, 1}
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.VolumeBytes <= 0 && c.VolumeItems <= 0 {
		c.VolumeBytes = 64 << 20
	}
	if c.LocalVolumes < 0 {
		return fmt.Errorf("dump: --local-volumes %d must be >= 0", c.LocalVolumes)
	}
	if c.LocalVolumes > 0 && c.SpoolDir == "" {
		return errors.New("dump: --spool-dir is required when --local-volumes > 0")
	}
	c.Clock = clock.Or(c.Clock)
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Progress == nil {
		c.Progress = newProgress("dump")
	}
	return nil
}

type dumper struct {
	cfg    DumpConfig
	plan   Plan
	keys   []string
	bucket *Bucket
	retry  *retrier
	slots  chan struct{}
	local  atomic.Int64
	maxLoc atomic.Int64
}

// Dump scans cfg.Share of the table into volumes in the store, resuming
// from the segment checkpoints a previous run left. When every segment of
// the dump is done (on this machine or others) it writes the manifest.
func Dump(ctx context.Context, cfg DumpConfig) (*DumpResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	d := &dumper{cfg: cfg}
	d.bucket = NewBucket(cfg.ReadBudget, 0, cfg.Clock)
	cfg.Progress.Capacity = d.bucket.Spent
	d.retry = &retrier{backoff: Backoff{Base: 50 * time.Millisecond, Max: 10 * time.Second}, maxAttempts: 8, clock: cfg.Clock, throttles: &cfg.Progress.Throttles, log: cfg.Log}
	if m, err := LoadManifest(ctx, cfg.Store, cfg.DumpID); err == nil {
		cfg.Log.Info("dump already complete", "dump", cfg.DumpID, "items", m.Items)
		return &DumpResult{Manifest: m}, nil
	} else if !errors.Is(err, ErrIncomplete) {
		return nil, err
	}
	if err := d.loadPlan(ctx); err != nil {
		return nil, err
	}
	d.keys = d.plan.Schema.keyNames()
	est := d.plan.Schema.ItemCountEstimate * int64(cfg.Share.Last-cfg.Share.First+1) / int64(cfg.Share.Total)
	cfg.Progress.EstimatedItems.Store(est)
	if cfg.LocalVolumes > 0 {
		d.slots = make(chan struct{}, cfg.LocalVolumes)
		if err := d.cleanSpool(); err != nil {
			return nil, err
		}
	}
	cfg.Log.Info("dump start", "table", cfg.Table, "dump", cfg.DumpID, "store", cfg.Store.String(), "segments", cfg.Share.String(), "parallel", cfg.Parallel, "read_budget", cfg.ReadBudget, "local_volumes", cfg.LocalVolumes)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Parallel)
	for s := cfg.Share.First; s <= cfg.Share.Last; s++ {
		g.Go(func() error {
			if err := d.segment(gctx, s); err != nil {
				return fmt.Errorf("segment %d: %w", s, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := &DumpResult{MaxLocalVolumes: d.maxLoc.Load(), Capacity: d.bucket.Spent()}
	m, missing, err := Finalize(ctx, cfg.Store, cfg.DumpID, cfg.Clock)
	if err != nil && !errors.Is(err, ErrIncomplete) {
		return nil, err
	}
	res.Manifest, res.MissingSegments = m, missing
	cfg.Progress.Log(cfg.Log)
	if m != nil {
		cfg.Log.Info("dump complete", "dump", cfg.DumpID, "items", m.Items, "volumes", m.Volumes, "bytes", m.Bytes)
	} else {
		cfg.Log.Info("dump share complete; waiting for other machines", "dump", cfg.DumpID, "missing_segments", len(missing))
	}
	return res, nil
}

func (d *dumper) loadPlan(ctx context.Context) error {
	c := d.cfg
	found, err := getJSON(ctx, c.Store, planKey(c.DumpID), &d.plan)
	if err != nil {
		return err
	}
	if found {
		p := d.plan
		switch {
		case p.Table != c.Table:
			return fmt.Errorf("dump %q is of table %q, not %q", c.DumpID, p.Table, c.Table)
		case p.TotalSegments != c.Share.Total:
			return fmt.Errorf("dump %q has %d segments; --segments says %d", c.DumpID, p.TotalSegments, c.Share.Total)
		case p.VolumeBytes != c.VolumeBytes || p.VolumeItems != c.VolumeItems:
			return fmt.Errorf("dump %q cuts volumes at %d bytes / %d items; this run asks for %d / %d", c.DumpID, p.VolumeBytes, p.VolumeItems, c.VolumeBytes, c.VolumeItems)
		}
		return nil
	}
	schema, err := describeSchema(ctx, c.DB, d.retry, c.Table)
	if err != nil {
		return err
	}
	d.plan = Plan{FormatVersion: FormatVersion, DumpID: c.DumpID, Table: c.Table, TotalSegments: c.Share.Total,
		VolumeBytes: c.VolumeBytes, VolumeItems: c.VolumeItems, Schema: schema, StartTime: c.Clock.Now().UTC()}
	return putJSON(ctx, c.Store, planKey(c.DumpID), d.plan)
}

// spoolPrefix names this dump's local volume files.
func (d *dumper) spoolPrefix() string { return "vol-" + d.cfg.DumpID + "-" }

// cleanSpool removes volume files a killed run left: they were never
// checkpointed, so the resumed scan writes them again.
func (d *dumper) cleanSpool() error {
	if err := os.MkdirAll(d.cfg.SpoolDir, 0o755); err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(d.cfg.SpoolDir, d.spoolPrefix()+"*"))
	for _, f := range old {
		os.Remove(f)
	}
	return nil
}

func (d *dumper) loadSegment(ctx context.Context, seg int) (*SegmentState, error) {
	st := &SegmentState{Segment: seg, TotalSegments: d.plan.TotalSegments}
	if _, err := getJSON(ctx, d.cfg.Store, segmentKey(d.cfg.DumpID, seg), st); err != nil {
		return nil, err
	}
	return st, nil
}

func (d *dumper) saveSegment(ctx context.Context, st *SegmentState) error {
	st.UpdatedAt = d.cfg.Clock.Now().UTC()
	return putJSON(ctx, d.cfg.Store, segmentKey(d.cfg.DumpID, st.Segment), st)
}

// adopt checkpoints volumes a killed run uploaded after its last
// checkpoint, so they are not scanned and uploaded again.
func (d *dumper) adopt(ctx context.Context, st *SegmentState) error {
	for {
		idx := len(st.Volumes)
		key := volumeKey(d.cfg.DumpID, st.Segment, idx)
		rc, err := d.cfg.Store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var last Item
		var raw int64
		n, sum, size, err := readVolume(rc, func(it Item) error {
			last = it
			b, err := appendItemJSON(nil, it)
			raw += int64(len(b) + len(`{"Item":}`+"\n"))
			return err
		})
		rc.Close()
		if err != nil {
			return fmt.Errorf("adopt %s: %w", key, err)
		}
		if n == 0 {
			return fmt.Errorf("adopt %s: empty volume", key)
		}
		lk, err := d.lastKeyJSON(last)
		if err != nil {
			return err
		}
		vi := VolumeInfo{Key: key, Segment: st.Segment, Index: idx, Items: n, Bytes: size, RawBytes: raw, SHA256: sum, LastKey: lk}
		st.Volumes = append(st.Volumes, vi)
		st.Items += n
		if err := d.saveSegment(ctx, st); err != nil {
			return err
		}
		d.cfg.Log.Info("adopted volume uploaded before a restart", "volume", key, "items", n)
	}
}

func (d *dumper) lastKeyJSON(item Item) (json.RawMessage, error) {
	k, err := keyOf(item, d.keys)
	if err != nil {
		return nil, err
	}
	b, err := appendItemJSON(nil, k)
	return b, err
}

// pending is a volume being written: into a spool file, or (K=0) into a
// pipe an upload is reading.
type pending struct {
	index  int
	key    string
	w      *volumeWriter
	file   *os.File       // spool mode
	pipe   *io.PipeWriter // stream mode
	upload chan error     // stream mode: result of the Put
	last   Item
}

func (d *dumper) open(ctx context.Context, seg, idx int) (*pending, error) {
	p := &pending{index: idx, key: volumeKey(d.cfg.DumpID, seg, idx)}
	var w io.Writer
	if d.slots != nil {
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		name := filepath.Join(d.cfg.SpoolDir, fmt.Sprintf("%sseg%05d-%06d.json.zst", d.spoolPrefix(), seg, idx))
		f, err := os.Create(name)
		if err != nil {
			<-d.slots
			return nil, fmt.Errorf("spool volume: %w", err)
		}
		n := d.local.Add(1)
		for m := d.maxLoc.Load(); n > m && !d.maxLoc.CompareAndSwap(m, n); m = d.maxLoc.Load() {
		}
		p.file, w = f, f
	} else {
		pr, pw := io.Pipe()
		p.pipe, p.upload, w = pw, make(chan error, 1), pw
		go func() {
			err := d.cfg.Store.Put(ctx, p.key, pr)
			pr.CloseWithError(errors.Join(err, errors.New("upload ended")))
			p.upload <- err
		}()
	}
	vw, err := newVolumeWriter(w)
	if err != nil {
		d.discard(p, err)
		return nil, err
	}
	p.w = vw
	d.cfg.Progress.VolumesInFlight.Add(1)
	return p, nil
}

// discard drops an unfinished volume (error or cancel).
func (d *dumper) discard(p *pending, cause error) {
	if p.file != nil {
		p.file.Close()
		os.Remove(p.file.Name())
		d.local.Add(-1)
		<-d.slots
	}
	if p.pipe != nil {
		p.pipe.CloseWithError(cause)
		<-p.upload
	}
	if p.w != nil {
		d.cfg.Progress.VolumesInFlight.Add(-1)
	}
}

// commit finishes the volume's upload and returns its description.
func (d *dumper) commit(ctx context.Context, seg int, p *pending) (VolumeInfo, error) {
	defer d.cfg.Progress.VolumesInFlight.Add(-1)
	if err := p.w.close(); err != nil {
		p.w = nil // in-flight is decremented by the defer
		d.discard(p, err)
		return VolumeInfo{}, err
	}
	if p.pipe != nil {
		p.pipe.Close()
		if err := <-p.upload; err != nil {
			return VolumeInfo{}, err
		}
	} else {
		err := func() error {
			defer func() {
				p.file.Close()
				os.Remove(p.file.Name())
				d.local.Add(-1)
				<-d.slots
			}()
			if _, err := p.file.Seek(0, io.SeekStart); err != nil {
				return err
			}
			return d.cfg.Store.Put(ctx, p.key, p.file)
		}()
		if err != nil {
			return VolumeInfo{}, err
		}
	}
	lk, err := d.lastKeyJSON(p.last)
	if err != nil {
		return VolumeInfo{}, err
	}
	d.cfg.Progress.Volumes.Add(1)
	return VolumeInfo{Key: p.key, Segment: seg, Index: p.index, Items: p.w.items, Bytes: p.w.counter.n,
		RawBytes: p.w.raw, SHA256: p.w.sha256(), LastKey: lk}, nil
}

func (d *dumper) full(p *pending) bool {
	c := d.cfg
	return (c.VolumeItems > 0 && p.w.items >= c.VolumeItems) || (c.VolumeBytes > 0 && p.w.raw >= c.VolumeBytes)
}

// segment scans one segment from its checkpoint to its end. Volumes are
// written while earlier ones upload; an uploader goroutine commits them in
// order and checkpoints after each, so a checkpoint never runs ahead of the
// volumes in the store.
func (d *dumper) segment(ctx context.Context, seg int) error {
	st, err := d.loadSegment(ctx, seg)
	if err != nil {
		return err
	}
	if st.Done {
		return nil
	}
	if err := d.adopt(ctx, st); err != nil {
		return err
	}
	var startKey Item
	if n := len(st.Volumes); n > 0 {
		if startKey, err = decodeItemJSON(st.Volumes[n-1].LastKey); err != nil {
			return fmt.Errorf("checkpoint lastKey: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	// The scanner stops as soon as an upload fails, not at the segment's end.
	sctx, stopScan := context.WithCancelCause(gctx)
	defer stopScan(nil)
	done := make(chan *pending, 1)
	next := len(st.Volumes)
	g.Go(func() error {
		fail := func(err error) error {
			stopScan(err)
			for p := range done {
				d.discard(p, err)
			}
			return err
		}
		for p := range done {
			vi, err := d.commit(gctx, seg, p)
			if err != nil {
				return fail(fmt.Errorf("upload %s: %w", p.key, err))
			}
			st.Volumes = append(st.Volumes, vi)
			st.Items += vi.Items
			if err := d.saveSegment(gctx, st); err != nil {
				return fail(err)
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(done)
		err := d.scan(sctx, seg, next, startKey, done)
		if c := context.Cause(sctx); err != nil && c != nil && errors.Is(err, context.Canceled) {
			return c // report why the scan was stopped
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	st.Done = true
	return d.saveSegment(ctx, st)
}

func (d *dumper) scan(ctx context.Context, seg, nextIdx int, startKey Item, done chan<- *pending) error {
	c := d.cfg
	var cur *pending
	fail := func(err error) error {
		if cur != nil {
			d.discard(cur, err)
		}
		return err
	}
	estimate := 1.0
	for {
		in := &dynamodb.ScanInput{
			TableName:              &c.Table,
			Segment:                aws.Int32(int32(seg)),
			TotalSegments:          aws.Int32(int32(d.plan.TotalSegments)),
			ExclusiveStartKey:      startKey,
			ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
			ConsistentRead:         aws.Bool(c.ConsistentRead),
		}
		if c.PageLimit > 0 {
			in.Limit = aws.Int32(c.PageLimit)
		}
		if err := d.bucket.Reserve(ctx, estimate); err != nil {
			return fail(err)
		}
		var out *dynamodb.ScanOutput
		err := d.retry.do(ctx, "scan", func(ctx context.Context) error {
			var err error
			out, err = c.DB.Scan(ctx, in)
			return err
		})
		if err != nil {
			d.bucket.Settle(estimate, 0)
			return fail(err)
		}
		used := 0.0
		if out.ConsumedCapacity != nil {
			used = aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
		}
		d.bucket.Settle(estimate, used)
		estimate = max(used, 0.5)
		for _, item := range out.Items {
			if cur == nil {
				if cur, err = d.open(ctx, seg, nextIdx); err != nil {
					return err
				}
				nextIdx++
			}
			before := cur.w.raw
			if err := cur.w.add(item); err != nil {
				return fail(fmt.Errorf("encode item: %w", err))
			}
			cur.last = item
			c.Progress.Items.Add(1)
			c.Progress.Bytes.Add(cur.w.raw - before)
			if d.full(cur) {
				select {
				case done <- cur:
					cur = nil
				case <-ctx.Done():
					return fail(ctx.Err())
				}
			}
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		startKey = out.LastEvaluatedKey
	}
	if cur != nil {
		select {
		case done <- cur:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	return nil
}

// Finalize writes the manifest of dump id when all its segments are done,
// and returns it; otherwise it returns the missing segments and ErrIncomplete.
func Finalize(ctx context.Context, s store.Store, id string, clk clock.Clock) (*Manifest, []int, error) {
	clk = clock.Or(clk)
	if m, err := LoadManifest(ctx, s, id); err == nil {
		return m, nil, nil
	}
	var plan Plan
	found, err := getJSON(ctx, s, planKey(id), &plan)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, fmt.Errorf("dump %q not found in %s (no plan.json)", id, s)
	}
	m := &Manifest{FormatVersion: FormatVersion, DumpID: id, Table: plan.Table, Schema: plan.Schema,
		TotalSegments: plan.TotalSegments, StartTime: plan.StartTime}
	var missing []int
	for seg := 0; seg < plan.TotalSegments; seg++ {
		var st SegmentState
		found, err := getJSON(ctx, s, segmentKey(id, seg), &st)
		if err != nil {
			return nil, nil, err
		}
		if !found || !st.Done {
			missing = append(missing, seg)
			continue
		}
		m.Segments = append(m.Segments, st)
		m.Items += st.Items
		m.Volumes += len(st.Volumes)
		for _, v := range st.Volumes {
			m.Bytes += v.Bytes
			m.RawBytes += v.RawBytes
		}
	}
	if len(missing) > 0 {
		return nil, missing, fmt.Errorf("dump %q: %d of %d segments not done (first missing: %d): %w", id, len(missing), plan.TotalSegments, missing[0], ErrIncomplete)
	}
	m.EndTime = clk.Now().UTC()
	if err := putJSON(ctx, s, manifestKey(id), m); err != nil {
		return nil, nil, err
	}
	return m, nil, nil
}
