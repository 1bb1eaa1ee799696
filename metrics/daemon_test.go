package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kilnhq/kiln/metrics/cloudwatch/cwfake"
	"github.com/kilnhq/kiln/metrics/summary"
)

// fakeApp serves Prometheus text like the demo app. Every scrape adds ten requests, one of
// them a 500, and ten latency observations (eight under 100 ms, two under 500 ms), so the
// summary's numbers are known whatever the timing.
type fakeApp struct {
	mu      sync.Mutex
	scrapes int
	srv     *httptest.Server
}

func newFakeApp(t *testing.T) *fakeApp {
	a := &fakeApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.scrapes++
		n := float64(a.scrapes * 10)
		a.mu.Unlock()
		fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %v\nhttp_requests_total{code=\"500\"} %v\n", n*0.9, n*0.1)
		fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"0.1\"} %v\nhttp_request_duration_seconds_bucket{le=\"0.5\"} %v\n", n*0.8, n)
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %v\nhttp_request_duration_seconds_sum 1\nhttp_request_duration_seconds_count %v\n", n, n)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// eventually polls cond (bounded) — the daemon's loop runs on real time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func parseMetrics(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// sample returns the value of the first sample of name whose labels include want.
func sample(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == want[i] && lp.GetValue() == want[i+1]
			}
			match = match && found
		}
		if match {
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			default:
				return m.GetUntyped().GetValue(), true
			}
		}
	}
	return 0, false
}

const daemonConfig = `
listen: %s
interval: 1s
shutdown_timeout: 5s
host:
  proc_root: collect/testdata/proc
  sys_root: collect/testdata/sys
  mount_ignore: "^/(run|mnt)"
textfile:
  dir: %s
scrape:
  - name: app
    url: %s/metrics
summary:
  target: app
  window: 1m
  status_file: %s
cloudwatch:
  enabled: true
  region: us-east-1
  endpoint: %s
  interval: 1s
  include: ["^node_load1$", "^kiln_app_error_ratio$", "^http_requests_total$"]
  dimensions: {Service: "${KILN_SERVICE}"}
%s`

