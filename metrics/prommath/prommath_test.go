package prommath

import (
	"math"
	"slices"
	"testing"
)

func TestIncrease(t *testing.T) {
	cases := []struct {
		name           string
		prev, cur, inc float64
	}{
		{"growth", 10, 15, 5},
		{"flat", 7, 7, 0},
		{"reset: the process restarted and counted 3", 100, 3, 3},
		{"reset to zero", 100, 0, 0},
		{"from zero", 0, 42, 42},
	}
	for _, tc := range cases {
		if got := Increase(tc.prev, tc.cur); got != tc.inc {
			t.Errorf("%s: Increase(%v, %v) = %v, want %v", tc.name, tc.prev, tc.cur, got, tc.inc)
		}
	}
}

func TestCounter(t *testing.T) {
	cases := []struct {
		name   string
		start  *float64 // the window's baseline; nil when the series first appears later
		values []float64
		want   float64
	}{
		{"baseline only", f(100), nil, 0},
		{"several samples", f(0), []float64{10, 30, 60}, 60},
		{"reset in the middle", f(100), []float64{150, 20}, 70},
		{"two resets", f(100), []float64{5, 50, 2, 12}, 5 + 45 + 2 + 10},
		{"reset to zero, then growth", f(100), []float64{0, 7}, 7},
		{"a series created inside the window counts from zero", nil, []float64{3, 5}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Counter
			if tc.start != nil {
				c.Start(*tc.start)
			}
			for _, v := range tc.values {
				c.Add(v)
			}
			if got := c.Increase(); got != tc.want {
				t.Errorf("Increase() = %v, want %v", got, tc.want)
			}
		})
	}
}

func f(v float64) *float64 { return &v }

var inf = math.Inf(1)

