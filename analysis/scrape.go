package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/kilnhq/kiln/metrics/prommath"
)

// Scrape is the Source that scrapes every instance's Prometheus text endpoint once a round
// and keeps, per endpoint, the scrapes its template's windows read. Requests are the counter
// RequestsMetric (5xx by its code label, else its status label), latency the histogram
// LatencyMetric, both followed per series and instance with prommath; a gauge is any counter,
// gauge or untyped metric of this round's scrapes.
//
// A round in which an endpoint cannot be scraped (or endpoints fails, or returns none) is an
// error: the analysis cannot tell a healthy fleet from one whose failing instance is silent.
type Scrape struct {
	endpoints EndpointsFunc
	client    *http.Client
	timeout   time.Duration
	needs     needs
	keep      time.Duration            // how far back snapshots are kept
	snaps     map[Endpoint][]*snapshot // per endpoint, oldest first
	order     []Endpoint               // the endpoints of the last round, in the order given
}

var _ Source = (*Scrape)(nil)

// NewScrape returns a Scrape source for t (which says what to keep and how long) over the
// endpoints that endpoints returns: it is asked before every round, so instances may come
// and go. Close it when the analysis is over.
func NewScrape(t Template, endpoints EndpointsFunc) *Scrape {
	s := &Scrape{
		endpoints: endpoints,
		// No proxy from the environment: endpoints are instances on private addresses.
		client:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 2 * t.Interval}},
		timeout: min(t.Interval, MaxScrapeTimeout),
		needs:   needsOf(t),
		keep:    t.Interval,
		snaps:   map[Endpoint][]*snapshot{},
	}
	for _, m := range t.Metrics {
		switch {
		case m.ErrorRatio != nil:
			s.keep = max(s.keep, m.ErrorRatio.Window)
		case m.Latency != nil:
			s.keep = max(s.keep, m.Latency.Window)
		}
	}
	return s
}

// Close releases the source's idle connections.
func (s *Scrape) Close() { s.client.CloseIdleConnections() }

// Collect scrapes every endpoint once, keeps the snapshots, and returns an error naming the
// endpoints that could not be scraped (nil when all were).
func (s *Scrape) Collect(ctx context.Context, now time.Time) error {
	if s.endpoints == nil {
		return errors.New("no endpoints function")
	}
	eps, err := s.endpoints(ctx)
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	if len(eps) == 0 {
		return errors.New("no endpoints to scrape")
	}
	results := s.scrapeAll(ctx, eps, now)
	var errs []error
	current := map[Endpoint]bool{}
	for i, ep := range eps {
		current[ep] = true
		if results[i].err != nil {
			errs = append(errs, results[i].err)
			continue
		}
		s.snaps[ep] = s.trim(append(s.snaps[ep], results[i].snap), now)
	}
	// Instances that left take their history with them.
	for ep := range s.snaps {
		if !current[ep] {
			delete(s.snaps, ep)
		}
	}
	s.order = eps
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d endpoints failed: %w", len(errs), len(eps), errors.Join(errs...))
	}
	return nil
}

// trim drops the snapshots no window will read (those before the baseline of the longest
// window) and bounds their number.
func (s *Scrape) trim(snaps []*snapshot, now time.Time) []*snapshot {
	i := max(baseline(snaps, now.Add(-s.keep)), len(snaps)-MaxWindowScrapes)
	if i > 0 {
		snaps = slices.Delete(snaps, 0, i)
	}
	return snaps
}

// all returns every current endpoint's snapshots.
func (s *Scrape) all() [][]*snapshot {
	out := make([][]*snapshot, 0, len(s.order))
	for _, ep := range s.order {
		if snaps, ok := s.snaps[ep]; ok {
			out = append(out, snaps)
		}
	}
	return out
}

// Requests implements Source: the increase of RequestsMetric over every endpoint's window.
func (s *Scrape) Requests(_ context.Context, now time.Time, window time.Duration) (RequestCount, error) {
	errs, total := requestIncrease(windows(s.all(), now, window))
	return RequestCount{Total: total, Errors: errs}, nil
}

// Latency implements Source: the quantile of the increase of LatencyMetric's buckets over
// every endpoint's window, as histogram_quantile(q, sum by (le) (increase(...))) does.
func (s *Scrape) Latency(_ context.Context, now time.Time, window time.Duration, q float64) (LatencyQuantile, error) {
	bs := bucketIncrease(windows(s.all(), now, window))
	return LatencyQuantile{Seconds: prommath.Quantile(q, bs), Requests: prommath.Observations(bs)}, nil
}

// Gauge implements Source: the values of name's series in this round's scrapes.
func (s *Scrape) Gauge(_ context.Context, now time.Time, name string) (GaugeReading, error) {
	var r GaugeReading
	for _, snaps := range s.all() {
		if len(snaps) == 0 || !snaps[len(snaps)-1].at.Equal(now) {
			continue // not scraped this round
		}
		if vals, ok := snaps[len(snaps)-1].gauges[name]; ok {
			r.Values = append(r.Values, vals...)
			r.Instances++
		}
	}
	return r, nil
}

// requestIncrease returns the increase of 5xx and of all requests across the windows (one
// per endpoint, each series followed on its own).
func requestIncrease(windows [][]*snapshot) (errs, total float64) {
	var counters prommath.Counters[string] // by label set, reused window after window
	for _, w := range windows {
		if len(w) < 2 {
			continue
		}
		counters.Reset()
		for i, snap := range w {
			for labels, r := range snap.requests {
				counters.Add(labels, i == 0, r.value)
			}
		}
		for labels, inc := range counters.All() {
			total += inc
			if isFiveXX(w, labels) {
				errs += inc
			}
		}
	}
	return errs, total
}

// isFiveXX reports whether the first snapshot of w that has series labels marks it 5xx.
func isFiveXX(w []*snapshot, labels string) bool {
	for _, s := range w {
		if r, ok := s.requests[labels]; ok {
			return r.is5xx
		}
	}
	return false
}

// bucketIncrease returns the increase of every latency bucket across the windows, summed
// over series and endpoints by upper bound, sorted by upper bound.
func bucketIncrease(windows [][]*snapshot) []prommath.Bucket {
	var h prommath.HistogramIncrease[string] // by label set without le
	for _, w := range windows {
		if len(w) < 2 {
			continue
		}
		for i, snap := range w {
			for labels, bs := range snap.hists {
				h.Add(labels, i == 0, bs)
			}
		}
		h.NextWindow()
	}
	return h.Buckets()
}

// windows returns, for every endpoint's snapshots (oldest first), those of the window ending
// at now: every snapshot after now-window, and as the baseline the newest one at or before
// now-window (or the oldest kept). The baseline keeps a missed scrape from emptying a window
// that spans one interval, and with a real clock (scrapes never exactly one interval apart)
// it makes the increase cover the whole window rather than one interval less.
func windows(all [][]*snapshot, now time.Time, window time.Duration) [][]*snapshot {
	out := make([][]*snapshot, 0, len(all))
	for _, snaps := range all {
		out = append(out, snaps[baseline(snaps, now.Add(-window)):])
	}
	return out
}

// baseline returns the index of the newest snapshot at or before from, or 0.
func baseline(snaps []*snapshot, from time.Time) int {
	i, _ := slices.BinarySearchFunc(snaps, from, func(s *snapshot, t time.Time) int {
		if s.at.After(t) {
			return 1
		}
		return -1
	})
	return max(i-1, 0)
}
