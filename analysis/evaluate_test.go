package analysis

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
)

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// parse reads Prometheus text into a snapshot as a scrape does.
func (n needs) parse(r io.Reader, at time.Time) (*snapshot, error) {
	fams, err := collect.ParseText(r)
	if err != nil {
		return nil, err
	}
	return n.extract(fams, at), nil
}

// parseSnap parses Prometheus text as a scrape would.
func parseSnap(t *testing.T, n needs, at time.Time, text string) *snapshot {
	t.Helper()
	snap, err := n.parse(strings.NewReader(text), at)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return snap
}

// scrapeOf is a Scrape source holding the snapshots of all, one endpoint each, as if it had
// scraped them.
func scrapeOf(all [][]*snapshot) *Scrape {
	s := &Scrape{snaps: map[Endpoint][]*snapshot{}}
	for i, snaps := range all {
		ep := Endpoint{Instance: fmt.Sprintf("i-%d", i)}
		s.order = append(s.order, ep)
		s.snaps[ep] = snaps
	}
	return s
}

var ctx = context.Background()

var allNeeds = needs{requests: true, latency: true, gauges: map[string]bool{"queue_depth": true}}

// reqs renders http_requests_total with one series per code.
func reqs(counts map[string]float64) string {
	var b strings.Builder
	b.WriteString("# TYPE http_requests_total counter\n")
	for code, v := range counts {
		b.WriteString(`http_requests_total{method="GET",code="` + code + `"} ` + num(v) + "\n")
	}
	return b.String()
}

func TestRequestIncrease(t *testing.T) {
	type point map[string]float64 // code -> counter value in one scrape
	cases := []struct {
		name        string
		endpoints   [][]point
		errs, total float64
	}{
		{"no endpoints", nil, 0, 0},
		{"one scrape is no increase", [][]point{{{"200": 100, "500": 5}}}, 0, 0},
		{"plain increase", [][]point{{{"200": 100, "500": 5}, {"200": 190, "500": 15}}}, 10, 100},
		{"several scrapes", [][]point{{{"200": 0}, {"200": 10}, {"200": 30}, {"200": 60}}}, 0, 60},
		{"counter reset: the instance restarted", [][]point{{{"200": 100, "503": 10}, {"200": 150, "503": 20}, {"200": 20, "503": 4}}}, 14, 84},
		{"reset to zero", [][]point{{{"200": 100}, {"200": 0}, {"200": 7}}}, 0, 7},
		{"new 5xx series counts from zero", [][]point{{{"200": 100}, {"200": 150, "500": 3}}}, 3, 53},
		{"series that disappears", [][]point{{{"200": 10, "500": 2}, {"200": 20}}}, 0, 10},
		{"summed over endpoints", [][]point{
			{{"200": 0, "500": 0}, {"200": 90, "500": 10}},
			{{"200": 50}, {"200": 150}},
			{{"200": 1000}}, // one scrape only: nothing
		}, 10, 200},
		{"4xx are not errors", [][]point{{{"404": 0, "200": 0}, {"404": 50, "200": 50}}}, 0, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var windows [][]*snapshot
			for _, ep := range tc.endpoints {
				var w []*snapshot
				for i, p := range ep {
					w = append(w, parseSnap(t, allNeeds, t0.Add(time.Duration(i)*10*time.Second), reqs(p)))
				}
				windows = append(windows, w)
			}
			errs, total := requestIncrease(windows)
			if errs != tc.errs || total != tc.total {
				t.Errorf("increase = %v errors of %v, want %v of %v", errs, total, tc.errs, tc.total)
			}
		})
	}
}

// hist renders http_request_duration_seconds with the given cumulative bucket counts for
// bounds 0.1, 0.25, 1 and +Inf.
func hist(handler string, c [4]float64) string {
	return "# TYPE http_request_duration_seconds histogram\n" +
		`http_request_duration_seconds_bucket{handler="` + handler + `",le="0.1"} ` + num(c[0]) + "\n" +
		`http_request_duration_seconds_bucket{handler="` + handler + `",le="0.25"} ` + num(c[1]) + "\n" +
		`http_request_duration_seconds_bucket{handler="` + handler + `",le="1"} ` + num(c[2]) + "\n" +
		`http_request_duration_seconds_bucket{handler="` + handler + `",le="+Inf"} ` + num(c[3]) + "\n" +
		`http_request_duration_seconds_sum{handler="` + handler + `"} 1` + "\n" +
		`http_request_duration_seconds_count{handler="` + handler + `"} ` + num(c[3]) + "\n"
}

