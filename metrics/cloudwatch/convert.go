package cloudwatch

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kilnhq/kiln/metrics/collect"
	"github.com/kilnhq/kiln/metrics/prommath"
)

// CloudWatch limits on one datum.
const (
	maxDimensions   = 30
	maxNameLen      = 255
	maxDimNameLen   = 255
	maxDimValueLen  = 1024
	maxDatumsPerReq = 1000
	// maxRequestBytes keeps a request's encoded body under PutMetricData's 1 MB limit
	// (counted before compression), with room for the namespace and framing.
	maxRequestBytes = 1_000_000 - 4096
)

// converter turns gathered families into datums. Gauges are published as they are;
// counters (and histogram/summary _count, _sum and _bucket series) as the increase since the
// previous conversion, which is what a CloudWatch Sum statistic expects.
type converter struct {
	include    []*regexp.Regexp
	dims       []Dim
	resolution int32
	prev       map[string]float64
	// series interns each series' name and dimensions, so that the datums of one series
	// queued over many intervals share them: a full buffer then costs one ring slot per
	// datum, not a fresh dimension slice and label strings each.
	series map[string]seriesID
}

type seriesID struct {
	name string
	dims []Dim
}

func (c *converter) wanted(name string) bool {
	for _, re := range c.include {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// datums converts fams; prev only keeps the series seen in this call, so it never grows
// past the current number of published series.
func (c *converter) datums(at time.Time, fams []collect.Family, out []Datum) []Datum {
	next := make(map[string]float64, len(c.prev))
	series := make(map[string]seriesID, len(c.series))
	var key strings.Builder
	for _, f := range fams {
		for _, s := range f.Samples {
			if !c.wanted(s.Name) {
				continue
			}
			key.Reset()
			key.WriteString(s.Name)
			for _, l := range s.Labels {
				key.WriteString("\xff" + l.Name + "\xfe" + l.Value)
			}
			k := key.String()
			id, ok := c.series[k]
			if !ok {
				id = seriesID{name: strings.Clone(truncate(s.Name, maxNameLen)), dims: c.dimsFor(s.Labels)}
			}
			series[k] = id
			cumulative := f.Type == collect.Counter ||
				(f.Type == collect.Histogram || f.Type == collect.Summary) && s.Name != f.Name
			v := s.Value
			if cumulative {
				next[k] = v
				last, seen := c.prev[k]
				if !seen {
					continue // the first observation only sets the baseline
				}
				v = prommath.Increase(last, v) // across a reset too
			}
			if v, ok = cloudWatchValue(v); !ok {
				continue // CloudWatch rejects it and would fail the whole batch
			}
			out = append(out, Datum{Name: id.name, Dims: id.dims, Value: v,
				Unit: unitFor(s.Name, cumulative), At: at, Resolution: c.resolution})
		}
	}
	c.prev, c.series = next, series
	return out
}

// CloudWatch accepts values whose magnitude is 0 or within [2^-260, 2^360].
var (
	maxValue = math.Ldexp(1, 360)
	minValue = math.Ldexp(1, -260)
)

// cloudWatchValue makes v acceptable to CloudWatch: values too small to represent become
// 0; NaN, infinities and values too large are refused (ok false).
func cloudWatchValue(v float64) (float64, bool) {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || a > maxValue:
		return 0, false
	case a != 0 && a < minValue:
		return 0, true
	}
	return v, true
}

func (c *converter) dimsFor(labels []collect.Label) []Dim {
	dims := make([]Dim, 0, len(c.dims)+len(labels))
	dims = append(dims, c.dims...)
	for _, l := range labels {
		if l.Value == "" || len(dims) == maxDimensions {
			continue
		}
		// Clone: the label strings may pin a whole scraped line or response.
		dims = append(dims, Dim{strings.Clone(truncate(l.Name, maxDimNameLen)), strings.Clone(truncate(l.Value, maxDimValueLen))})
	}
	slices.SortFunc(dims, func(a, b Dim) int { return strings.Compare(a.Name, b.Name) })
	return dims
}

func unitFor(name string, cumulative bool) string {
	base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_total"), "_sum"), "_count")
	switch {
	case strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_bucket"):
		return "Count"
	case strings.HasSuffix(base, "_bytes"):
		return "Bytes"
	case strings.HasSuffix(base, "_seconds"):
		return "Seconds"
	case cumulative:
		return "Count"
	}
	return "None"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// estimateSize is a conservative estimate of a datum's CBOR encoding in a request body.
func estimateSize(d Datum) int {
	n := 160 + len(d.Name)
	for _, dim := range d.Dims {
		n += 32 + len(dim.Name) + len(dim.Value)
	}
	return n
}
