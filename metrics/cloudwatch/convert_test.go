package cloudwatch

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
)

func fams(t *testing.T, text string) []collect.Family {
	t.Helper()
	f, err := collect.ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConverterGaugesCountersAndFilters(t *testing.T) {
	c := converter{
		include:    []*regexp.Regexp{regexp.MustCompile(`^node_load1$`), regexp.MustCompile(`^app_`)},
		dims:       []Dim{{"Service", "web"}},
		resolution: 60,
	}
	text := func(req, load float64) string {
		return "# TYPE node_load1 gauge\nnode_load1 " + ff(load) +
			"\n# TYPE node_load5 gauge\nnode_load5 9\n" +
			"# TYPE app_requests_total counter\napp_requests_total{code=\"200\"} " + ff(req) + "\napp_requests_total{code=\"\"} 1\n" +
			"# TYPE app_temp gauge\napp_temp NaN\n" +
			"# TYPE app_latency_seconds histogram\napp_latency_seconds_bucket{le=\"+Inf\"} " + ff(req) + "\napp_latency_seconds_sum 0\napp_latency_seconds_count " + ff(req) + "\n"
	}
	first := c.datums(t0, fams(t, text(100, 0.5)), nil)
	if len(first) != 1 || first[0].Name != "node_load1" || first[0].Value != 0.5 || first[0].Unit != "None" {
		t.Fatalf("first conversion = %+v; counters only set their baseline, NaN is skipped, node_load5 is not included", first)
	}
	if d := first[0].Dims; len(d) != 1 || d[0] != (Dim{"Service", "web"}) {
		t.Errorf("dims = %v", d)
	}
	second := c.datums(t0.Add(time.Minute), fams(t, text(130, 0.7)), nil)
	byName := map[string]Datum{}
	for _, d := range second {
		byName[d.Name+"/"+dimValue(d, "code")+dimValue(d, "le")] = d
	}
	if d := byName["app_requests_total/200"]; d.Value != 30 || d.Unit != "Count" || dimValue(d, "Service") != "web" {
		t.Errorf("counter delta = %+v", d)
	}
	if d, ok := byName["app_requests_total/"]; !ok || d.Value != 0 || len(d.Dims) != 1 {
		t.Errorf("empty label values must be left out of the dimensions: %+v", d)
	}
	if d := byName["app_latency_seconds_count/"]; d.Value != 30 || d.Unit != "Count" {
		t.Errorf("histogram count delta = %+v", d)
	}
	if d := byName["app_latency_seconds_sum/"]; d.Unit != "Seconds" {
		t.Errorf("histogram sum unit = %+v", d)
	}
	// A reset counts from zero.
	third := c.datums(t0.Add(2*time.Minute), fams(t, text(10, 0.7)), nil)
	for _, d := range third {
		if d.Name == "app_requests_total" && dimValue(d, "code") == "200" && d.Value != 10 {
			t.Errorf("after a reset = %v, want 10", d.Value)
		}
	}
	if len(c.prev) != 5 {
		t.Errorf("converter remembers %d series, want the 5 cumulative ones seen last", len(c.prev))
	}
}

func dimValue(d Datum, name string) string {
	for _, x := range d.Dims {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

func ff(v float64) string {
	return string(collect.AppendFloat(nil, v))
}

func TestEMFLines(t *testing.T) {
	var buf bytes.Buffer
	p := New(Options{Namespace: "Kiln", Client: nil, EMF: &buf, Include: []*regexp.Regexp{regexp.MustCompile(`.`)},
		Dimensions: map[string]string{"Instance": "i-1"}})
	p.Publish(t0, []collect.Family{{Name: "node_load1", Type: collect.Gauge, Samples: []collect.Sample{{Name: "node_load1", Value: 1.5}}}})
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("EMF line %q: %v", buf.String(), err)
	}
	aws := line["_aws"].(map[string]any)
	m := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if line["node_load1"] != 1.5 || line["Instance"] != "i-1" || aws["Timestamp"] != float64(t0.UnixMilli()) ||
		m["Namespace"] != "Kiln" || m["Dimensions"].([]any)[0].([]any)[0] != "Instance" {
		t.Errorf("EMF line = %s", buf.String())
	}
	if p.Stats().Buffered != 1 {
		t.Error("the datum should also be queued for PutMetricData")
	}
}

// TestConverterInternsSeries: the datums of one series over many intervals share their
// name and dimensions, so a full buffer costs one ring slot per datum.
func TestConverterInternsSeries(t *testing.T) {
	c := converter{include: []*regexp.Regexp{regexp.MustCompile(".")}, dims: []Dim{{"Service", "web"}}}
	in := fams(t, "# TYPE g gauge\ng{device=\"sda\"} 1\ng{device=\"sdb\"} 2\n")
	a := c.datums(t0, in, nil)
	b := c.datums(t0.Add(time.Minute), fams(t, "# TYPE g gauge\ng{device=\"sda\"} 3\n"), nil)
	if len(a) != 2 || len(b) != 1 {
		t.Fatalf("datums %v %v", a, b)
	}
	if &a[0].Dims[0] != &b[0].Dims[0] || dimValue(b[0], "device") != "sda" {
		t.Error("the same series should reuse its dimension slice")
	}
	if len(c.series) != 1 {
		t.Errorf("converter remembers %d series, want only the one seen last", len(c.series))
	}
}

func TestCloudWatchValueRange(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want float64
		ok   bool
	}{
		{1.5, 1.5, true}, {0, 0, true}, {-3, -3, true},
		{1e-300, 0, true}, {-1e-300, 0, true}, // below 2^-260: sent as 0
		{1e300, 0, false}, {math.Inf(1), 0, false}, {math.NaN(), 0, false}, // refused
	} {
		got, ok := cloudWatchValue(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("cloudWatchValue(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
