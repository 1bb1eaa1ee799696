// Command demo is the service `kiln demo` deploys: every response carries the release
// version, /healthz can be broken on purpose (DEMO_BROKEN=1), and /metrics serves
// Prometheus text for the rollout's analysis and kiln-metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		slog.Error("demo", "err", err)
		os.Exit(1)
	}
}

func run() error {
	// kiln gives the address to bind in KILN_LISTEN (and HOST, PORT): only the load
	// balancer, on the loopback interface, should reach an instance.
	addr := os.Getenv("KILN_LISTEN")
	if addr == "" {
		host, port := os.Getenv("HOST"), os.Getenv("PORT")
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "8080"
		}
		addr = net.JoinHostPort(host, port)
	}
	version := os.Getenv("KILN_VERSION")
	instance := os.Getenv("KILN_INSTANCE")
	broken := os.Getenv("DEMO_BROKEN") == "1"
	// DEMO_FLAP=<period> makes the health check fail every other period: a flapping release.
	flap, _ := time.ParseDuration(os.Getenv("DEMO_FLAP"))
	started := time.Now()
	// DEMO_HEALTHY_AFTER delays the first passing health check: a slow starter.
	healthyAt := time.Now()
	if d, err := time.ParseDuration(os.Getenv("DEMO_HEALTHY_AFTER")); err == nil {
		healthyAt = healthyAt.Add(d)
	}
	// DEMO_ERROR_RATE answers that fraction of / requests with 500; DEMO_FAIL_AFTER starts
	// answering every / request with 500 once that long has passed (a release that goes
	// bad after promotion).
	errorRate, _ := strconv.ParseFloat(os.Getenv("DEMO_ERROR_RATE"), 64)
	failAt := time.Time{}
	if d, err := time.ParseDuration(os.Getenv("DEMO_FAIL_AFTER")); err == nil {
		failAt = time.Now().Add(d)
	}
	var served atomic.Uint64
	m := newMetrics()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Demo-Version", version)
		n := served.Add(1)
		if (!failAt.IsZero() && time.Now().After(failAt)) || (errorRate > 0 && float64(n%100) < errorRate*100) {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello from demo %s (%s)\n", version, instance)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if broken {
			http.Error(w, "broken on purpose (DEMO_BROKEN=1)", http.StatusInternalServerError)
			return
		}
		if flap > 0 && (time.Since(started)/flap)%2 == 1 {
			http.Error(w, "flapping on purpose (DEMO_FLAP)", http.StatusServiceUnavailable)
			return
		}
		if time.Now().Before(healthyAt) {
			http.Error(w, "still starting (DEMO_HEALTHY_AFTER)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", m.serve)

	srv := &http.Server{Handler: m.instrument(mux), ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Finish the requests in flight, then exit: kiln only stops an instance after the
	// load balancer stopped sending it traffic.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// metrics counts requests by status code and their latency, in Prometheus' conventional
// names: http_requests_total and http_request_duration_seconds.
type metrics struct {
	mu      sync.Mutex
	byCode  map[int]uint64
	buckets []float64
	counts  []uint64
	sum     float64
	count   uint64
}

func newMetrics() *metrics {
	b := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	return &metrics{byCode: map[int]uint64{}, buckets: b, counts: make([]uint64, len(b))}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" || r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		d := time.Since(start).Seconds()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.byCode[sw.code]++
		for i, le := range m.buckets {
			if d <= le {
				m.counts[i]++
			}
		}
		m.sum += d
		m.count++
	})
}

func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP http_requests_total Requests served, by status code.")
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	codes := make([]int, 0, len(m.byCode))
	for c := range m.byCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "http_requests_total{code=%q} %d\n", strconv.Itoa(c), m.byCode[c])
	}
	fmt.Fprintln(w, "# HELP http_request_duration_seconds Request latency.")
	fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
	for i, le := range m.buckets {
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'g', -1, 64), m.counts[i])
	}
	fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(w, "http_request_duration_seconds_sum %g\n", m.sum)
	fmt.Fprintf(w, "http_request_duration_seconds_count %d\n", m.count)
}
