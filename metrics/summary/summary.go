// Package summary keeps a bounded window of the app's request counters and latency histogram
// (as scraped from its Prometheus endpoint) and reduces it to the numbers kiln-metrics serves
// at GET /v1/summary, on the instance, for people and local tools: request rate, error ratio,
// latency quantiles and process restarts. (The rollout analysis does not read it: it scrapes
// the app itself, with the same maths, package prommath.)
//
// # What the app must expose
//
//   - http_requests_total, a counter, with a "code" label holding the HTTP status code
//     ("status" is accepted too). Requests whose code starts with 5 are errors.
//   - http_request_duration_seconds, a histogram of request latency in seconds.
//
// Both names are configurable. Every label set of a metric is summed (methods, handlers).
// When the counter is missing, the histogram's _count stands in for the request count (and
// no errors can be computed). Counter resets (the app restarted) are handled as Prometheus'
// increase() does: a decrease means the counter started again from zero; a counter that
// appears inside the window counts from zero.
//
// # The /v1/summary document (schema "kiln.metrics.summary/v1")
//
//	{
//	  "schema": "kiln.metrics.summary/v1",
//	  "service": "web", "version": "v42", "instance": "web-v42-1",   // from KILN_* env
//	  "generated_at": "2026-11-21T23:59:00Z",
//	  "window_seconds": 300,          // the window asked for (?window=5m) or configured
//	  "covered_seconds": 290,         // time between the first and last sample used
//	  "samples": 30,                  // scrapes of the app inside the window
//	  "ready": true,                  // at least two samples: rates are meaningful
//	  "source": {"target": "app", "up": true, "last_scrape": "...", "last_error": ""},
//	  "requests": {
//	    "count": 1234,                // increase of http_requests_total over the window
//	    "rate_per_second": 4.25,
//	    "errors": 12,                 // increase of the 5xx series
//	    "error_ratio": 0.0097         // errors / count; null when count is 0
//	  },
//	  "latency_seconds": {            // null when the app has no histogram or no requests
//	    "count": 1234, "p50": 0.012, "p90": 0.08, "p99": 0.31
//	  },
//	  "restarts": {                   // from $KILN_DATA_DIR/status.json (units[].restarts)
//	    "total": 1,                   // sum over units, since the instance booted
//	    "in_window": 0,               // increase of total inside the window
//	    "units": {"app": 1, "kiln-metrics": 0},
//	    "error": ""                   // why status.json could not be read, if it could not
//	  }
//	}
//
// Quantiles are estimated from the increase of each histogram bucket by linear interpolation
// inside the bucket that holds the rank, exactly like PromQL's histogram_quantile(); a rank
// in the +Inf bucket yields the highest finite bucket bound.
package summary

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
	"github.com/kilnhq/kiln/metrics/prommath"
)

// Schema identifies the version of the /v1/summary document.
const Schema = "kiln.metrics.summary/v1"

// Default metric names read from the app.
const (
	DefaultRequestsMetric = prommath.RequestsMetric
	DefaultDurationMetric = prommath.LatencyMetric
)

// Options configures a Window.
type Options struct {
	// Target names the scrape target that feeds the window (reported in source.target).
	Target string
	// RequestsMetric and DurationMetric name the app's counter and histogram.
	RequestsMetric, DurationMetric string
	// Retention is the longest window a caller may ask for; older samples are dropped.
	Retention time.Duration
	// MaxSamples bounds the samples kept whatever the scrape rate (memory bound).
	MaxSamples int
	// StatusFile is kiln boot's status.json; "" means restarts are not reported.
	StatusFile string
	// Service, Version and Instance label the document.
	Service, Version, Instance string
}

// point is one scrape of the app reduced to the few numbers the summary needs.
type point struct {
	at          time.Time
	requests    float64
	errors      float64
	hasRequests bool
	buckets     []prommath.Bucket // sorted by upper bound, summed over label sets
	restarts    float64
	hasRestarts bool
}

// Window is a bounded, concurrency-safe history of app scrapes.
type Window struct {
	opts Options

	mu         sync.Mutex
	points     []point
	lastScrape time.Time
	lastErr    string
	up         bool
}

// New returns an empty window.
func New(o Options) *Window {
	if o.RequestsMetric == "" {
		o.RequestsMetric = DefaultRequestsMetric
	}
	if o.DurationMetric == "" {
		o.DurationMetric = DefaultDurationMetric
	}
	if o.Retention <= 0 {
		o.Retention = 15 * time.Minute
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 1024
	}
	return &Window{opts: o}
}