func TestBucketIncreaseAndLatency(t *testing.T) {
	inf := math.Inf(1)
	type bucket [2]float64 // upper bound, count
	snaps := func(t *testing.T, counts ...[4]float64) []*snapshot {
		var out []*snapshot
		for i, c := range counts {
			out = append(out, parseSnap(t, allNeeds, t0.Add(time.Duration(i)*10*time.Second), hist("/", c)))
		}
		return out
	}
	cases := []struct {
		name    string
		windows [][]*snapshot
		want    []bucket
	}{
		{"increase", [][]*snapshot{snaps(t, [4]float64{10, 20, 30, 30}, [4]float64{60, 90, 110, 120})}, []bucket{{0.1, 50}, {0.25, 70}, {1, 80}, {inf, 90}}},
		{"reset", [][]*snapshot{snaps(t, [4]float64{10, 20, 30, 30}, [4]float64{2, 3, 4, 5})}, []bucket{{0.1, 2}, {0.25, 3}, {1, 4}, {inf, 5}}},
		{"two endpoints", [][]*snapshot{
			snaps(t, [4]float64{0, 0, 0, 0}, [4]float64{1, 2, 3, 4}),
			snaps(t, [4]float64{5, 5, 5, 5}, [4]float64{6, 7, 8, 9}),
		}, []bucket{{0.1, 2}, {0.25, 4}, {1, 6}, {inf, 8}}},
		{"one scrape", [][]*snapshot{snaps(t, [4]float64{1, 2, 3, 4})}, []bucket{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := bucketIncrease(tc.windows)
			if len(got) != len(tc.want) {
				t.Fatalf("buckets = %v, want %v", got, tc.want)
			}
			for i := range got {
				if (bucket{got[i].Upper, got[i].Count}) != tc.want[i] {
					t.Fatalf("buckets = %v, want %v", got, tc.want)
				}
			}
		})
	}

	// p50 of the "increase" case: rank 45 in the first bucket (50 of 90): 0.1 * 45/50.
	l := &Latency{Quantile: 0.5, Max: 100 * time.Millisecond, Window: time.Minute, MinRequests: 10}
	all := [][]*snapshot{snaps(t, [4]float64{10, 20, 30, 30}, [4]float64{60, 90, 110, 120})}
	v := evalLatency(ctx, l, scrapeOf(all), t0.Add(10*time.Second))
	if v.result != Passed || math.Abs(v.value-0.09) > 1e-12 || v.threshold != "<= 100ms" {
		t.Errorf("evalLatency = %+v, want Passed 0.09", v)
	}
	l.Quantile = 0.99 // rank 89.1 in +Inf: the highest finite bound, 1s
	if v := evalLatency(ctx, l, scrapeOf(all), t0.Add(10*time.Second)); v.result != Failed || v.value != 1 {
		t.Errorf("evalLatency p99 = %+v, want Failed 1", v)
	}
	l.MinRequests = 91
	if v := evalLatency(ctx, l, scrapeOf(all), t0.Add(10*time.Second)); v.result != Inconclusive || !math.IsNaN(v.value) {
		t.Errorf("evalLatency with too few = %+v, want Inconclusive", v)
	}
	if v := evalLatency(ctx, l, scrapeOf(nil), t0); v.result != Inconclusive {
		t.Errorf("evalLatency without data = %+v, want Inconclusive", v)
	}
}

func TestEvalErrorRatio(t *testing.T) {
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
	w := []*snapshot{
		parseSnap(t, allNeeds, at(0), reqs(map[string]float64{"200": 0, "500": 0})),
		parseSnap(t, allNeeds, at(1), reqs(map[string]float64{"200": 1000, "500": 0})),
		parseSnap(t, allNeeds, at(2), reqs(map[string]float64{"200": 1099, "500": 1})),
	}
	cases := []struct {
		name   string
		e      ErrorRatio
		now    time.Time
		result Result
		value  float64
	}{
		{"whole window passes", ErrorRatio{Max: 0.01, Window: 30 * time.Second, MinRequests: 20}, at(2), Passed, 1.0 / 1100},
		{"short window sees only the last interval", ErrorRatio{Max: 0.005, Window: 10 * time.Second}, at(2), Failed, 0.01},
		{"max is inclusive", ErrorRatio{Max: 0.01, Window: 10 * time.Second}, at(2), Passed, 0.01},
		{"too few requests", ErrorRatio{Max: 0.01, Window: 10 * time.Second, MinRequests: 101}, at(2), Inconclusive, math.NaN()},
		{"empty window", ErrorRatio{Max: 0.01, Window: 10 * time.Second}, at(5), Inconclusive, math.NaN()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := evalErrorRatio(ctx, &tc.e, scrapeOf([][]*snapshot{w}), tc.now)
			if v.result != tc.result || !(math.IsNaN(tc.value) && math.IsNaN(v.value) || math.Abs(v.value-tc.value) < 1e-12) {
				t.Errorf("evalErrorRatio = %+v, want %s %v", v, tc.result, tc.value)
			}
		})
	}
}

