package awsapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/kilnhq/kiln/analysis"
)

// DefaultNamespace is kiln-metrics' CloudWatch namespace unless its configuration says
// otherwise (metrics.DefaultConfig); it publishes every datum with the dimensions Service,
// Version and Instance (KILN_SERVICE, KILN_VERSION, KILN_INSTANCE) and one per label.
const DefaultNamespace = "Kiln"

// The load balancer's metrics the source reads (namespace AWS/ApplicationELB), per minute.
const (
	elbNamespace   = "AWS/ApplicationELB"
	metricRequests = "RequestCount"
	metric5xx      = "HTTPCode_Target_5XX_Count"
	metricLatency  = "TargetResponseTime"
	period         = time.Minute // the resolution of ALB metrics
	// gaugeLookback is how far back a gauge's latest datapoint is looked for: kiln-metrics
	// publishes every minute by default, and a datapoint takes a while to be readable.
	gaugeLookback = 5 * time.Minute
)

// SlotMetrics names what CloudWatch knows of one slot.
type SlotMetrics struct {
	LoadBalancerARN string // the ALB; its dimension is the ARN's "app/…" suffix
	TargetGroupARN  string // the slot's target group; dimension "targetgroup/…"
	Service         string // kiln-metrics' Service dimension
	Namespace       string // kiln-metrics' namespace; "" is DefaultNamespace
	// Instances returns the slot's instance IDs; it is asked before every round that
	// reads a gauge.
	Instances func(ctx context.Context) ([]string, error)
}

// Metrics is the analysis.Source of one slot on aws: the slot's target group's request,
// 5xx and response time metrics, and kiln-metrics' metrics of the slot's instances, read
// from CloudWatch with one GetMetricData per round (a CI runner cannot scrape instances'
// private addresses). CloudWatch has the load balancer's metrics per minute, so windows are
// widened to whole minutes, and a latency quantile over several minutes is the highest of
// the minutes' quantiles: a bound from above, so a latency gate never passes a slot the
// exact quantile would fail.
type Metrics struct {
	cw     *cloudwatch.Client
	m      SlotMetrics
	lb, tg string // dimension values
	keep   time.Duration
	// What the template reads.
	requests  bool
	quantiles []float64
	gauges    []string
	// The last round.
	points map[string][]point              // query ID -> datapoints (load balancer metrics)
	series map[string]map[string][]float64 // gauge name -> instance -> latest value per series
}

type point struct {
	at time.Time
	v  float64
}

var _ analysis.Source = (*Metrics)(nil)

// MetricsSource returns the CloudWatch source for template t of one slot.
func (c *Clients) MetricsSource(t analysis.Template, m SlotMetrics) (*Metrics, error) {
	lb, err := dimension(m.LoadBalancerARN, "loadbalancer/", "app/")
	if err != nil {
		return nil, err
	}
	tg, err := dimension(m.TargetGroupARN, "", "targetgroup/")
	if err != nil {
		return nil, err
	}
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	s := &Metrics{cw: c.CloudWatch, m: m, lb: lb, tg: tg, keep: t.Interval}
	for _, mt := range t.Metrics {
		switch {
		case mt.ErrorRatio != nil:
			s.requests, s.keep = true, max(s.keep, mt.ErrorRatio.Window)
		case mt.Latency != nil:
			s.requests, s.keep = true, max(s.keep, mt.Latency.Window)
			if !slices.Contains(s.quantiles, mt.Latency.Quantile) {
				s.quantiles = append(s.quantiles, mt.Latency.Quantile)
			}
		case mt.Gauge != nil:
			if !slices.Contains(s.gauges, mt.Gauge.Name) {
				s.gauges = append(s.gauges, mt.Gauge.Name)
			}
		}
	}
	return s, nil
}

