package lb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadyAndStatusDocuments(t *testing.T) {
	b := newBackend(t, "hello-blue-0")
	h := startLB(t, baseConfig(3, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}},
		Group{Name: "green", Weight: 0, Targets: []Target{}}), Options{})
	if h.ready.PID != os.Getpid() || h.ready.Generation != 3 || strings.HasSuffix(h.ready.Listen, ":0") || strings.HasSuffix(h.ready.Admin, ":0") {
		t.Fatalf("ready = %+v", h.ready)
	}
	h.waitHealth("hello-blue-0", HealthHealthy)
	if r := h.get("/"); r.code != 200 || r.group != "blue" || r.target != "hello-blue-0" || r.body != "hello-blue-0" {
		t.Fatalf("proxied = %+v", r)
	}

	resp, err := h.client.Get("http://" + h.ready.Admin + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	// The status document's keys are a contract with the provider.
	resp, err = h.client.Get("http://" + h.ready.Admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(raw), []string{"generation", "groups", "listen", "requests"}; !reflect.DeepEqual(got, want) {
		t.Errorf("status keys = %v, want %v", got, want)
	}
	groups := raw["groups"].([]any)
	g0 := groups[0].(map[string]any)
	if got, want := keys(g0), []string{"name", "targets", "weight"}; !reflect.DeepEqual(got, want) {
		t.Errorf("group keys = %v, want %v", got, want)
	}
	t0 := g0["targets"].([]any)[0].(map[string]any)
	if got, want := keys(t0), []string{"address", "consecutiveFail", "consecutiveOk", "health", "id", "inflight", "lastCheck", "lastError"}; !reflect.DeepEqual(got, want) {
		t.Errorf("target keys = %v, want %v", got, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, t0["lastCheck"].(string)); err != nil {
		t.Errorf("lastCheck: %v", err)
	}
	if green := groups[1].(map[string]any); green["targets"] == nil {
		t.Errorf("empty group's targets must be [], got null")
	}
	if got, want := keys(raw["requests"].(map[string]any)), []string{"failed", "total"}; !reflect.DeepEqual(got, want) {
		t.Errorf("requests keys = %v, want %v", got, want)
	}
	if raw["listen"] != h.ready.Listen {
		t.Errorf("status listen = %v, want %s", raw["listen"], h.ready.Listen)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestWeightsAndRoundRobin(t *testing.T) {
	b0, b1, g0 := newBackend(t, "blue-0"), newBackend(t, "blue-1"), newBackend(t, "green-0")
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 80, Targets: []Target{b0.target(), b1.target()}},
		Group{Name: "green", Weight: 20, Targets: []Target{g0.target()}})
	h := startLB(t, cfg, Options{Rand: rand.New(rand.NewPCG(1, 2))})
	for _, id := range []string{"blue-0", "blue-1", "green-0"} {
		h.waitHealth(id, HealthHealthy)
	}
	const n = 2000
	groups, targets := map[string]int{}, map[string]int{}
	for range n {
		r := h.get("/")
		if r.err != nil || r.code != 200 || r.body != r.target {
			t.Fatalf("request: %+v", r)
		}
		groups[r.group]++
		targets[r.target]++
	}
	// Expected 1600/400 with a standard deviation of about 18; the seeded
	// source makes the draw reproducible, the bound is still honest.
	if groups["blue"] < 1500 || groups["blue"] > 1700 || groups["blue"]+groups["green"] != n {
		t.Errorf("groups = %v, want about 1600/400", groups)
	}
	if d := targets["blue-0"] - targets["blue-1"]; d < -1 || d > 1 {
		t.Errorf("round robin within blue uneven: %v", targets)
	}
	if st := h.status(); st.Requests.Total != n || st.Requests.Failed != 0 {
		t.Errorf("requests = %+v", st.Requests)
	}
}

func TestInitialTargetsGetNoTrafficBeforePassing(t *testing.T) {
	b := newBackend(t, "blue-0")
	b.sick.Store(true)
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}}), Options{})
	waitFor(t, "failed checks", func() bool {
		ts, _ := h.target("blue-0")
		return ts.ConsecutiveFail >= 1
	})
	for range 20 {
		if r := h.get("/"); r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "no healthy target") {
			t.Fatalf("before passing: %+v", r)
		}
	}
	if b.hits.Load() != 0 {
		t.Fatalf("initial target got %d requests", b.hits.Load())
	}
	if st := h.status(); st.Requests.Failed != 20 {
		t.Errorf("failed = %d, want 20", st.Requests.Failed)
	}
	b.sick.Store(false)
	h.waitHealth("blue-0", HealthHealthy)
	if ts, _ := h.target("blue-0"); ts.ConsecutiveOK < 2 {
		t.Errorf("healthy after %d passes, threshold 2", ts.ConsecutiveOK)
	}
	if r := h.get("/"); r.code != 200 || r.target != "blue-0" {
		t.Fatalf("after passing: %+v", r)
	}
}

