package cloudwatch

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/metrics/collect"
)

// BenchmarkAddFullBuffer queues datums into a full buffer (the sink-down steady state:
// every add drops the oldest).
func BenchmarkAddFullBuffer(b *testing.B) {
	p := New(Options{Namespace: "Kiln", BufferSize: 10_000})
	ds := datums(600, 0)
	p.Add(datums(10_000, 0)...)
	b.ReportAllocs()
	for b.Loop() {
		p.Add(ds...)
	}
}

// BenchmarkPublish converts a gather (every sample included) into datums and queues them.
func BenchmarkPublish(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("# TYPE node_cpu_seconds_total counter\n")
	for cpu := range 16 {
		for _, mode := range []string{"user", "system", "idle", "iowait"} {
			sb.WriteString("node_cpu_seconds_total{cpu=\"" + string(rune('a'+cpu)) + "\",mode=\"" + mode + "\"} 12345.6\n")
		}
	}
	sb.WriteString("# TYPE node_load1 gauge\nnode_load1 0.5\n")
	fams, err := collect.ParseText(strings.NewReader(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	p := New(Options{Namespace: "Kiln", BufferSize: 10_000, Include: []*regexp.Regexp{regexp.MustCompile(".")},
		Dimensions: map[string]string{"Service": "web", "Instance": "i-1"}})
	b.ReportAllocs()
	for b.Loop() {
		p.Publish(t0, fams)
	}
}