func TestEvalGauge(t *testing.T) {
	lo, hi := 2.0, 10.0
	snap := func(at time.Time, text string) []*snapshot { return []*snapshot{parseSnap(t, allNeeds, at, text)} }
	all := [][]*snapshot{
		snap(t0, "# TYPE queue_depth gauge\nqueue_depth{q=\"a\"} 3\nqueue_depth{q=\"b\"} 5\n"),
		snap(t0, "queue_depth 4\n"),                             // untyped
		snap(t0, "# TYPE queue_depth gauge\nqueue_depth NaN\n"), // left out
		snap(t0.Add(-10*time.Second), "queue_depth 100\n"),      // stale: this round's scrape is missing
	}
	cases := []struct {
		name   string
		g      Gauge
		all    [][]*snapshot
		result Result
		value  float64
		thr    string
	}{
		{"max of series", Gauge{Name: "queue_depth", Max: &hi}, all, Passed, 5, "<= 10"},
		{"default aggregate is max", Gauge{Name: "queue_depth", Min: &lo, Max: &hi, Aggregate: ""}, all, Passed, 5, ">= 2 and <= 10"},
		{"sum", Gauge{Name: "queue_depth", Max: &hi, Aggregate: AggregateSum}, all, Failed, 12, "<= 10"},
		{"avg", Gauge{Name: "queue_depth", Min: &lo, Aggregate: AggregateAvg}, all, Passed, 4, ">= 2"},
		{"below min", Gauge{Name: "queue_depth", Min: &hi, Aggregate: AggregateAvg}, all, Failed, 4, ">= 10"},
		{"absent everywhere", Gauge{Name: "nope", Max: &hi}, all, Inconclusive, math.NaN(), "<= 10"},
		{"only NaN", Gauge{Name: "queue_depth", Max: &hi}, all[2:3], Inconclusive, math.NaN(), "<= 10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := evalGauge(ctx, &tc.g, scrapeOf(tc.all), t0)
			if v.result != tc.result || v.threshold != tc.thr || !(math.IsNaN(tc.value) && math.IsNaN(v.value) || v.value == tc.value) {
				t.Errorf("evalGauge = %+v, want %s %v %q", v, tc.result, tc.value, tc.thr)
			}
		})
	}
}

func TestParseKeepsOnlyWhatIsNeeded(t *testing.T) {
	text := reqs(map[string]float64{"200": 3}) + hist("/", [4]float64{1, 2, 3, 4}) +
		"# TYPE other counter\nother 1\n# TYPE queue_depth gauge\nqueue_depth 7\n"
	snap := parseSnap(t, needs{gauges: map[string]bool{"queue_depth": true}}, t0, text)
	if snap.requests != nil || snap.hists != nil || len(snap.gauges) != 1 || snap.gauges["queue_depth"][0] != 7 {
		t.Errorf("snapshot = %+v", snap)
	}
	// A histogram whose +Inf bucket line is missing gets it from _count.
	noInf := "# TYPE http_request_duration_seconds histogram\nhttp_request_duration_seconds_bucket{le=\"0.5\"} 3\nhttp_request_duration_seconds_count 5\n"
	h := parseSnap(t, allNeeds, t0, noInf).hists[""]
	if len(h) != 2 || !math.IsInf(h[1].Upper, 1) || h[1].Count != 5 {
		t.Errorf("histogram = %+v", h)
	}
	if _, err := allNeeds.parse(strings.NewReader("http_requests_total{code=\"200\" 1\n"), t0); err == nil {
		t.Error("parse of broken text succeeded")
	}
	// The status code may be in a "status" label, as some libraries name it.
	snap = parseSnap(t, allNeeds, t0, "# TYPE http_requests_total counter\nhttp_requests_total{status=\"502\"} 1\nhttp_requests_total{status=\"200\"} 1\n")
	if len(snap.requests) != 2 || !snap.requests["status\x00502"].is5xx || snap.requests["status\x00200"].is5xx {
		t.Errorf("requests = %+v", snap.requests)
	}
}

func TestScrapeErrorNamesTheURLRedacted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	url := strings.Replace(srv.URL, "http://", "http://kiln:s3cret@", 1) + "/metrics"
	tmpl := Template{Interval: 10 * time.Second, Metrics: []Metric{{Name: "q", Gauge: &Gauge{Name: "q"}}}}
	s := NewScrape(tmpl, func(context.Context) ([]Endpoint, error) { return []Endpoint{{Instance: "i-1", URL: url}}, nil })
	defer s.Close()
	err := s.Collect(ctx, t0)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "scrape i-1 (http://kiln:xxxxx@127.0.0.1") {
		t.Errorf("Collect = %v, want the endpoint named with its password redacted", err)
	}
}
