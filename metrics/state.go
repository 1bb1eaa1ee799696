package metrics

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sync"
	"time"

	"github.com/kilnhq/kiln/metrics/cloudwatch"
	"github.com/kilnhq/kiln/metrics/collect"
	"github.com/kilnhq/kiln/metrics/summary"
)

// state is everything derived from one configuration; a reload builds a new one.
type state struct {
	cfg      Config
	live     []collect.Collector // cheap: run on every /metrics request
	periodic []*cached           // probes and scrapes: run every interval, served from cache
	window   *summary.Window     // nil when the summary is off
	pub      *cloudwatch.Publisher
	pubStop  context.CancelFunc
	pubDone  chan struct{}
	emf      *os.File // the publisher's EMF file, closed with it
}

// cached holds the last result of a collector run on the daemon's interval.
type cached struct {
	c     collect.Collector
	onErr func(time.Time, error)

	mu   sync.Mutex
	fams []collect.Family
	err  error
	took float64
	ran  bool
}

func (c *cached) refresh(ctx context.Context, now func() time.Time) {
	start := now()
	fams, err := c.c.Collect(ctx, nil)
	took := now().Sub(start).Seconds()
	if err != nil && c.onErr != nil {
		c.onErr(start, err)
	}
	c.mu.Lock()
	c.fams, c.err, c.took, c.ran = fams, err, took, true
	c.mu.Unlock()
}

func (c *cached) get() ([]collect.Family, error, float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fams, c.err, c.took, c.ran
}

// buildState turns a validated config into collectors, reusing the summary window and the
// publisher of old when their settings did not change (so a reload keeps history and
// buffered datums).
func (d *Daemon) buildState(ctx context.Context, cfg Config, old *state) (*state, error) {
	st := &state{cfg: cfg}
	if cfg.Host.Enabled {
		ho := collect.HostOptions{ProcRoot: cfg.Host.ProcRoot, SysRoot: cfg.Host.SysRoot, Statfs: d.statfs}
		for _, f := range []struct {
			expr string
			dst  *collect.Matcher
		}{{cfg.Host.DiskIgnore, &ho.DiskIgnore}, {cfg.Host.FSTypeIgnore, &ho.FSTypeIgnore}, {cfg.Host.MountIgnore, &ho.MountIgnore}} {
			if f.expr != "" {
				*f.dst = regexp.MustCompile(f.expr) // validated by LoadConfig
			}
		}
		st.live = append(st.live, collect.Host(ho)...)
	}
	if cfg.Textfile.Dir != "" {
		st.live = append(st.live, &collect.Textfile{Dir: cfg.Textfile.Dir, MaxBytes: cfg.Textfile.MaxBytes})
	}

	if cfg.Summary.Target != "" {
		so := summary.Options{
			Target: cfg.Summary.Target, RequestsMetric: cfg.Summary.RequestsMetric, DurationMetric: cfg.Summary.DurationMetric,
			Retention: cfg.Summary.Retention.D(), StatusFile: cfg.Summary.StatusFile,
			MaxSamples: int(cfg.Summary.Retention.D()/time.Second) + 2,
			Service:    d.getenv("KILN_SERVICE"), Version: d.getenv("KILN_VERSION"), Instance: d.getenv("KILN_INSTANCE"),
		}
		if so.MaxSamples > 10_000 {
			so.MaxSamples = 10_000
		}
		if old != nil && old.window != nil && old.cfg.Summary == cfg.Summary {
			st.window = old.window
		} else {
			st.window = summary.New(so)
		}
	}
	for _, e := range cfg.Exec {
		st.periodic = append(st.periodic, &cached{c: &collect.Exec{ProbeName: e.Name, Command: e.Command, Timeout: e.Timeout.D(), Now: d.now}})
	}
	for _, s := range cfg.Scrape {
		sc := &collect.Scrape{Target: s.Name, URL: s.URL, Timeout: s.Timeout.D(), MaxBytes: s.MaxBytes, Client: d.httpClient, Now: d.now}
		c := &cached{c: sc}
		if st.window != nil && s.Name == cfg.Summary.Target {
			sc.Raw = st.window.Observe
			c.onErr = st.window.ObserveFailure
		}
		st.periodic = append(st.periodic, c)
	}

	if cfg.CloudWatch.Enabled {
		if old != nil && old.pub != nil && reflect.DeepEqual(old.cfg.CloudWatch, cfg.CloudWatch) {
			st.pub, st.pubStop, st.pubDone, st.emf = old.pub, old.pubStop, old.pubDone, old.emf
		} else {
			pub, emf, err := d.newPublisher(ctx, cfg)
			if err != nil {
				return nil, err
			}
			st.pub, st.emf = pub, emf
		}
	}
	return st, nil
}

func (d *Daemon) newPublisher(ctx context.Context, cfg Config) (*cloudwatch.Publisher, *os.File, error) {
	cw := cfg.CloudWatch
	client, err := cloudwatch.NewClient(ctx, cloudwatch.ClientOptions{Region: cw.Region, Endpoint: cw.Endpoint, Getenv: d.getenv})
	if err != nil {
		return nil, nil, fmt.Errorf("cloudwatch: %w", err)
	}
	var include []*regexp.Regexp
	for _, re := range cw.Include {
		include = append(include, regexp.MustCompile(re))
	}
	o := cloudwatch.Options{
		Namespace: cw.Namespace, Client: client, BufferSize: cw.BufferSize, Include: include,
		Dimensions: cw.Dimensions, StorageResolution: cw.StorageResolution,
		BackoffMin: cw.BackoffMin.D(), BackoffMax: cw.BackoffMax.D(), Log: d.log,
	}
	var emf *os.File
	if cw.EMFFile != "" {
		if emf, err = os.OpenFile(cw.EMFFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return nil, nil, fmt.Errorf("cloudwatch.emf_file: %w", err)
		}
		o.EMF = emf
	}
	return cloudwatch.New(o), emf, nil
}

// startPublisher runs st's publisher unless it already runs (kept across a reload).
func (st *state) startPublisher(ctx context.Context) {
	if st.pub == nil || st.pubDone != nil {
		return
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.pubStop, st.pubDone = cancel, make(chan struct{})
	go func() {
		defer close(st.pubDone)
		st.pub.Run(pctx)
	}()
}

// stopPublisher stops the send loop and flushes what is buffered within timeout.
func (st *state) stopPublisher(timeout time.Duration) error {
	if st.pub == nil || st.pubDone == nil {
		return nil
	}
	st.pubStop()
	<-st.pubDone
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := st.pub.Flush(ctx)
	if st.emf != nil {
		st.emf.Close()
	}
	return err
}