// Options returns the options the window was created with (defaults filled in).
func (w *Window) Options() Options { return w.opts }

// Observe records one successful scrape of the app taken at at. It is meant as
// collect.Scrape's Raw callback and does not retain fams.
func (w *Window) Observe(at time.Time, fams []collect.Family) {
	p := point{at: at}
	for _, f := range fams {
		switch f.Name {
		case w.opts.RequestsMetric:
			for _, s := range f.Samples {
				if s.Name != f.Name {
					continue
				}
				p.hasRequests = true
				p.requests += s.Value
				if prommath.IsServerError(prommath.StatusCode(s.Label)) {
					p.errors += s.Value
				}
			}
		case w.opts.DurationMetric:
			if f.Type != collect.Histogram {
				continue
			}
			for _, s := range f.Samples {
				if s.Name != f.Name+"_bucket" {
					continue
				}
				le, err := strconv.ParseFloat(s.Label("le"), 64)
				if err != nil {
					continue
				}
				i, found := slices.BinarySearchFunc(p.buckets, le, func(b prommath.Bucket, le float64) int { return cmp.Compare(b.Upper, le) })
				if found {
					p.buckets[i].Count += s.Value
				} else {
					p.buckets = slices.Insert(p.buckets, i, prommath.Bucket{Upper: le, Count: s.Value})
				}
			}
		}
	}
	if n := len(p.buckets); !p.hasRequests && n > 0 && math.IsInf(p.buckets[n-1].Upper, 1) {
		p.requests, p.hasRequests = p.buckets[n-1].Count, true
	}
	if st, err := w.readStatus(); err == nil {
		p.restarts, p.hasRestarts = st.total, true
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.up, w.lastScrape, w.lastErr = true, at, ""
	w.points = append(w.points, p)
	w.trim(at)
}

// ObserveFailure records a failed scrape of the app.
func (w *Window) ObserveFailure(at time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.up, w.lastScrape, w.lastErr = false, at, err.Error()
	w.trim(at)
}

// trim drops samples older than the retention and beyond MaxSamples. The slice is
// compacted in place so its backing array never grows past MaxSamples+1.
func (w *Window) trim(now time.Time) {
	cut := 0
	for cut < len(w.points) && now.Sub(w.points[cut].at) > w.opts.Retention {
		cut++
	}
	if over := len(w.points) - cut - w.opts.MaxSamples; over > 0 {
		cut += over
	}
	if cut > 0 {
		n := copy(w.points, w.points[cut:])
		clear(w.points[n:])
		w.points = w.points[:n]
	}
}

// Document is the /v1/summary response; see the package documentation for its schema.
type Document struct {
	Schema         string    `json:"schema"`          // always Schema
	Service        string    `json:"service"`         // KILN_SERVICE
	Version        string    `json:"version"`         // KILN_VERSION
	Instance       string    `json:"instance"`        // KILN_INSTANCE
	GeneratedAt    time.Time `json:"generated_at"`    // when the document was computed (UTC)
	WindowSeconds  float64   `json:"window_seconds"`  // the window asked for
	CoveredSeconds float64   `json:"covered_seconds"` // between the first and last sample used
	Samples        int       `json:"samples"`         // app scrapes inside the window
	Ready          bool      `json:"ready"`           // at least two samples: rates are meaningful
	Source         Source    `json:"source"`          // the scrape target behind the numbers
	Requests       Requests  `json:"requests"`        // request counters over the window
	Latency        *Latency  `json:"latency_seconds"` // nil without histogram or requests
	Restarts       Restarts  `json:"restarts"`        // unit restarts from status.json
}

// Source describes the scrape target the numbers come from.
type Source struct {
	Target     string     `json:"target"`      // scrape target name
	Up         bool       `json:"up"`          // the last scrape succeeded
	LastScrape *time.Time `json:"last_scrape"` // nil before the first scrape
	LastError  string     `json:"last_error"`  // why the last scrape failed, if it did
}

// Requests holds the request counters over the window.
type Requests struct {
	Count         float64  `json:"count"`           // increase of the requests counter
	RatePerSecond float64  `json:"rate_per_second"` // Count / covered seconds
	Errors        float64  `json:"errors"`          // increase of the 5xx series
	ErrorRatio    *float64 `json:"error_ratio"`     // Errors / Count; nil when Count is 0
}

// Latency holds latency quantiles over the window, in seconds.
type Latency struct {
	Count float64 `json:"count"` // observations in the window
	P50   float64 `json:"p50"`   // median
	P90   float64 `json:"p90"`   // 90th percentile
	P99   float64 `json:"p99"`   // 99th percentile
}

// Restarts reports process restarts of the instance's units.
type Restarts struct {
	Total    float64            `json:"total"`           // sum over units since boot
	InWindow float64            `json:"in_window"`       // increase of Total in the window
	Units    map[string]float64 `json:"units"`           // restarts by unit name
	Error    string             `json:"error,omitempty"` // why status.json could not be read
}

// Summarize reduces the samples taken in (now-window, now] to a Document.
func (w *Window) Summarize(now time.Time, window time.Duration) Document {
	d := Document{
		Schema: Schema, Service: w.opts.Service, Version: w.opts.Version, Instance: w.opts.Instance,
		GeneratedAt: now.UTC(), WindowSeconds: window.Seconds(),
		Restarts: Restarts{Units: map[string]float64{}},
	}
	w.mu.Lock()
	d.Source = Source{Target: w.opts.Target, Up: w.up, LastError: w.lastErr}
	if !w.lastScrape.IsZero() {
		t := w.lastScrape.UTC()
		d.Source.LastScrape = &t
	}
	var pts []point
	for _, p := range w.points {
		if !p.at.After(now) && now.Sub(p.at) <= window {
			pts = append(pts, p)
		}
	}
	w.mu.Unlock()

	if st, err := w.readStatus(); err != nil {
		if w.opts.StatusFile != "" {
			d.Restarts.Error = err.Error()
		}
	} else {
		d.Restarts.Total, d.Restarts.Units = st.total, st.units
	}

	d.Samples = len(pts)
	if len(pts) < 2 {
		return d
	}
	d.Ready = true
	first, last := pts[0], pts[len(pts)-1]
	d.CoveredSeconds = last.at.Sub(first.at).Seconds()

	// The first sample is the baseline; a counter that appears later counts from zero.
	var requests, errs, restarts prommath.Counter
	var hist prommath.HistogramIncrease[struct{}]
	for i, p := range pts {
		if p.hasRequests {
			requests.Feed(p.requests, i == 0)
			errs.Feed(p.errors, i == 0)
		}
		if p.hasRestarts {
			restarts.Feed(p.restarts, i == 0)
		}
		hist.Add(struct{}{}, i == 0, p.buckets)
	}
	d.Requests.Count, d.Requests.Errors = requests.Increase(), errs.Increase()
	d.Restarts.InWindow = restarts.Increase()
	if d.CoveredSeconds > 0 {
		d.Requests.RatePerSecond = d.Requests.Count / d.CoveredSeconds
	}
	if d.Requests.Count > 0 {
		r := d.Requests.Errors / d.Requests.Count
		d.Requests.ErrorRatio = &r
	}
	if bs := hist.Buckets(); prommath.Observations(bs) > 0 {
		d.Latency = &Latency{Count: prommath.Observations(bs),
			P50: prommath.Quantile(0.5, bs), P90: prommath.Quantile(0.9, bs), P99: prommath.Quantile(0.99, bs)}
	}
	return d
}

// status is the part of kiln boot's status.json the summary reads.
type status struct {
	total float64
	units map[string]float64
}

// readStatus reads units[].restarts from the status file. The file is rewritten by kiln
// boot, so it is read whole on each call and never cached.
func (w *Window) readStatus() (status, error) {
	if w.opts.StatusFile == "" {
		return status{}, errors.New("no status file configured")
	}
	b, err := os.ReadFile(w.opts.StatusFile)
	if err != nil {
		return status{}, err
	}
	var doc struct {
		Units []struct {
			Name     string  `json:"name"`
			Restarts float64 `json:"restarts"`
		} `json:"units"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return status{}, errors.New(w.opts.StatusFile + ": " + err.Error())
	}
	st := status{units: make(map[string]float64, len(doc.Units))}
	for i, u := range doc.Units {
		name := u.Name
		if name == "" {
			name = "unit" + strconv.Itoa(i)
		}
		st.units[name] += u.Restarts
		st.total += u.Restarts
	}
	return st, nil
}