func TestReloadMovesAllTrafficWithoutFailures(t *testing.T) {
	a0, a1, b0, b1 := newBackend(t, "a-0"), newBackend(t, "a-1"), newBackend(t, "b-0"), newBackend(t, "b-1")
	before := baseConfig(1,
		Group{Name: "a", Weight: 100, Targets: []Target{a0.target(), a1.target()}},
		Group{Name: "b", Weight: 0, Targets: []Target{b0.target(), b1.target()}})
	h := startLB(t, before, Options{})
	for _, id := range []string{"a-0", "a-1", "b-0", "b-1"} {
		h.waitHealth(id, HealthHealthy)
	}

	const workers, perWorker = 8, 150
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []result
	for range workers {
		wg.Go(func() {
			for range perWorker {
				// POST with a body, so retries and draining keep bodies intact.
				resp, err := h.client.Post("http://"+h.ready.Listen+"/echo", "text/plain", strings.NewReader("payload"))
				r := result{err: err}
				if err == nil {
					var b []byte
					b, r.err = io.ReadAll(resp.Body)
					resp.Body.Close()
					r.code, r.body, r.group = resp.StatusCode, string(b), resp.Header.Get(HeaderGroup)
				}
				if r.err != nil || r.code != 200 || r.body != "payload" {
					mu.Lock()
					bad = append(bad, r)
					mu.Unlock()
				}
			}
		})
	}
	waitFor(t, "load under way", func() bool { return h.srv.total.Load() >= workers*perWorker/4 })
	after := before
	after.Generation = 2
	after.Groups = []Group{
		{Name: "a", Weight: 0, Targets: before.Groups[0].Targets},
		{Name: "b", Weight: 100, Targets: before.Groups[1].Targets},
	}
	h.writeConfig(after)
	code, body := h.reload()
	if code != 200 || strings.TrimSpace(body) != `{"generation":2,"drained":true}` {
		t.Fatalf("reload = %d %s", code, body)
	}
	aHits := a0.hits.Load() + a1.hits.Load()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d failed requests through the reload, first %+v", len(bad), bad[0])
	}
	if got := a0.hits.Load() + a1.hits.Load(); got != aHits {
		t.Errorf("group a got %d requests after the reload answered", got-aHits)
	}
	if b0.hits.Load()+b1.hits.Load() == 0 {
		t.Errorf("group b got no traffic")
	}
	st := h.status()
	if st.Generation != 2 || st.Requests.Failed != 0 || st.Requests.Total != workers*perWorker {
		t.Errorf("status = %+v", st)
	}
	// Targets that stayed kept their health state and counters.
	if ts, _ := h.target("b-0"); ts.Health != HealthHealthy || ts.ConsecutiveOK < 2 {
		t.Errorf("b-0 after reload = %+v", ts)
	}
}

func TestReloadWaitsForInflightRequest(t *testing.T) {
	slow, other := newBackend(t, "blue-0"), newBackend(t, "green-0")
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 100, Targets: []Target{slow.target()}},
		Group{Name: "green", Weight: 0, Targets: []Target{other.target()}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("green-0", HealthHealthy)

	slowDone := make(chan result, 1)
	go func() { slowDone <- h.get("/slow") }()
	<-slow.started

	cfg.Generation = 2
	cfg.Groups = []Group{{Name: "green", Weight: 100, Targets: []Target{other.target()}}}
	h.writeConfig(cfg)
	type rel struct {
		code int
		body string
	}
	reloaded := make(chan rel, 1)
	go func() {
		c, b := h.reload()
		reloaded <- rel{c, b}
	}()
	waitFor(t, "blue-0 draining", func() bool {
		ts, ok := h.target("blue-0")
		return ok && ts.Health == HealthDraining && ts.Inflight == 1
	})
	// New requests already go to green while blue-0 drains.
	if r := h.get("/"); r.code != 200 || r.target != "green-0" {
		t.Fatalf("during drain: %+v", r)
	}
	select {
	case r := <-reloaded:
		t.Fatalf("reload answered %v before the in-flight request finished", r)
	default:
	}
	slow.releaseSlow()
	if r := <-slowDone; r.code != 200 || r.target != "blue-0" || r.body != "blue-0" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if r := <-reloaded; r.code != 200 || strings.TrimSpace(r.body) != `{"generation":2,"drained":true}` {
		t.Fatalf("reload = %+v", r)
	}
	if _, ok := h.target("blue-0"); ok {
		t.Errorf("blue-0 still listed after draining")
	}
}

