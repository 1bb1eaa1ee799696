package lb

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdleConnectionClosedByTheTargetIsNotUsed(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			hits.Add(1)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	// The app drops keep-alive connections quickly, as many frameworks do.
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: srv.Listener.Addr().String()}}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	for i := range 10 {
		if r := h.get("/"); r.code != 200 || r.body != "ok" {
			t.Fatalf("request %d: %+v", i, r)
		}
		time.Sleep(60 * time.Millisecond) // the target closes the pooled connection meanwhile
	}
	if n := hits.Load(); n != 10 {
		t.Errorf("the target saw %d requests, want 10", n)
	}
	if st := h.status(); st.Requests.Failed != 0 {
		t.Errorf("failed = %d", st.Requests.Failed)
	}
}

func TestAnswerBeforeTheWholeBodyReachesTheClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		// Refuse the upload without reading it.
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	t.Cleanup(srv.Close)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: srv.Listener.Addr().String()}}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	body := strings.NewReader(strings.Repeat("x", 8<<20))
	resp, err := h.client.Post("http://"+h.ready.Listen+"/upload", "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "too large") {
		t.Fatalf("answer = %d %q, want the target's 413", resp.StatusCode, b)
	}
	waitFor(t, "request released", func() bool {
		ts, _ := h.target("blue-0")
		return ts.Inflight == 0
	})
	if r := h.get("/"); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("next request: %+v", r)
	}
}

func TestConnectionIsReusedAfterARequestDeadlinePassed(t *testing.T) {
	var dialed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: srv.Listener.Addr().String()}}})
	cfg.Health.HealthyThreshold, cfg.Health.Interval = 1, Duration(time.Hour) // one check, on its own connection
	cfg.Proxy.RequestTimeout = Duration(50 * time.Millisecond)
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	for i := range 3 {
		if r := h.get("/"); r.code != 200 {
			t.Fatalf("request %d: %+v", i, r)
		}
		time.Sleep(100 * time.Millisecond) // past the request's deadline while the connection idles
	}
	if n := dialed.Load(); n != 2 {
		t.Errorf("the target accepted %d connections, want 2 (the health check's and one reused for every request)", n)
	}
}
