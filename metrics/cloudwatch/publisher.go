// Package cloudwatch publishes metrics to Amazon CloudWatch with PutMetricData.
//
// Memory is bounded whatever the sink does: datums wait in a fixed-capacity ring, and when
// the sink stays down the oldest are dropped and counted (kiln_metrics_cloudwatch_dropped_total).
// Requests respect the API limits (1,000 datums, 1 MB, gzip by the SDK above 10 KiB). A
// failed send is retried with exponential backoff and jitter; the SDK's own retries are off
// so that only this loop decides, and new data keeps flowing into the ring meanwhile.
// Datums CloudWatch rejects as invalid are dropped (and counted) instead of blocking the
// queue forever.
package cloudwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/kilnhq/kiln/metrics/collect"
)

// API is the part of the CloudWatch client the publisher uses.
type API interface {
	PutMetricData(ctx context.Context, in *cw.PutMetricDataInput, optFns ...func(*cw.Options)) (*cw.PutMetricDataOutput, error)
}

var _ API = (*cw.Client)(nil)

// Options configures a Publisher.
type Options struct {
	// Namespace of every datum.
	Namespace string
	// Client sends the requests; build it with NewClient.
	Client API
	// BufferSize bounds the datums held while waiting for the sink.
	BufferSize int
	// Include selects the samples to publish by name.
	Include []*regexp.Regexp
	// Dimensions are added to every datum.
	Dimensions map[string]string
	// StorageResolution is 60 or 1.
	StorageResolution int32
	// BackoffMin and BackoffMax bound the wait after a failed send.
	BackoffMin, BackoffMax time.Duration
	// SendTimeout bounds one PutMetricData call (default 30s).
	SendTimeout time.Duration
	// Sleep waits d or until ctx ends; nil means a timer. Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0,1); nil means math/rand.
	Jitter func() float64
	// EMF, when set, receives every published datum as an embedded metric format line.
	EMF io.Writer
	// Log receives send failures (never credentials).
	Log *slog.Logger
	// Now is the clock that ages datums; nil means time.Now.
	Now func() time.Time
}

// maxDatumAge is how old a datum CloudWatch still accepts (two weeks); older ones would
// fail the whole request.
const maxDatumAge = 14 * 24 * time.Hour

// Stats are the publisher's counters, exposed as kiln_metrics_cloudwatch_* metrics.
type Stats struct {
	Buffered  int    // datums waiting
	Capacity  int    // ring capacity
	Dropped   uint64 // oldest datums dropped because the ring was full
	Rejected  uint64 // datums CloudWatch refused as invalid
	Expired   uint64 // datums older than CloudWatch accepts, dropped before sending
	Sent      uint64 // datums accepted by CloudWatch
	Requests  uint64 // successful PutMetricData calls
	Failures  uint64 // failed PutMetricData calls (each retried)
	EMFErrors uint64 // failed EMF writes
}

// Publisher buffers datums and sends them to CloudWatch.
type Publisher struct {
	o    Options
	wake chan struct{}

	mu    sync.Mutex
	ring  *ring
	conv  converter
	stats Stats

	batch []Datum // reused between sends; only touched by the sending goroutine
}

