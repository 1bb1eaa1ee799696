// Package collect gathers metrics from the host (/proc and /sys), from a drop-in directory of
// Prometheus text files, from exec probes and from scrapes of local HTTP endpoints, and writes
// them in the Prometheus text exposition format (version 0.0.4).
//
// The model is deliberately flat (families of samples with string labels) so that a gather
// allocates little and the daemon's resident memory stays small: kiln-metrics runs on every
// instance for months.
package collect

import (
	"context"
	"slices"
	"strings"
)

// Type is a Prometheus metric type as written on a "# TYPE" line.
type Type string

// Metric types of the text exposition format.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
	Summary   Type = "summary"
	Untyped   Type = "untyped"
)

// Label is one name="value" pair of a sample.
type Label struct {
	Name, Value string // label name and (unescaped) value
}

// Sample is one line of the exposition: a full sample name (for histograms it carries the
// _bucket, _sum or _count suffix), its labels and its value.
type Sample struct {
	Name   string  // full sample name, e.g. http_request_duration_seconds_bucket
	Labels []Label // in exposition order
	Value  float64 // the sample value
}

// Label returns the value of the label called name, or "" when the sample has none.
func (s Sample) Label(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Family is a metric family: every sample that shares a base name, help text and type.
type Family struct {
	Name    string   // base name (no _bucket/_sum/_count suffix)
	Help    string   // unescaped HELP text
	Type    Type     // metric type
	Samples []Sample // every sample of the family
}

// Collector produces metric families. Collect appends what it gathered to fams and returns
// the extended slice; an error means the collector failed as a whole (partial results may
// still have been appended and are kept).
type Collector interface {
	// Name identifies the collector in kiln_metrics_collector_* self metrics and logs.
	Name() string
	// Collect gathers once; it must honour ctx's deadline.
	Collect(ctx context.Context, fams []Family) ([]Family, error)
}

// Merge sorts families by name and merges families that share a name, as the text format
// requires every sample of a family to be contiguous. When two families with the same name
// disagree on the type, the later one is dropped and its name is returned in dropped; a
// sample that repeats a series already merged in (same name and labels, e.g. two drop-in
// files exposing it) is dropped too, since Prometheus rejects duplicate series.
func Merge(fams []Family) (merged []Family, dropped []string) {
	slices.SortStableFunc(fams, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	out := fams[:0]
	for _, f := range fams {
		if n := len(out); n > 0 && out[n-1].Name == f.Name {
			if out[n-1].Type != f.Type {
				dropped = append(dropped, f.Name)
				continue
			}
			// Clip so the append never writes into a backing array another family shares.
			out[n-1].Samples = appendUnique(slices.Clip(out[n-1].Samples), f.Samples, &dropped)
			if out[n-1].Help == "" {
				out[n-1].Help = f.Help
			}
			continue
		}
		out = append(out, f)
	}
	return out, dropped
}

// appendUnique appends the samples of add whose series is not in dst yet. Merging is rare
// (one family from two sources), so the keys are only built here.
func appendUnique(dst, add []Sample, dups *[]string) []Sample {
	seen := make(map[string]bool, len(dst))
	for _, s := range dst {
		seen[seriesKey(s)] = true
	}
	for _, s := range add {
		k := seriesKey(s)
		if seen[k] {
			*dups = append(*dups, s.Name)
			continue
		}
		seen[k] = true
		dst = append(dst, s)
	}
	return dst
}

func seriesKey(s Sample) string {
	ls := slices.Clone(s.Labels)
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	b.WriteString(s.Name)
	for _, l := range ls {
		b.WriteString("\xff" + l.Name + "\xfe" + l.Value)
	}
	return b.String()
}