func TestHistogramIncrease(t *testing.T) {
	type sample struct {
		series string
		start  bool
		bs     []Bucket
	}
	layout := func(c ...float64) []Bucket {
		return []Bucket{{0.1, c[0]}, {0.25, c[1]}, {1, c[2]}, {inf, c[3]}}
	}
	cases := []struct {
		name    string
		samples []sample
		want    []Bucket
	}{
		{"nothing fed", nil, nil},
		{"baseline only", []sample{{"a", true, layout(1, 2, 3, 4)}}, []Bucket{{0.1, 0}, {0.25, 0}, {1, 0}, {inf, 0}}},
		{"increase", []sample{{"a", true, layout(10, 20, 30, 30)}, {"a", false, layout(60, 90, 110, 120)}},
			layout(50, 70, 80, 90)},
		{"reset", []sample{{"a", true, layout(10, 20, 30, 30)}, {"a", false, layout(2, 3, 4, 5)}},
			layout(2, 3, 4, 5)},
		{"reset between later samples", []sample{
			{"a", true, layout(100, 100, 100, 100)}, {"a", false, layout(150, 150, 150, 150)},
			{"a", false, layout(0, 20, 20, 20)}, {"a", false, layout(0, 70, 70, 70)},
		}, layout(50, 120, 120, 120)},
		{"two series summed by upper bound", []sample{
			{"a", true, layout(0, 0, 0, 0)}, {"b", true, layout(5, 5, 5, 5)},
			{"a", false, layout(1, 2, 3, 4)}, {"b", false, layout(6, 7, 8, 9)},
		}, layout(2, 4, 6, 8)},
		{"a series created inside the window counts from zero", []sample{
			{"a", true, layout(0, 0, 0, 0)}, {"b", false, layout(1, 1, 2, 2)},
		}, layout(1, 1, 2, 2)},
		{"a new window has its own baseline", []sample{
			{"a", true, layout(0, 0, 0, 0)}, {"a", false, layout(1, 1, 1, 1)},
			{"", false, nil}, // NextWindow: another instance's series "a"
			{"a", true, layout(100, 100, 100, 100)}, {"a", false, layout(101, 102, 103, 104)},
		}, layout(2, 3, 4, 5)},
		{"different layouts keep their own bounds", []sample{
			{"a", true, []Bucket{{0.5, 0}, {inf, 0}}}, {"a", false, []Bucket{{0.5, 4}, {inf, 6}}},
			{"b", true, []Bucket{{1, 0}, {inf, 0}}}, {"b", false, []Bucket{{1, 1}, {inf, 1}}},
		}, []Bucket{{0.5, 4}, {1, 1}, {inf, 7}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h HistogramIncrease[string]
			for _, s := range tc.samples {
				if s.bs == nil {
					h.NextWindow()
					continue
				}
				h.Add(s.series, s.start, s.bs)
			}
			if got := h.Buckets(); !slices.Equal(got, tc.want) {
				t.Errorf("Buckets() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestQuantile checks the interpolation against answers of Prometheus' own tests (promql
// testdata: histogram_quantile over testhistogram_bucket at 50m), and the edge cases.
func TestQuantile(t *testing.T) {
	positive := []Bucket{{0.1, 50}, {0.2, 70}, {1, 110}, {inf, 120}}
	negative := []Bucket{{-0.2, 10}, {-0.1, 20}, {0.3, 20}, {inf, 30}}
	cases := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
	}{
		{"positive 0.2", 0.2, positive, 0.048},
		{"positive 0.5", 0.5, positive, 0.15},
		{"positive 0.8", 0.8, positive, 0.72},
		{"positive 0", 0, positive, 0},
		{"positive 1", 1, positive, 1},
		{"negative 0.2", 0.2, negative, -0.2},
		{"negative 0.5", 0.5, negative, -0.15},
		{"negative 0.8", 0.8, negative, 0.3},
		{"negative 0", 0, negative, -0.2},
		{"negative 1", 1, negative, 0.3},
		{"q below 0", -0.1, positive, math.Inf(-1)},
		{"q above 1", 1.1, positive, math.Inf(1)},
		{"q NaN", math.NaN(), positive, math.NaN()},
		{"no buckets", 0.5, nil, math.NaN()},
		{"no +Inf bucket", 0.5, []Bucket{{0.1, 1}, {0.2, 2}}, math.NaN()},
		{"no observations", 0.5, []Bucket{{0.1, 0}, {inf, 0}}, math.NaN()},
		{"only +Inf", 0.5, []Bucket{{inf, 10}}, math.NaN()},
		{"rank in +Inf: the highest finite bound", 0.99, []Bucket{{0.1, 50}, {1, 90}, {inf, 100}}, 1},
		{"every observation above the finite bounds", 0.5, []Bucket{{0.1, 0}, {1, 0}, {inf, 10}}, 1},
		{"rank on a bucket's edge", 0.5, []Bucket{{0.1, 50}, {1, 90}, {inf, 100}}, 0.1},
		{"empty buckets before the rank are skipped", 0.5, []Bucket{{0.1, 0}, {0.2, 0}, {0.4, 10}, {inf, 10}}, 0.3},
		{"q 0 with an empty first bucket, as Prometheus", 0, []Bucket{{0.1, 0}, {1, 5}, {inf, 5}}, math.NaN()},
		{"non-monotonic counts are fixed", 0.5, []Bucket{{0.1, 50}, {0.2, 40}, {1, 110}, {inf, 120}}, 0.2 + 0.8*(10.0/60)},
		{"summary's p50 case", 0.5, []Bucket{{0.1, 50}, {0.5, 150}, {1, 190}, {inf, 200}}, 0.3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.buckets)
			got := Quantile(tc.q, tc.buckets)
			if !(math.IsNaN(tc.want) && math.IsNaN(got)) && math.Abs(got-tc.want) > 1e-9 && got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
			if !slices.Equal(in, tc.buckets) {
				t.Errorf("Quantile changed its argument: %v, was %v", tc.buckets, in)
			}
		})
	}
}

func TestObservations(t *testing.T) {
	if got := Observations([]Bucket{{1, 3}, {inf, 7}}); got != 7 {
		t.Errorf("Observations = %v, want 7", got)
	}
	if got := Observations([]Bucket{{1, 3}}); got != 0 {
		t.Errorf("Observations without +Inf = %v, want 0", got)
	}
	if got := Observations(nil); got != 0 {
		t.Errorf("Observations(nil) = %v, want 0", got)
	}
}

func TestIsServerError(t *testing.T) {
	for code, want := range map[string]bool{"500": true, "503": true, "599": true, "200": false, "404": false, "5": false, "5000": false, "": false} {
		if got := IsServerError(code); got != want {
			t.Errorf("IsServerError(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestCounters(t *testing.T) {
	var cs Counters[string]
	cs.Add("a", true, 100)
	cs.Add("b", true, 5)
	cs.Add("a", false, 150)
	cs.Add("b", false, 2) // reset
	cs.Add("c", false, 4) // created inside the window
	got := map[string]float64{}
	for k, inc := range cs.All() {
		got[k] = inc
	}
	if len(got) != 3 || got["a"] != 50 || got["b"] != 2 || got["c"] != 4 {
		t.Errorf("increases = %v, want a:50 b:2 c:4", got)
	}
	cs.Reset()
	cs.Add("a", true, 7)
	cs.Add("a", false, 9)
	for k, inc := range cs.All() {
		if k != "a" || inc != 2 {
			t.Errorf("after Reset: %s increased %v, want only a by 2", k, inc)
		}
	}
}

func TestStatusCode(t *testing.T) {
	labels := func(m map[string]string) func(string) string { return func(n string) string { return m[n] } }
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"code": "503", "method": "GET"}, "503"},
		{map[string]string{"status": "500"}, "500"},
		{map[string]string{"code": "200", "status": "500"}, "200"},
		{map[string]string{"method": "GET"}, ""},
	} {
		if got := StatusCode(labels(tc.labels)); got != tc.want {
			t.Errorf("StatusCode(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}
