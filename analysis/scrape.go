package analysis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxParallelScrapes bounds the scrapes in flight at once.
const maxParallelScrapes = 16

// snapshot is what Run keeps of one successful scrape of one endpoint: only the series the
// template's metrics read, keyed by their sorted label set.
type snapshot struct {
	at       time.Time
	requests map[string]request   // RequestsMetric series
	hists    map[string]histogram // LatencyMetric series (label set without le)
	gauges   map[string][]float64 // metric name -> the value of each of its series
}

type request struct {
	value float64
	is5xx bool // the code label is 5xx
}

// histogram is one histogram series: cumulative counts by increasing upper bound, the last
// bound +Inf.
type histogram struct {
	bounds []float64
	counts []float64
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

// scraper fetches and parses endpoints.
type scraper struct {
	client  *http.Client
	timeout time.Duration
	needs   needs
}

func newScraper(t Template) *scraper {
	return &scraper{
		// No proxy from the environment: endpoints are instances on private addresses.
		client:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 2 * t.Interval}},
		timeout: min(t.Interval, MaxScrapeTimeout),
		needs:   needsOf(t),
	}
}

func (s *scraper) close() { s.client.CloseIdleConnections() }

// scrapeResult is the outcome of scraping one endpoint.
type scrapeResult struct {
	snap *snapshot
	err  error
}

// scrapeAll scrapes every endpoint in parallel (at most maxParallelScrapes at once) and
// returns when all are done.
func (s *scraper) scrapeAll(ctx context.Context, eps []Endpoint, at time.Time) []scrapeResult {
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

// redacted returns u with any password replaced, for messages.
func redacted(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparsable URL)"
}

func (s *scraper) scrape(ctx context.Context, ep Endpoint, at time.Time) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.URL, nil)
	if err != nil {
		// err quotes the URL, password included: name it redacted instead.
		return nil, fmt.Errorf("scrape %s: invalid URL %s", ep.Instance, redacted(ep.URL))
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", ep.Instance, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("scrape %s (%s): HTTP status %s", ep.Instance, redacted(ep.URL), resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: MaxBodyBytes}
	snap, err := s.parse(body, at)
	if body.exceeded {
		return nil, fmt.Errorf("scrape %s (%s): response larger than %d bytes", ep.Instance, redacted(ep.URL), MaxBodyBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("scrape %s (%s): %w", ep.Instance, redacted(ep.URL), err)
	}
	return snap, nil
}

// limitedReader is io.LimitReader that remembers whether the limit was hit, so an oversized
// body is reported as such rather than as a truncated-text parse error.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.exceeded = true
			return 0, errors.New("body too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// parse reads Prometheus text exposition and keeps the series s needs.
func (s *scraper) parse(r io.Reader, at time.Time) (*snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse Prometheus text: %w", err)
	}
	return s.needs.extract(fams, at), nil
}

func (n needs) extract(fams map[string]*dto.MetricFamily, at time.Time) *snapshot {
	snap := &snapshot{at: at}
	if f := fams[RequestsMetric]; n.requests && f != nil && (f.GetType() == dto.MetricType_COUNTER || f.GetType() == dto.MetricType_UNTYPED) {
		snap.requests = make(map[string]request, len(f.Metric))
		for _, m := range f.Metric {
			code := ""
			for _, lp := range m.Label {
				if lp.GetName() == CodeLabel {
					code = lp.GetValue()
				}
			}
			snap.requests[labelKey(m.Label, "")] = request{value: sampleValue(f.GetType(), m), is5xx: len(code) == 3 && code[0] == '5'}
		}
	}
	if f := fams[LatencyMetric]; n.latency && f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
		snap.hists = make(map[string]histogram, len(f.Metric))
		for _, m := range f.Metric {
			if h := toHistogram(m.GetHistogram()); len(h.bounds) > 0 {
				snap.hists[labelKey(m.Label, "le")] = h
			}
		}
	}
	for name := range n.gauges {
		f := fams[name]
		if f == nil {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		default:
			continue // histograms and summaries have no single value
		}
		if snap.gauges == nil {
			snap.gauges = map[string][]float64{}
		}
		vals := make([]float64, 0, len(f.Metric))
		for _, m := range f.Metric {
			vals = append(vals, sampleValue(f.GetType(), m))
		}
		snap.gauges[name] = vals
	}
	return snap
}

func sampleValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

func toHistogram(h *dto.Histogram) histogram {
	var out histogram
	if h == nil {
		return out
	}
	bs := slices.Clone(h.GetBucket())
	slices.SortFunc(bs, func(a, b *dto.Bucket) int { return cmpFloat(a.GetUpperBound(), b.GetUpperBound()) })
	for _, b := range bs {
		c := b.GetCumulativeCountFloat()
		if c == 0 {
			c = float64(b.GetCumulativeCount())
		}
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, c)
	}
	if len(out.bounds) == 0 || !math.IsInf(out.bounds[len(out.bounds)-1], 1) {
		// The text format's _count is the +Inf bucket; add it when the bucket line is absent.
		c := h.GetSampleCountFloat()
		if c == 0 {
			c = float64(h.GetSampleCount())
		}
		out.bounds = append(out.bounds, math.Inf(1))
		out.counts = append(out.counts, c)
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// labelKey is a canonical text of a label set (sorted by name), leaving out the label skip.
func labelKey(lps []*dto.LabelPair, skip string) string {
	if len(lps) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(lps))
	for _, lp := range lps {
		if lp.GetName() != skip {
			pairs = append(pairs, lp.GetName()+"\x00"+lp.GetValue())
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\x01")
}
