package lb

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkProxy compares GET requests sent straight to a backend with the
// same requests sent through the lb (two groups, weighted 50/50, two
// targets). ns/op of the "lb" case minus "direct" is the lb's overhead.
func BenchmarkProxy(b *testing.B) {
	backends := []*backend{}
	for _, id := range []string{"blue-0", "blue-1", "green-0", "green-1"} {
		backends = append(backends, newBackend(b, id))
	}
	direct := "http://" + backends[0].addr() + "/"

	b.Run("direct", func(b *testing.B) { runLoad(b, direct) })

	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 50, Targets: []Target{backends[0].target(), backends[1].target()}},
		Group{Name: "green", Weight: 50, Targets: []Target{backends[2].target(), backends[3].target()}})
	cfg.Health.Interval = Duration(time.Second) // keep checks out of the measurement
	h := startLB(b, cfg, Options{})
	for _, be := range backends {
		h.waitHealth(be.id, HealthHealthy)
	}
	b.Run("lb", func(b *testing.B) { runLoad(b, "http://"+h.ready.Listen+"/") })
}

func runLoad(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
