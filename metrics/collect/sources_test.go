package collect

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type staticCollector []Family

func (s staticCollector) Name() string { return "static" }
func (s staticCollector) Collect(_ context.Context, fams []Family) ([]Family, error) {
	return append(fams, s...), nil
}

func TestExpositionEscapingAndSpecialValues(t *testing.T) {
	odd := "quote\" backslash\\ newline\n end"
	mfs, _ := expose(t, staticCollector{
		{Name: "kiln_test_odd", Help: "help with \\ and\nnewline", Type: Gauge, Samples: []Sample{
			{"kiln_test_odd", []Label{{"v", odd}}, math.Inf(1)},
			{"kiln_test_odd", []Label{{"v", "neg"}}, math.Inf(-1)},
			{"kiln_test_odd", []Label{{"v", "small"}}, 1.5e-300},
		}},
		{Name: "kiln_test_odd", Type: Gauge, Samples: []Sample{{"kiln_test_odd", []Label{{"v", "merged"}}, 7}}},
	})
	if got := value(t, mfs, "kiln_test_odd", "v", odd); !math.IsInf(got, 1) {
		t.Errorf("odd label sample = %v, want +Inf", got)
	}
	if got := value(t, mfs, "kiln_test_odd", "v", "neg"); !math.IsInf(got, -1) {
		t.Errorf("neg = %v", got)
	}
	if got := value(t, mfs, "kiln_test_odd", "v", "small"); got != 1.5e-300 {
		t.Errorf("small = %v", got)
	}
	if got := value(t, mfs, "kiln_test_odd", "v", "merged"); got != 7 {
		t.Errorf("merged = %v", got)
	}
	if got := mfs["kiln_test_odd"].GetHelp(); got != "help with \\ and\nnewline" {
		t.Errorf("help = %q", got)
	}
}

func TestMergeReportsTypeConflicts(t *testing.T) {
	fams, conflicts := Merge([]Family{
		{Name: "b", Type: Gauge, Samples: []Sample{{"b", nil, 1}}},
		{Name: "a", Type: Counter, Samples: []Sample{{"a", nil, 1}}},
		{Name: "b", Type: Counter, Samples: []Sample{{"b", []Label{{"x", "y"}}, 2}}},
	})
	if len(fams) != 2 || fams[0].Name != "a" || fams[1].Name != "b" || len(fams[1].Samples) != 1 {
		t.Fatalf("merged = %+v", fams)
	}
	if len(conflicts) != 1 || conflicts[0] != "b" {
		t.Fatalf("conflicts = %v", conflicts)
	}
}

const histogramText = `# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 5
http_request_duration_seconds_bucket{le="0.5"} 9
http_request_duration_seconds_bucket{le="+Inf"} 10
http_request_duration_seconds_sum 2.5
http_request_duration_seconds_count 10
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_sum 4
rpc_seconds_count 20
# TYPE http_requests_total counter
http_requests_total{code="200"} 90
http_requests_total{code="500"} 10
`

func TestTextfileDropIns(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.prom"), histogramText)
	writeFile(t, filepath.Join(dir, "batch.prom"), "# TYPE batch_last_success_seconds gauge\nbatch_last_success_seconds{job=\"x\"} 1.7e9\n")
	writeFile(t, filepath.Join(dir, ".tmp.prom"), "half a fi")
	writeFile(t, filepath.Join(dir, "notes.txt"), "not metrics")
	writeFile(t, filepath.Join(dir, "broken.prom"), "bad metric{ 1\n")
	tf := &Textfile{Dir: dir}
	mfs, errs := expose(t, tf)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "broken.prom") {
		t.Fatalf("errors = %v, want one naming broken.prom", errs)
	}
	if got := value(t, mfs, "node_textfile_scrape_error"); got != 1 {
		t.Errorf("scrape_error = %v", got)
	}
	if got := value(t, mfs, "batch_last_success_seconds", "job", "x"); got != 1.7e9 {
		t.Errorf("batch = %v", got)
	}
	h := mfs["http_request_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 10 || h.GetSampleSum() != 2.5 || len(h.GetBucket()) < 2 || h.GetBucket()[1].GetCumulativeCount() != 9 {
		t.Errorf("histogram did not round-trip: %v", h)
	}
	if s := mfs["rpc_seconds"].GetMetric()[0].GetSummary(); s.GetSampleCount() != 20 || s.GetQuantile()[0].GetValue() != 0.2 {
		t.Errorf("summary did not round-trip: %v", s)
	}
	if !hasSample(mfs, "node_textfile_mtime_seconds", "file", "app.prom") || hasSample(mfs, "node_textfile_mtime_seconds", "file", ".tmp.prom") {
		t.Error("mtime should list app.prom and never the dot-file")
	}

	os.Remove(filepath.Join(dir, "broken.prom"))
	mfs, errs = expose(t, tf)
	if len(errs) != 0 || value(t, mfs, "node_textfile_scrape_error") != 0 {
		t.Errorf("after removing the broken file: errors %v", errs)
	}

	// Too big a file is refused, not read.
	tf.MaxBytes = 10
	if _, errs = expose(t, tf); len(errs) != 1 || !strings.Contains(errs[0].Error(), "limit") {
		t.Errorf("size limit: errors = %v", errs)
	}
	// A missing directory is simply empty.
	if _, errs = expose(t, &Textfile{Dir: filepath.Join(dir, "nope")}); len(errs) != 0 {
		t.Errorf("missing dir: %v", errs)
	}
}

