package awsapi_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/clock"
	"github.com/kilnhq/kiln/targets/aws/awsapi"
	"github.com/kilnhq/kiln/targets/aws/awsapi/awsfake"
)

const (
	lbARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/hello/50dc6c495c0c9188"
	lbDim = "app/hello/50dc6c495c0c9188"
	tgDim = "targetgroup/hello-green/fedcba9876543210"
)

var now = time.Date(2026, 11, 30, 12, 0, 30, 0, time.UTC)

// minute returns the start of the minute m minutes before now's.
func minute(m int) time.Time { return now.Truncate(time.Minute).Add(-time.Duration(m) * time.Minute) }

// perMinute returns datapoints for the minutes 3, 2, 1 and 0 before now's.
func perMinute(vs ...float64) []awsfake.Point {
	var ps []awsfake.Point
	for i, v := range vs {
		ps = append(ps, awsfake.Point{At: minute(len(vs) - 1 - i), Value: v})
	}
	return ps
}

func elbSeries(metric, stat, tg string, vs ...float64) awsfake.Series {
	return awsfake.Series{Namespace: "AWS/ApplicationELB", Metric: metric, Stat: stat,
		Dims: map[string]string{"LoadBalancer": lbDim, "TargetGroup": tg}, Points: perMinute(vs...)}
}

func loadSeries(service, instance string, extra map[string]string, vs ...float64) awsfake.Series {
	dims := map[string]string{"Service": service, "Version": "2.0.0", "Instance": instance}
	maps.Copy(dims, extra)
	return awsfake.Series{Namespace: "Kiln", Metric: "node_load1", Stat: "Maximum", Dims: dims, Points: perMinute(vs...)}
}

// slotMetrics models the green slot of service hello: its load balancer metrics, and
// kiln-metrics' node_load1 of its instances, among series of another slot and service.
func slotMetrics(f *awsfake.Server, errors5xx ...float64) {
	f.AddSeries(
		elbSeries("RequestCount", "Sum", tgDim, 100, 200, 300, 50),
		elbSeries("HTTPCode_Target_5XX_Count", "Sum", tgDim, errors5xx...),
		elbSeries("TargetResponseTime", "p99", tgDim, 2.0, 0.2, 0.35, 0.1),
		elbSeries("RequestCount", "Sum", "targetgroup/hello-blue/0123456789abcdef", 9000, 9000, 9000, 9000),
		loadSeries("hello", "i-g1", nil, 3, 1.0, 1.5),
		loadSeries("hello", "i-g2", map[string]string{"mode": "user"}, 0.5),
		loadSeries("hello", "i-b1", nil, 9), // the other slot
		loadSeries("other", "i-g1", nil, 7), // another service
	)
}

func template() analysis.Template {
	return analysis.Template{Interval: 30 * time.Second, Count: 2, InconclusiveLimit: 1, Metrics: []analysis.Metric{
		{Name: "errors", ErrorRatio: &analysis.ErrorRatio{Max: 0.05, Window: 2 * time.Minute, MinRequests: 10}},
		{Name: "p99", Latency: &analysis.Latency{Quantile: 0.99, Max: 500 * time.Millisecond, Window: 2 * time.Minute}},
		{Name: "load", Gauge: &analysis.Gauge{Name: "node_load1", Max: ptr(4.0)}},
	}}
}

func ptr[T any](v T) *T { return &v }

func greenSlot(ids ...string) awsapi.SlotMetrics {
	return awsapi.SlotMetrics{LoadBalancerARN: lbARN, TargetGroupARN: greenTG, Service: "hello",
		Instances: func(context.Context) ([]string, error) { return ids, nil }}
}