// dimension returns the CloudWatch dimension value of an ELB ARN: the part of its resource
// from the kind's prefix on (arn:…:loadbalancer/app/web/50dc6c495c0c9188 → app/web/…).
func dimension(arn, resource, kind string) (string, error) {
	i := strings.Index(arn, ":"+resource+kind)
	if !strings.HasPrefix(arn, "arn:") || i < 0 {
		return "", fmt.Errorf("%q is not the ARN of an application load balancer's %s", arn, strings.TrimSuffix(kind, "/"))
	}
	return arn[i+1+len(resource):], nil
}

// stat is the extended statistic of quantile q: 0.99 → p99, 0.999 → p99.9.
func stat(q float64) string {
	return "p" + strconv.FormatFloat(math.Round(q*1e6)/1e4, 'f', -1, 64)
}

// Collect implements analysis.Source: one GetMetricData of every metric the template reads.
func (s *Metrics) Collect(ctx context.Context, now time.Time) error {
	queries, err := s.queries(ctx)
	if err != nil {
		return err
	}
	start := now.Add(-max(s.keep, gaugeLookback)).Truncate(period)
	in := &cloudwatch.GetMetricDataInput{MetricDataQueries: queries, StartTime: aws.Time(start), EndTime: aws.Time(now)}
	points := map[string][]point{}
	series := map[string]map[string][]float64{}
	p := cloudwatch.NewGetMetricDataPaginator(s.cw, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("read CloudWatch: %w", err)
		}
		for _, r := range page.MetricDataResults {
			if r.StatusCode != cwtypes.StatusCodeComplete && r.StatusCode != cwtypes.StatusCodePartialData {
				return fmt.Errorf("read CloudWatch: %s: %s", aws.ToString(r.Id), r.StatusCode)
			}
			id := aws.ToString(r.Id)
			if g, ok := s.gaugeOf(id); ok {
				if series[g] == nil {
					series[g] = map[string][]float64{}
				}
				if v, ok := latest(r.Timestamps, r.Values); ok {
					inst := aws.ToString(r.Label)
					series[g][inst] = append(series[g][inst], v)
				}
				continue
			}
			for i := range min(len(r.Timestamps), len(r.Values)) {
				points[id] = append(points[id], point{r.Timestamps[i], r.Values[i]})
			}
		}
	}
	s.points, s.series = points, series
	return nil
}

// Query IDs (CloudWatch wants them to start with a lower-case letter).
const (
	idRequests = "requests"
	id5xx      = "errors5xx"
)

func latencyID(i int) string { return "latency" + strconv.Itoa(i) }
func gaugeID(i int) string   { return "gauge" + strconv.Itoa(i) }

func (s *Metrics) gaugeOf(id string) (string, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "gauge"))
	if !strings.HasPrefix(id, "gauge") || err != nil || n >= len(s.gauges) {
		return "", false
	}
	return s.gauges[n], true
}

func (s *Metrics) queries(ctx context.Context) ([]cwtypes.MetricDataQuery, error) {
	var qs []cwtypes.MetricDataQuery
	elbStat := func(id, metric, st string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), ReturnData: aws.Bool(true), MetricStat: &cwtypes.MetricStat{
			Period: aws.Int32(int32(period.Seconds())), Stat: aws.String(st),
			Metric: &cwtypes.Metric{Namespace: aws.String(elbNamespace), MetricName: aws.String(metric), Dimensions: []cwtypes.Dimension{
				{Name: aws.String("LoadBalancer"), Value: aws.String(s.lb)}, {Name: aws.String("TargetGroup"), Value: aws.String(s.tg)}}}}}
	}
	if s.requests {
		qs = append(qs, elbStat(idRequests, metricRequests, "Sum"), elbStat(id5xx, metric5xx, "Sum"))
	}
	for i, q := range s.quantiles {
		qs = append(qs, elbStat(latencyID(i), metricLatency, stat(q)))
	}
	if len(s.gauges) == 0 {
		return qs, nil
	}
	if s.m.Instances == nil {
		return nil, errors.New("no instances function to read gauges for")
	}
	ids, err := s.m.Instances(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the slot's instances: %w", err)
	}
	if len(ids) == 0 {
		return nil, errors.New("the slot has no instances to read gauges of")
	}
	for i, g := range s.gauges {
		qs = append(qs, cwtypes.MetricDataQuery{Id: aws.String(gaugeID(i)), ReturnData: aws.Bool(true), Period: aws.Int32(int32(period.Seconds())),
			Expression: aws.String(search(s.m.Namespace, g, s.m.Service, ids)), Label: aws.String("${PROP('Dim.Instance')}")})
	}
	return qs, nil
}

