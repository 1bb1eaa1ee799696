package analysis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
	"github.com/kilnhq/kiln/metrics/prommath"
)

// maxParallelScrapes bounds the scrapes in flight at once.
const maxParallelScrapes = 16

// snapshot is what Scrape keeps of one successful scrape of one endpoint: only the series the
// template's metrics read, keyed by their sorted label set.
type snapshot struct {
	at       time.Time
	requests map[string]request           // RequestsMetric series
	hists    map[string][]prommath.Bucket // LatencyMetric series (label set without le), by upper bound, the last +Inf
	gauges   map[string][]float64         // metric name -> the value of each of its series
}

type request struct {
	value float64
	is5xx bool // the status code label is 5xx
}

// needs says which families a template reads, so snapshots keep nothing else.
type needs struct {
	requests, latency bool
	gauges            map[string]bool
}

func needsOf(t Template) needs {
	n := needs{gauges: map[string]bool{}}
	for _, m := range t.Metrics {
		switch {
		case m.ErrorRatio != nil:
			n.requests = true
		case m.Latency != nil:
			n.latency = true
		case m.Gauge != nil:
			n.gauges[m.Gauge.Name] = true
		}
	}
	return n
}

// scrapeResult is the outcome of scraping one endpoint.
type scrapeResult struct {
	snap *snapshot
	err  error
}

// scrapeAll scrapes every endpoint in parallel (at most maxParallelScrapes at once) and
// returns when all are done.
func (s *Scrape) scrapeAll(ctx context.Context, eps []Endpoint, at time.Time) []scrapeResult {
	out := make([]scrapeResult, len(eps))
	sem := make(chan struct{}, maxParallelScrapes)
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			snap, err := s.scrape(ctx, ep, at)
			out[i] = scrapeResult{snap: snap, err: err}
		}()
	}
	wg.Wait()
	return out
}

func (s *Scrape) scrape(ctx context.Context, ep Endpoint, at time.Time) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fams, err := collect.Fetch(ctx, s.client, ep.URL, MaxBodyBytes)
	if err != nil {
		return nil, fmt.Errorf("scrape %s (%s): %w", ep.Instance, collect.Redacted(ep.URL), err)
	}
	return s.needs.extract(fams, at), nil
}

// extract keeps of fams what the template reads.
func (n needs) extract(fams []collect.Family, at time.Time) *snapshot {
	snap := &snapshot{at: at}
	for _, f := range fams {
		if f.Name == RequestsMetric && n.requests && (f.Type == collect.Counter || f.Type == collect.Untyped) {
			snap.requests = make(map[string]request, len(f.Samples))
			for _, s := range f.Samples {
				snap.requests[labelKey(s.Labels, "")] = request{value: s.Value, is5xx: prommath.IsServerError(prommath.StatusCode(s.Label))}
			}
		}
		if f.Name == LatencyMetric && n.latency && f.Type == collect.Histogram {
			snap.hists = histograms(f)
		}
		if n.gauges[f.Name] && (f.Type == collect.Counter || f.Type == collect.Gauge || f.Type == collect.Untyped) {
			// Histograms and summaries have no single value.
			if snap.gauges == nil {
				snap.gauges = map[string][]float64{}
			}
			vals := make([]float64, 0, len(f.Samples))
			for _, s := range f.Samples {
				vals = append(vals, s.Value)
			}
			snap.gauges[f.Name] = vals
		}
	}
	return snap
}

// histograms returns the buckets of every series of a histogram family, by label set without
// le. The text format's _count is the +Inf bucket: it stands in when the bucket line is
// absent.
func histograms(f collect.Family) map[string][]prommath.Bucket {
	type series struct {
		buckets []prommath.Bucket
		count   float64
	}
	by := map[string]*series{}
	get := func(key string) *series {
		s := by[key]
		if s == nil {
			s = &series{}
			by[key] = s
		}
		return s
	}
	for _, smp := range f.Samples {
		switch smp.Name {
		case f.Name + "_bucket":
			le, err := strconv.ParseFloat(smp.Label("le"), 64)
			if err != nil || math.IsNaN(le) {
				continue
			}
			s := get(labelKey(smp.Labels, "le"))
			s.buckets = append(s.buckets, prommath.Bucket{Upper: le, Count: smp.Value})
		case f.Name + "_count":
			get(labelKey(smp.Labels, "")).count = smp.Value
		}
	}
	out := make(map[string][]prommath.Bucket, len(by))
	for key, s := range by {
		prommath.SortBuckets(s.buckets)
		if n := len(s.buckets); n == 0 || !math.IsInf(s.buckets[n-1].Upper, 1) {
			s.buckets = append(s.buckets, prommath.Bucket{Upper: math.Inf(1), Count: s.count})
		}
		out[key] = s.buckets
	}
	return out
}

// labelKey is a canonical text of a label set (sorted by name), leaving out the label skip.
func labelKey(ls []collect.Label, skip string) string {
	if len(ls) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(ls))
	for _, l := range ls {
		if l.Name != skip {
			pairs = append(pairs, l.Name+"\x00"+l.Value)
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\x01")
}
