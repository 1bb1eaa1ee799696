package collect

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// BenchmarkHostGatherAndWrite gathers the host collectors on the fixture /proc and writes
// the exposition.
func BenchmarkHostGatherAndWrite(b *testing.B) {
	cs := Host(HostOptions{ProcRoot: "testdata/proc", SysRoot: "testdata/sys", Statfs: func(string) (FSStats, error) { return FSStats{Size: 1}, nil }})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var fams []Family
		for _, c := range cs {
			fams, _ = c.Collect(context.Background(), fams)
		}
		fams, _ = Merge(fams)
		buf = AppendText(buf[:0], fams)
	}
}

// BenchmarkParseText parses node_exporter's real exposition with our parser and with
// Prometheus' expfmt (the reference, which the daemon does not link).
func BenchmarkParseText(b *testing.B) {
	text, err := os.ReadFile("testdata/node_exporter.prom")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := ParseText(bytes.NewReader(text)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expfmt", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := parseTextExpfmt(bytes.NewReader(text)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