// TestDaemonEndToEnd runs kiln-metrics as Main does, with real signals: it serves
// /metrics and /v1/summary from a fake app and fixture /proc, reloads on SIGHUP (keeping
// the old configuration when the new one is broken) and flushes to CloudWatch on SIGTERM.
func TestDaemonEndToEnd(t *testing.T) {
	dir := t.TempDir()
	app := newFakeApp(t)
	cw := cwfake.New(t)
	status := filepath.Join(dir, "status.json")
	os.WriteFile(status, []byte(`{"units":[{"name":"app","restarts":2},{"name":"kiln-metrics","restarts":0}]}`), 0o644)
	textdir := filepath.Join(dir, "metrics.d")
	os.Mkdir(textdir, 0o755)
	os.WriteFile(filepath.Join(textdir, "deploy.prom"), []byte("# TYPE deploy_marker gauge\ndeploy_marker 7\n"), 0o644)
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "kiln-metrics.yaml")
	writeCfg := func(extra string) {
		text := fmt.Sprintf(daemonConfig, addr, textdir, app.srv.URL, status, cw.URL(), extra)
		if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("")
	getenv := env("KILN_SERVICE", "web", "KILN_VERSION", "v7", "KILN_INSTANCE", "web-v7-1",
		"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY", "never-logged")

	var logs safeBuffer
	exit := make(chan int, 1)
	go func() { exit <- run(context.Background(), []string{"--config", cfgPath}, &logs, getenv) }()
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
			<-exit
		}
	}()
	base := "http://" + addr
	eventually(t, "the daemon to serve", func() bool { code, _ := get(t, base+"/healthz"); return code == 200 })

	// /v1/summary once at least three scrapes of the app are in the window.
	var doc summary.Document
	eventually(t, "a ready summary", func() bool {
		_, b := get(t, base+"/v1/summary")
		doc = summary.Document{}
		return json.Unmarshal(b, &doc) == nil && doc.Samples >= 3
	})
	if doc.Schema != summary.Schema || doc.Service != "web" || doc.Version != "v7" || !doc.Source.Up || doc.WindowSeconds != 60 {
		t.Errorf("summary header = %+v", doc)
	}
	if doc.Requests.ErrorRatio == nil || abs(*doc.Requests.ErrorRatio-0.1) > 1e-9 || doc.Requests.RatePerSecond <= 0 {
		t.Errorf("requests = %+v", doc.Requests)
	}
	if doc.Latency == nil || abs(doc.Latency.P50-0.0625) > 1e-9 || abs(doc.Latency.P90-0.3) > 1e-9 {
		t.Errorf("latency = %+v, want p50 0.0625 and p90 0.3", doc.Latency)
	}
	if doc.Restarts.Total != 2 || doc.Restarts.Units["app"] != 2 {
		t.Errorf("restarts = %+v", doc.Restarts)
	}
	if code, _ := get(t, base+"/v1/summary?window=2h"); code != http.StatusBadRequest {
		t.Errorf("a window past the retention should be refused, got %d", code)
	}

	// /metrics: host fixture, drop-in, the app's series (labelled), summary gauges.
	_, b := get(t, base+"/metrics")
	mfs := parseMetrics(t, b)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"node_load1", nil, 0.21},
		{"deploy_marker", nil, 7},
		{"kiln_app_error_ratio", nil, 0.1},
		{"kiln_app_restarts", nil, 2},
		{"kiln_metrics_scrape_up", []string{"target", "app"}, 1},
		{"kiln_metrics_collector_success", []string{"collector", "cpu"}, 1},
		{"kiln_metrics_collector_success", []string{"collector", "scrape:app"}, 1},
	} {
		if got, ok := sample(mfs, c.name, c.labels...); !ok || abs(got-c.want) > 1e-9 {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := sample(mfs, "http_requests_total", "code", "500", "kiln_target", "app"); !ok {
		t.Error("the app's series should be re-exposed with kiln_target=app")
	}
	if _, ok := sample(mfs, "kiln_app_latency_seconds", "quantile", "0.99"); !ok {
		t.Error("latency quantiles missing")
	}

	// SIGHUP with a new probe: it appears.
	writeCfg("exec:\n  - name: hello\n    command: [/bin/sh, -c, \"echo 'hello_probe 1'\"]\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "the reloaded probe", func() bool {
		_, b := get(t, base+"/metrics")
		v, ok := sample(parseMetrics(t, b), "hello_probe")
		return ok && v == 1
	})
	// A broken file is refused and the running configuration stays.
	os.WriteFile(cfgPath, []byte("interval: often\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "the failed reload to be counted", func() bool {
		_, b := get(t, base+"/metrics")
		v, _ := sample(parseMetrics(t, b), "kiln_metrics_config_reloads_total", "result", "failure")
		return v == 1
	})
	_, b = get(t, base+"/metrics")
	if _, ok := sample(parseMetrics(t, b), "hello_probe"); !ok {
		t.Error("after a failed reload the previous configuration should still run")
	}
	if !strings.Contains(logs.String(), cfgPath+":1: interval") {
		t.Errorf("the failed reload should be logged with file:line and field; logs:\n%s", logs.String())
	}

	// SIGTERM: exit 0 after flushing to CloudWatch.
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	stopped = true
	select {
	case code := <-exit:
		if code != ExitOK {
			t.Fatalf("exit code %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	var loads, ratios int
	for _, d := range cw.Accepted() {
		if d.Dims["Service"] != "web" {
			t.Errorf("datum without the Service dimension: %+v", d)
		}
		switch d.Name {
		case "node_load1":
			loads++
		case "kiln_app_error_ratio":
			ratios++
			if abs(d.Value-0.1) > 1e-9 {
				t.Errorf("published error ratio %v", d.Value)
			}
		}
	}
	if loads == 0 || ratios == 0 {
		t.Errorf("CloudWatch received %d node_load1 and %d kiln_app_error_ratio datums", loads, ratios)
	}
	if strings.Contains(logs.String(), "never-logged") {
		t.Error("the secret key appeared in the logs")
	}
}

func TestSummaryEndpointOffWithoutTarget(t *testing.T) {
	d, err := NewDaemon(context.Background(), DaemonOptions{Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	code, b := get(t, srv.URL+"/v1/summary")
	if code != http.StatusNotFound || !strings.Contains(string(b), "summary is off") {
		t.Errorf("got %d %s", code, b)
	}
}

func TestShutdownWithSinkDownIsBounded(t *testing.T) {
	cw := cwfake.New(t)
	cw.Respond(func(int) (int, string) { return http.StatusServiceUnavailable, "ServiceUnavailable" })
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
host: {proc_root: collect/testdata/proc, sys_root: collect/testdata/sys, mount_ignore: "."}
textfile: {dir: ""}
shutdown_timeout: 1s
cloudwatch: {enabled: true, region: us-east-1, endpoint: %s, include: ["^node_"]}
`, cw.URL())), 0o644)
	var logs safeBuffer
	d, err := NewDaemon(context.Background(), DaemonOptions{ConfigPath: cfg, Getenv: env("AWS_ACCESS_KEY_ID", "a", "AWS_SECRET_ACCESS_KEY", "b"),
		Log: newTestLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ln) }()
	eventually(t, "a failed send", func() bool { return len(cw.Requests()) > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return with the sink down")
	}
	if !strings.Contains(logs.String(), "CloudWatch flush incomplete at shutdown") {
		t.Errorf("an incomplete flush should be logged; logs:\n%s", logs.String())
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