func TestReloadDrainTimeoutReportsNotDrained(t *testing.T) {
	slow, other := newBackend(t, "blue-0"), newBackend(t, "green-0")
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 100, Targets: []Target{slow.target()}},
		Group{Name: "green", Weight: 0, Targets: []Target{other.target()}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("green-0", HealthHealthy)
	slowDone := make(chan result, 1)
	go func() { slowDone <- h.get("/slow") }()
	<-slow.started

	cfg.Generation = 2
	cfg.DrainTimeout = Duration(50 * time.Millisecond)
	cfg.Groups[0].Weight, cfg.Groups[1].Weight = 0, 100 // weight to 0 drains too
	h.writeConfig(cfg)
	if code, body := h.reload(); code != 200 || strings.TrimSpace(body) != `{"generation":2,"drained":false}` {
		t.Fatalf("reload = %d %s", code, body)
	}
	// The request that outlived the drain timeout is not cut off.
	slow.releaseSlow()
	if r := <-slowDone; r.code != 200 || r.body != "blue-0" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if ts, _ := h.target("blue-0"); ts.Inflight != 0 || ts.Health != HealthHealthy {
		t.Errorf("blue-0 after its request = %+v", ts)
	}
}

func TestInvalidReloadChangesNothing(t *testing.T) {
	b := newBackend(t, "blue-0")
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)

	bad := cfg
	bad.Generation = 2
	bad.Groups = []Group{{Name: "blue", Weight: 150, Targets: []Target{b.target()}}}
	h.writeConfig(bad)
	code, body := h.reload()
	var e struct{ Error string }
	if code != 400 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "groups[0].weight: must be 0..100, got 150") {
		t.Fatalf("reload of bad weight = %d %s", code, body)
	}

	moved := cfg
	moved.Generation = 2
	moved.Listen = "127.0.0.1:1"
	h.writeConfig(moved)
	if code, body := h.reload(); code != 400 || !strings.Contains(body, "listen: cannot change on reload") {
		t.Fatalf("reload of new listen = %d %s", code, body)
	}

	if err := os.WriteFile(h.cfgPath, []byte("{\"generation\": 2,\n\"groups\": [}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := h.reload(); code != 400 || !strings.Contains(body, "lb.json:2: invalid JSON") {
		t.Fatalf("reload of broken JSON = %d %s", code, body)
	}

	st := h.status()
	if st.Generation != 1 || len(st.Groups) != 1 || st.Groups[0].Weight != 100 {
		t.Fatalf("status changed: %+v", st)
	}
	if r := h.get("/"); r.code != 200 || r.target != "blue-0" {
		t.Fatalf("traffic after refused reloads: %+v", r)
	}
}

func TestDialFailureIsRetriedOnAnotherTarget(t *testing.T) {
	addr0, child0 := startChild(t, "blue-0")
	addr1, _ := startChild(t, "blue-1")
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: addr0}, {ID: "blue-1", Address: addr1}}})
	// One pass makes a target healthy and the next check is an hour away, so
	// the dead target stays "healthy" and every other request dials it.
	cfg.Health.HealthyThreshold = 1
	cfg.Health.Interval = Duration(time.Hour)
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("blue-1", HealthHealthy)
	if r := h.get("/"); r.code != 200 {
		t.Fatalf("before kill: %+v", r)
	}

	if err := child0.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child0.Wait()
	for i := range 50 {
		if r := h.get("/"); r.code != 200 || r.target != "blue-1" || r.body != "blue-1" {
			t.Fatalf("request %d after kill: %+v", i, r)
		}
	}
	// A request body survives the failed dial and reaches the other target.
	for i := range 20 {
		want := fmt.Sprintf("payload-%d", i)
		resp, err := h.client.Post("http://"+h.ready.Listen+"/echo", "text/plain", strings.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want || resp.Header.Get("X-Backend") != "blue-1" {
			t.Fatalf("POST %d after kill: %d %q", i, resp.StatusCode, b)
		}
	}
	if st := h.status(); st.Requests.Failed != 0 {
		t.Errorf("failed = %d", st.Requests.Failed)
	}
	if n := strings.Count(h.logs.String(), "dial failed, retrying"); n < 30 {
		t.Errorf("expected about 25 retries after dials to the dead target, logged %d", n)
	}
}

func TestKilledTargetBecomesUnhealthy(t *testing.T) {
	addr0, child0 := startChild(t, "blue-0")
	addr1, _ := startChild(t, "blue-1")
	cfg := baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{{ID: "blue-0", Address: addr0}, {ID: "blue-1", Address: addr1}}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("blue-1", HealthHealthy)
	if err := child0.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child0.Wait()
	h.waitHealth("blue-0", HealthUnhealthy)
	ts, _ := h.target("blue-0")
	if ts.ConsecutiveFail < 2 || !strings.Contains(ts.LastError, "refused") {
		t.Errorf("blue-0 = %+v", ts)
	}
	for range 20 {
		if r := h.get("/"); r.code != 200 || r.target != "blue-1" {
			t.Fatalf("after unhealthy: %+v", r)
		}
	}
	if st := h.status(); st.Requests.Failed != 0 {
		t.Errorf("failed = %d", st.Requests.Failed)
	}
}