func TestExecProbe(t *testing.T) {
	dir := t.TempDir()
	okScript := filepath.Join(dir, "ok.sh")
	writeFile(t, okScript, "#!/bin/sh\necho '# TYPE disk_check_ok gauge'\necho 'disk_check_ok{disk=\"sda\"} 1'\n")
	os.Chmod(okScript, 0o755)

	t.Run("success", func(t *testing.T) {
		mfs, errs := expose(t, &Exec{ProbeName: "disk", Command: []string{okScript}, Timeout: 10 * time.Second})
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		if value(t, mfs, "disk_check_ok", "disk", "sda") != 1 || value(t, mfs, "kiln_metrics_probe_success", "probe", "disk") != 1 ||
			value(t, mfs, "kiln_metrics_probe_exit_code", "probe", "disk") != 0 {
			t.Error("probe metrics wrong")
		}
	})
	t.Run("exit code", func(t *testing.T) {
		mfs, errs := expose(t, &Exec{ProbeName: "fail", Command: []string{"/bin/sh", "-c", "exit 3"}, Timeout: 10 * time.Second})
		if len(errs) != 1 {
			t.Fatalf("errors = %v", errs)
		}
		if value(t, mfs, "kiln_metrics_probe_exit_code", "probe", "fail") != 3 || value(t, mfs, "kiln_metrics_probe_success", "probe", "fail") != 0 {
			t.Error("exit code not reported")
		}
	})
	t.Run("timeout kills the process group", func(t *testing.T) {
		pidFile := filepath.Join(dir, "child.pid")
		// The probe starts a grandchild that would outlive a plain kill of the shell.
		script := fmt.Sprintf("sleep 300 & echo $! > %s; wait", pidFile)
		mfs, errs := expose(t, &Exec{ProbeName: "slow", Command: []string{"/bin/sh", "-c", script}, Timeout: 300 * time.Millisecond})
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "timed out") {
			t.Fatalf("errors = %v", errs)
		}
		if value(t, mfs, "kiln_metrics_probe_exit_code", "probe", "slow") != -1 {
			t.Error("timeout should report exit code -1")
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		// Once killed and reaped by init the pid is gone; poll briefly (bounded).
		deadline := time.Now().Add(5 * time.Second)
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if processAlive(pid) {
			t.Errorf("grandchild %d survived the probe timeout", pid)
		}
	})
	t.Run("output cut at the limit fails the probe", func(t *testing.T) {
		// Valid text past maxProbeOutput: the sample first, then comment lines, so that the
		// part kept would parse and only the cut makes it wrong.
		script := fmt.Sprintf("echo 'probe_value 1'; yes '# padding padding padding' | head -c %d", maxProbeOutput+4096)
		mfs, errs := expose(t, &Exec{ProbeName: "chatty", Command: []string{"/bin/sh", "-c", script}, Timeout: 10 * time.Second})
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "limit") {
			t.Errorf("errors = %v, want one naming the output limit", errs)
		}
		if value(t, mfs, "kiln_metrics_probe_success", "probe", "chatty") != 0 || mfs["probe_value"] != nil {
			t.Error("a probe whose output was cut must fail and expose none of it")
		}
	})
	t.Run("output of exactly the limit is fine", func(t *testing.T) {
		script := fmt.Sprintf("echo 'probe_value 1'; yes '# padding padding padding' | head -c %d", maxProbeOutput-len("probe_value 1\n"))
		mfs, errs := expose(t, &Exec{ProbeName: "full", Command: []string{"/bin/sh", "-c", script}, Timeout: 10 * time.Second})
		if len(errs) != 0 || value(t, mfs, "probe_value") != 1 || value(t, mfs, "kiln_metrics_probe_success", "probe", "full") != 1 {
			t.Errorf("errors = %v", errs)
		}
	})
	t.Run("bad output", func(t *testing.T) {
		mfs, errs := expose(t, &Exec{ProbeName: "garbage", Command: []string{"/bin/echo", "not { metrics"}, Timeout: 10 * time.Second})
		if len(errs) != 1 || value(t, mfs, "kiln_metrics_probe_success", "probe", "garbage") != 0 {
			t.Errorf("errors = %v", errs)
		}
	})
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) is dead for our purpose.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestScrape(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, histogramText)
	}))
	defer srv.Close()
	var rawCount int
	s := &Scrape{Target: "app", URL: srv.URL + "/metrics", Timeout: 5 * time.Second,
		Raw: func(_ time.Time, fams []Family) {
			for _, f := range fams {
				for _, smp := range f.Samples {
					if smp.Label("kiln_target") != "" {
						t.Error("raw families must not carry the added label")
					}
				}
			}
			rawCount++
		}}
	mfs, errs := expose(t, s)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if value(t, mfs, "http_requests_total", "code", "500", "kiln_target", "app") != 10 || value(t, mfs, "kiln_metrics_scrape_up", "target", "app") != 1 {
		t.Error("scrape values wrong")
	}
	if rawCount != 1 {
		t.Errorf("raw callback ran %d times", rawCount)
	}

	status = http.StatusInternalServerError
	mfs, errs = expose(t, s)
	if len(errs) != 1 || value(t, mfs, "kiln_metrics_scrape_up", "target", "app") != 0 || mfs["http_requests_total"] != nil {
		t.Errorf("failed scrape: errors %v", errs)
	}

	status = http.StatusOK
	s.MaxBytes = 100
	if _, errs = expose(t, s); len(errs) != 1 || !strings.Contains(errs[0].Error(), "limit") {
		t.Errorf("size limit: %v", errs)
	}
}

func TestScrapeErrorsRedactThePassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusForbidden)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://scraper:s3cret@", 1) + "/metrics"
	for _, tc := range []struct{ name, url string }{
		{"HTTP status", u},
		{"unreachable", "http://scraper:s3cret@127.0.0.1:1/metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := expose(t, &Scrape{Target: "app", URL: tc.url, Timeout: 5 * time.Second})
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one", errs)
			}
			if msg := errs[0].Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, "scraper:xxxxx@127.0.0.1") {
				t.Errorf("error %q should name the URL with its password redacted", msg)
			}
		})
	}
}

func TestMergeDropsDuplicateSeries(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.prom"), "# TYPE shared gauge\nshared{x=\"1\",y=\"2\"} 1\n")
	writeFile(t, filepath.Join(dir, "b.prom"), "# TYPE shared gauge\nshared{y=\"2\",x=\"1\"} 2\nshared{x=\"other\"} 3\n")
	fams, err := (&Textfile{Dir: dir}).Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fams, dropped := Merge(fams)
	if len(dropped) != 1 || dropped[0] != "shared" {
		t.Errorf("dropped = %v, want the duplicate shared sample", dropped)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(AppendText(nil, fams)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mfs["shared"].GetMetric()); n != 2 {
		t.Errorf("shared has %d series, want 2 (the duplicate from b.prom dropped)", n)
	}
	if v := value(t, mfs, "shared", "x", "1"); v != 1 {
		t.Errorf("the first file's sample should win, got %v", v)
	}
}

func TestTextfileTotalBound(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d.prom", i)), fmt.Sprintf("# TYPE m%d gauge\nm%d 1\n", i, i))
	}
	mfs, errs := expose(t, &Textfile{Dir: dir, MaxTotalBytes: 60})
	if len(mfs["m0"].GetMetric()) != 1 || len(mfs["m1"].GetMetric()) != 1 || mfs["m4"] != nil {
		t.Errorf("want the first files within 60 bytes and the rest skipped: %v", mfs)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "exceed 60 bytes") {
		t.Errorf("errors = %v", errs)
	}
}
