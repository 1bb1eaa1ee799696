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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkPick measures the routing decision alone (weighted group choice
// and round robin over healthy targets, plus the in-flight accounting), the
// part of the lb's overhead that does not depend on the network.
func BenchmarkPick(b *testing.B) {
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 80, Targets: []Target{{ID: "b0", Address: "127.0.0.1:1"}, {ID: "b1", Address: "127.0.0.1:2"}}},
		Group{Name: "green", Weight: 20, Targets: []Target{{ID: "g0", Address: "127.0.0.1:3"}, {ID: "g1", Address: "127.0.0.1:4"}}})
	s := &Server{}
	tb, _, _ := buildTable(&cfg, nil)
	for _, t := range tb.targets {
		t.healthyFlag.Store(true)
	}
	s.table.Store(tb)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t, _ := s.acquire(nil)
			t.inflight.Add(-1)
		}
	})
}
