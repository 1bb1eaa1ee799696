package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkServeMetrics is one /metrics request against this machine's real /proc and
// /sys with the default configuration: the daemon's cost per scrape.
func BenchmarkServeMetrics(b *testing.B) {
	d, err := NewDaemon(context.Background(), DaemonOptions{Getenv: env("KILN_DATA_DIR", b.TempDir())})
	if err != nil {
		b.Fatal(err)
	}
	h := d.Handler()
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				if gz {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
				io.Copy(io.Discard, w.Body)
			}
		})
	}
}