func TestMetricsSourceReadsOneRoundWithOneCall(t *testing.T) {
	f := awsfake.New(t)
	slotMetrics(f, 40, 2, 3, 0)
	src, err := newClients(t, f).MetricsSource(template(), greenSlot("i-g1", "i-g2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Collect(ctx, now); err != nil {
		t.Fatal(err)
	}
	// The 2-minute window ending at 12:00:30 is widened to the minutes 11:58, 11:59, 12:00.
	rc, err := src.Requests(ctx, now, 2*time.Minute)
	if err != nil || rc != (analysis.RequestCount{Total: 550, Errors: 5}) {
		t.Fatalf("Requests = %+v, %v", rc, err)
	}
	lq, err := src.Latency(ctx, now, 2*time.Minute, 0.99)
	if err != nil || lq.Seconds != 0.35 || lq.Requests != 550 {
		t.Fatalf("Latency = %+v, %v; want the worst minute's p99 (0.35) over 550 requests", lq, err)
	}
	if lq, _ := src.Latency(ctx, now, 30*time.Second, 0.99); lq.Seconds != 0.1 || lq.Requests != 50 {
		t.Fatalf("Latency of the current minute = %+v", lq)
	}
	g, err := src.Gauge(ctx, now, "node_load1")
	if err != nil || g.Instances != 2 || !slices.Equal(g.Values, []float64{1.5, 0.5}) {
		t.Fatalf("Gauge = %+v, %v; want the latest value of each of the slot's series", g, err)
	}

	reqs := f.MetricData()
	if len(reqs) != 1 {
		t.Fatalf("%d GetMetricData calls for one round", len(reqs))
	}
	r := reqs[0]
	if !r.Start.Equal(minute(5)) || !r.End.Equal(now) {
		t.Errorf("asked %s .. %s", r.Start, r.End)
	}
	var shapes []string
	for _, q := range r.Queries {
		shapes = append(shapes, q.ID+" "+q.Namespace+" "+q.Metric+" "+q.Stat+" "+q.Expression+" "+q.Label)
		if q.Period != 60 {
			t.Errorf("%s: period %d", q.ID, q.Period)
		}
		if q.Expression == "" && !maps.Equal(q.Dims, map[string]string{"LoadBalancer": lbDim, "TargetGroup": tgDim}) {
			t.Errorf("%s: dimensions %v", q.ID, q.Dims)
		}
	}
	want := []string{
		"requests AWS/ApplicationELB RequestCount Sum  ",
		"errors5xx AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum  ",
		"latency0 AWS/ApplicationELB TargetResponseTime p99  ",
		`gauge0    SEARCH('Namespace="Kiln" MetricName="node_load1" Service="hello" (Instance="i-g1" OR Instance="i-g2")', 'Maximum', 60) ${PROP('Dim.Instance')}`,
	}
	if !slices.Equal(shapes, want) {
		t.Fatalf("queries:\n%q\nwant:\n%q", shapes, want)
	}
}

func TestMetricsSourceDrivesAnAnalysis(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errors5xx []float64
		want      analysis.Outcome
	}{
		{"few errors pass", []float64{40, 2, 3, 0}, analysis.OutcomeSuccessful},
		{"a burst of 5xx fails", []float64{0, 20, 30, 10}, analysis.OutcomeFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := awsfake.New(t)
			slotMetrics(f, tc.errors5xx...)
			src, err := newClients(t, f).MetricsSource(template(), greenSlot("i-g1", "i-g2"))
			if err != nil {
				t.Fatal(err)
			}
			sum, err := analysis.Run(context.Background(), template(), src, clock.NewFake(now), nil)
			if err != nil || sum.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), %v; want %s", sum.Outcome, sum.Message, err, tc.want)
			}
			if n := len(f.MetricData()); n < 2 {
				t.Fatalf("%d rounds", n)
			}
		})
	}
}

func TestMetricsSourceRoundFailsWithoutInstancesOrOnThrottling(t *testing.T) {
	f := awsfake.New(t)
	slotMetrics(f, 0, 0, 0, 0)
	c := newClients(t, f)
	src, err := c.MetricsSource(template(), greenSlot())
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Collect(context.Background(), now); err == nil {
		t.Fatal("a round of a gauge with no instances to read it from")
	}
	failing := greenSlot()
	failing.Instances = func(context.Context) ([]string, error) { return nil, errors.New("target health unavailable") }
	src, _ = c.MetricsSource(template(), failing)
	if err := src.Collect(context.Background(), now); err == nil {
		t.Fatal("a round without the instances")
	}
	src, _ = c.MetricsSource(template(), greenSlot("i-g1"))
	f.Throttle("GetMetricData", attempts)
	if err := src.Collect(context.Background(), now); err == nil {
		t.Fatal("a round throttled beyond the budget succeeded")
	}
	f.Throttle("GetMetricData", attempts-1)
	if err := src.Collect(context.Background(), now); err != nil {
		t.Fatalf("a round throttled within the budget: %v", err)
	}
}

func TestMetricsSourceRefusesARNsOfOtherThings(t *testing.T) {
	c := newClients(t, awsfake.New(t))
	for _, m := range []awsapi.SlotMetrics{
		{LoadBalancerARN: "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/net/hello/1", TargetGroupARN: greenTG},
		{LoadBalancerARN: lbARN, TargetGroupARN: "targetgroup/hello-green/1"},
		{LoadBalancerARN: "", TargetGroupARN: greenTG},
	} {
		if _, err := c.MetricsSource(template(), m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

func TestQuantileStatistics(t *testing.T) {
	f := awsfake.New(t)
	tmpl := analysis.Template{Interval: time.Minute, Count: 1, InconclusiveLimit: 1}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		tmpl.Metrics = append(tmpl.Metrics, analysis.Metric{Name: fmt.Sprint(q), Latency: &analysis.Latency{Quantile: q, Max: time.Second, Window: time.Minute}})
	}
	src, err := newClients(t, f).MetricsSource(tmpl, greenSlot())
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Collect(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	var stats []string
	for _, q := range f.MetricData()[0].Queries {
		if q.Metric == "TargetResponseTime" {
			stats = append(stats, q.Stat)
		}
	}
	if want := []string{"p50", "p90", "p99", "p99.9"}; !slices.Equal(stats, want) {
		t.Fatalf("statistics %v, want %v", stats, want)
	}
	if lq, _ := src.Latency(context.Background(), now, time.Minute, 0.9); !math.IsNaN(lq.Seconds) || lq.Requests != 0 {
		t.Fatalf("latency without data = %+v, want NaN over 0 requests", lq)
	}
}