// search is the SEARCH expression of every series of kiln-metrics' metric name published
// by the service's instances ids, whatever their other dimensions (the metric's labels),
// at the Maximum of each minute.
func search(namespace, name, service string, ids []string) string {
	var alt []string
	for _, id := range ids {
		alt = append(alt, "Instance="+quote(id))
	}
	return fmt.Sprintf("SEARCH('Namespace=%s MetricName=%s Service=%s (%s)', 'Maximum', %d)",
		quote(namespace), quote(name), quote(service), strings.Join(alt, " OR "), int(period.Seconds()))
}

// quote writes a search term's exact value: double quotes, with \ and " escaped and the
// single quotes that end the expression left out of it.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `'`, ``)
	return `"` + r.Replace(s) + `"`
}

// latest returns the value of the newest datapoint.
func latest(ts []time.Time, vs []float64) (float64, bool) {
	best := -1
	for i := range min(len(ts), len(vs)) {
		if best < 0 || ts[i].After(ts[best]) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	return vs[best], true
}

// inWindow returns the datapoints of id in the window ending at now, widened to whole
// minutes.
func (s *Metrics) inWindow(id string, now time.Time, window time.Duration) []float64 {
	from := now.Add(-window).Truncate(period)
	var out []float64
	for _, p := range s.points[id] {
		if !p.at.Before(from) && p.at.Before(now) {
			out = append(out, p.v)
		}
	}
	return out
}

func sum(vs []float64) float64 {
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}

// Requests implements analysis.Source: RequestCount and HTTPCode_Target_5XX_Count.
func (s *Metrics) Requests(_ context.Context, now time.Time, window time.Duration) (analysis.RequestCount, error) {
	return analysis.RequestCount{Total: sum(s.inWindow(idRequests, now, window)), Errors: sum(s.inWindow(id5xx, now, window))}, nil
}

// Latency implements analysis.Source: the highest per-minute TargetResponseTime quantile
// of the window (NaN when no minute has one).
func (s *Metrics) Latency(_ context.Context, now time.Time, window time.Duration, q float64) (analysis.LatencyQuantile, error) {
	i := slices.Index(s.quantiles, q)
	if i < 0 {
		return analysis.LatencyQuantile{}, fmt.Errorf("quantile %v is not in the template", q)
	}
	worst := math.NaN()
	for _, v := range s.inWindow(latencyID(i), now, window) {
		if !math.IsNaN(v) && (math.IsNaN(worst) || v > worst) {
			worst = v
		}
	}
	return analysis.LatencyQuantile{Seconds: worst, Requests: sum(s.inWindow(idRequests, now, window))}, nil
}

// Gauge implements analysis.Source: the latest value of every series of the metric
// kiln-metrics published for the slot's instances.
func (s *Metrics) Gauge(_ context.Context, _ time.Time, name string) (analysis.GaugeReading, error) {
	if !slices.Contains(s.gauges, name) {
		return analysis.GaugeReading{}, fmt.Errorf("gauge %s is not in the template", name)
	}
	var r analysis.GaugeReading
	for _, inst := range slices.Sorted(maps.Keys(s.series[name])) {
		r.Values = append(r.Values, s.series[name][inst]...)
		r.Instances++
	}
	return r, nil
}