func TestCancelDrainsInflightRequests(t *testing.T) {
	b := newBackend(t, "blue-0")
	h := startLB(t, baseConfig(1, Group{Name: "blue", Weight: 100, Targets: []Target{b.target()}}), Options{})
	h.waitHealth("blue-0", HealthHealthy)
	slowDone := make(chan result, 1)
	go func() { slowDone <- h.get("/slow") }()
	<-b.started

	h.cancel()
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", h.ready.Listen)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-h.done:
		t.Fatalf("Run returned %v with a request in flight", err)
	default:
	}
	b.releaseSlow()
	if r := <-slowDone; r.code != 200 || r.body != "blue-0" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-h.done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	h.done <- nil // for the cleanup
}

func TestIdleConnectionsToRemovedTargetsAreClosed(t *testing.T) {
	blue, green := newBackend(t, "blue-0"), newBackend(t, "green-0")
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 100, Targets: []Target{blue.target()}},
		Group{Name: "green", Weight: 0, Targets: []Target{green.target()}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("green-0", HealthHealthy)
	for range 5 {
		if r := h.get("/"); r.code != 200 {
			t.Fatalf("request: %+v", r)
		}
	}
	if blue.conns.Load() == 0 {
		t.Fatal("expected a kept-alive connection from the lb to blue-0")
	}
	cfg.Generation = 2
	cfg.Groups = []Group{{Name: "green", Weight: 100, Targets: []Target{green.target()}}}
	h.writeConfig(cfg)
	if code, body := h.reload(); code != 200 {
		t.Fatalf("reload = %d %s", code, body)
	}
	// Health checks do not keep connections, so only the proxy's idle
	// connections were left; they must be closed now, not after the idle timeout.
	waitFor(t, "connections to blue-0 closed", func() bool { return blue.conns.Load() == 0 })
}

func TestRemovedTargetOutlivingDrainClosesItsConnections(t *testing.T) {
	slow, other := newBackend(t, "blue-0"), newBackend(t, "green-0")
	cfg := baseConfig(1,
		Group{Name: "blue", Weight: 100, Targets: []Target{slow.target()}},
		Group{Name: "green", Weight: 0, Targets: []Target{other.target()}})
	h := startLB(t, cfg, Options{})
	h.waitHealth("blue-0", HealthHealthy)
	h.waitHealth("green-0", HealthHealthy)
	slowDone := make(chan result, 1)
	go func() { slowDone <- h.get("/slow") }()
	<-slow.started

	cfg.Generation = 2
	cfg.DrainTimeout = Duration(50 * time.Millisecond)
	cfg.Groups = []Group{{Name: "green", Weight: 100, Targets: []Target{other.target()}}}
	h.writeConfig(cfg)
	if code, body := h.reload(); code != 200 || strings.TrimSpace(body) != `{"generation":2,"drained":false}` {
		t.Fatalf("reload = %d %s", code, body)
	}
	if ts, ok := h.target("blue-0"); !ok || ts.Health != HealthDraining || ts.Inflight != 1 {
		t.Fatalf("blue-0 after the drain timeout = %+v (listed %v)", ts, ok)
	}
	slow.releaseSlow()
	if r := <-slowDone; r.code != 200 || r.body != "blue-0" {
		t.Fatalf("in-flight request: %+v", r)
	}
	waitFor(t, "connections to blue-0 closed", func() bool { return slow.conns.Load() == 0 })
	if _, ok := h.target("blue-0"); ok {
		t.Errorf("blue-0 still listed after its last request")
	}
}

func TestRunEntryPoint(t *testing.T) {
	dir := t.TempDir()
	if err := Run(t.Context(), filepath.Join(dir, "missing.json"), filepath.Join(dir, "ready.json"), nil); err == nil ||
		!strings.Contains(err.Error(), "read lb config") {
		t.Fatalf("missing config: %v", err)
	}
	cfgPath, readyPath := filepath.Join(dir, "lb.json"), filepath.Join(dir, "ready.json")
	if err := os.WriteFile(cfgPath, []byte(briefExample), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfgPath, readyPath, nil) }()
	var ready Ready
	waitFor(t, "ready file", func() bool {
		b, err := os.ReadFile(readyPath)
		return err == nil && json.Unmarshal(b, &ready) == nil
	})
	if ready.Generation != 3 || ready.PID != os.Getpid() {
		t.Errorf("ready = %+v", ready)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