// New returns a publisher; call Run to start sending.
func New(o Options) *Publisher {
	if o.BufferSize < maxDatumsPerReq {
		o.BufferSize = maxDatumsPerReq
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StorageResolution == 0 {
		o.StorageResolution = 60
	}
	var dims []Dim
	for k, v := range o.Dimensions {
		dims = append(dims, Dim{k, v})
	}
	return &Publisher{
		o:    o,
		wake: make(chan struct{}, 1),
		ring: newRing(o.BufferSize),
		conv: converter{include: o.Include, dims: dims, resolution: o.StorageResolution},
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Publish converts the samples of fams chosen by Include into datums stamped at and queues
// them. It never blocks on the sink.
func (p *Publisher) Publish(at time.Time, fams []collect.Family) {
	p.mu.Lock()
	ds := p.conv.datums(at, fams, nil)
	p.mu.Unlock()
	p.Add(ds...)
}

// Add queues datums, dropping the oldest ones when the buffer is full. It never blocks.
func (p *Publisher) Add(ds ...Datum) {
	if len(ds) == 0 {
		return
	}
	if p.o.EMF != nil {
		if err := writeEMF(p.o.EMF, p.o.Namespace, ds); err != nil {
			p.mu.Lock()
			p.stats.EMFErrors++
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	for _, d := range ds {
		p.ring.push(d)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Buffered, s.Capacity, s.Dropped = p.ring.n, len(p.ring.buf), p.ring.dropped
	return s
}

// Run sends queued datums until ctx ends. After a failed send it waits an exponential
// backoff with jitter before trying the same (oldest) datums again.
func (p *Publisher) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		sent, err := p.sendOne(ctx)
		switch {
		case err != nil:
			failures++
			d := p.backoff(failures)
			p.o.Log.Warn("cloudwatch: PutMetricData failed; retrying", "err", err, "attempt", failures, "backoff", d)
			if p.o.Sleep(ctx, d) != nil {
				return
			}
		case sent == 0:
			failures = 0
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			}
		default:
			failures = 0
		}
	}
}

// Flush sends everything queued until the buffer is empty, a send fails, or ctx ends. It
// does not back off: it is the last chance on shutdown.
func (p *Publisher) Flush(ctx context.Context) error {
	for {
		sent, err := p.sendOne(ctx)
		if err != nil {
			return err
		}
		if sent == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// backoff returns the wait after the given number of consecutive failures: exponential
// from BackoffMin, capped at BackoffMax, with "equal jitter" (half fixed, half random) so
// that thousands of instances do not retry in step and a retry is never immediate.
func (p *Publisher) backoff(failures int) time.Duration {
	d := p.o.BackoffMax
	if shift := failures - 1; shift < 40 {
		if e := p.o.BackoffMin << shift; e > 0 && e < d {
			d = e
		}
	}
	return d/2 + time.Duration(p.o.Jitter()*float64(d/2))
}

// sendOne sends one request's worth of the oldest datums and returns how many it took.
func (p *Publisher) sendOne(ctx context.Context) (int, error) {
	size := 0
	p.mu.Lock()
	batch, upTo := p.ring.peek(p.batch, maxDatumsPerReq, func(d Datum) bool {
		size += estimateSize(d)
		return size <= maxRequestBytes
	})
	p.batch = batch
	p.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	in := &cw.PutMetricDataInput{Namespace: aws.String(p.o.Namespace), MetricData: make([]types.MetricDatum, 0, len(batch))}
	oldest := p.o.Now().Add(-maxDatumAge)
	expired := 0
	for _, d := range batch {
		if d.At.Before(oldest) {
			expired++
			continue
		}
		in.MetricData = append(in.MetricData, types.MetricDatum{})
		md := &in.MetricData[len(in.MetricData)-1]
		md.MetricName = aws.String(d.Name)
		md.Value = aws.Float64(d.Value)
		md.Timestamp = aws.Time(d.At)
		md.Unit = types.StandardUnit(d.Unit)
		md.StorageResolution = aws.Int32(d.Resolution)
		md.Dimensions = make([]types.Dimension, len(d.Dims))
		for j, dim := range d.Dims {
			md.Dimensions[j] = types.Dimension{Name: aws.String(dim.Name), Value: aws.String(dim.Value)}
		}
	}
	clear(p.batch) // drop references so committed datums can be collected
	var err error
	if len(in.MetricData) > 0 {
		sctx, cancel := context.WithTimeout(ctx, p.o.SendTimeout)
		_, err = p.o.Client.PutMetricData(sctx, in)
		cancel()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil || permanent(err) {
		p.stats.Expired += uint64(expired)
	}
	sent := len(in.MetricData)
	switch {
	case err == nil:
		p.ring.commit(upTo)
		p.stats.Sent += uint64(sent)
		if sent > 0 {
			p.stats.Requests++
		}
		return len(batch), nil
	case permanent(err):
		p.ring.commit(upTo)
		p.stats.Rejected += uint64(sent)
		p.o.Log.Error("cloudwatch: datums rejected as invalid; dropped", "err", err, "datums", sent)
		return len(batch), nil
	default:
		p.stats.Failures++
		return 0, err
	}
}

// permanent reports errors that retrying cannot fix: CloudWatch found the data invalid.
func permanent(err error) bool {
	var ipv *types.InvalidParameterValueException
	var ipc *types.InvalidParameterCombinationException
	var mrp *types.MissingRequiredParameterException
	if errors.As(err, &ipv) || errors.As(err, &ipc) || errors.As(err, &mrp) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter":
			return true
		}
	}
	return false
}

// Families returns the publisher's counters as metric families.
func (p *Publisher) Families() []collect.Family {
	s := p.Stats()
	g := func(name, help string, typ collect.Type, v float64) collect.Family {
		return collect.Family{Name: name, Help: help, Type: typ, Samples: []collect.Sample{{Name: name, Value: v}}}
	}
	return []collect.Family{
		g("kiln_metrics_cloudwatch_buffered_datums", "Datums waiting to be sent.", collect.Gauge, float64(s.Buffered)),
		g("kiln_metrics_cloudwatch_buffer_capacity_datums", "Capacity of the datum buffer.", collect.Gauge, float64(s.Capacity)),
		g("kiln_metrics_cloudwatch_dropped_datums_total", "Oldest datums dropped because the buffer was full.", collect.Counter, float64(s.Dropped)),
		g("kiln_metrics_cloudwatch_rejected_datums_total", "Datums CloudWatch refused as invalid.", collect.Counter, float64(s.Rejected)),
		g("kiln_metrics_cloudwatch_expired_datums_total", "Datums older than CloudWatch accepts (two weeks), dropped unsent.", collect.Counter, float64(s.Expired)),
		g("kiln_metrics_cloudwatch_sent_datums_total", "Datums accepted by CloudWatch.", collect.Counter, float64(s.Sent)),
		g("kiln_metrics_cloudwatch_requests_total", "Successful PutMetricData requests.", collect.Counter, float64(s.Requests)),
		g("kiln_metrics_cloudwatch_failures_total", "Failed PutMetricData requests (retried).", collect.Counter, float64(s.Failures)),
		g("kiln_metrics_cloudwatch_emf_errors_total", "Failed writes of EMF lines.", collect.Counter, float64(s.EMFErrors)),
	}
}
