package metrics

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kiln-metrics.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigGood(t *testing.T) {
	p := writeConfig(t, `
listen: 127.0.0.1:${KILN_PORT_METRICS}
interval: 10s
exec:
  - name: disk
    command: [/usr/local/bin/check-disk, --all]
scrape:
  - name: app
    url: http://127.0.0.1:${PORT}/metrics
  - name: backup
    url: http://127.0.0.1:9301/metrics
    timeout: 2s
summary:
  target: app
  window: 2m
cloudwatch:
  enabled: true
  region: eu-west-1
  dimensions: {Service: "${KILN_SERVICE}"}
`)
	c, err := LoadConfig(p, env("KILN_PORT_METRICS", "9400", "PORT", "8080", "KILN_SERVICE", "web", "KILN_DATA_DIR", "/data"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9400" || c.Interval.D() != 10*time.Second || c.Scrape[0].URL != "http://127.0.0.1:8080/metrics" {
		t.Errorf("config = %+v", c)
	}
	if c.Exec[0].Timeout.D() != 10*time.Second || c.Scrape[0].Timeout.D() != 5*time.Second || c.Scrape[1].Timeout.D() != 2*time.Second {
		t.Errorf("timeouts not defaulted: %+v %+v", c.Exec, c.Scrape)
	}
	if c.Summary.Window.D() != 2*time.Minute || c.Summary.StatusFile != "/data/status.json" || c.Textfile.Dir != "/data/metrics.d" {
		t.Errorf("summary/textfile = %+v %+v", c.Summary, c.Textfile)
	}
	if !c.CloudWatch.Enabled || c.CloudWatch.Namespace != "Kiln" || c.CloudWatch.Dimensions["Service"] != "web" || c.CloudWatch.BufferSize != 20000 {
		t.Errorf("cloudwatch = %+v", c.CloudWatch)
	}
	if !c.Host.Enabled {
		t.Error("host collectors should stay enabled by default")
	}
}

func TestLoadConfigEmptyFileIsDefaults(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "# nothing\n"), env("PORT", "3000"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Summary.Target != "app" || c.Scrape[0].URL != "http://127.0.0.1:3000/metrics" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestLoadConfigErrorsArePositioned(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // each must appear in the error, with the file name in front
	}{
		{"unknown field", "listen: 127.0.0.1:1\nintervall: 5s\n", []string{":2: intervall: unknown field"}},
		{"unknown nested field", "scrape:\n  - name: a\n    url: http://x/\n    tiemout: 1s\n", []string{":4: scrape[0].tiemout: unknown field"}},
		{"bad duration", "interval: 10 seconds\n", []string{`:1: interval: "10 seconds" is not a duration`}},
		{"bad nested duration", "summary:\n  window: soon\n", []string{`:2: summary.window: "soon" is not a duration`}},
		{"wrong type", "textfile:\n  max_bytes: lots\n", []string{":2: textfile.max_bytes: cannot unmarshal"}},
		{"not a mapping", "host: [1, 2]\n", []string{":1: host: want a mapping"}},
		{"unset env", "listen: 127.0.0.1:${NOPE}\n", []string{":1: listen: environment variable NOPE is not set"}},
		{"syntax", "listen: [\n", []string{"kiln-metrics.yaml"}},
		{"several at once", `
interval: 500ms
exec:
  - name: a
    command: []
  - name: a
    command: [x]
    timeout: 1h
scrape:
  - name: app
    url: ftp://nope
summary:
  target: other
cloudwatch:
  enabled: true
  namespace: AWS/EC2
  buffer_size: 5
  storage_resolution: 5
  include: ["("]
`, []string{
			":2: interval: must be at least 1s",
			":5: exec[0].command: is required",
			`:6: exec[1].name: "a" is used by another probe`,
			":8: exec[1].timeout: must be positive and at most the interval",
			`:11: scrape[0].url: "ftp://nope" is not an http(s) URL`,
			`:13: summary.target: "other" is not the name of a scrape target`,
			":16: cloudwatch.namespace: namespaces starting with AWS/ are reserved",
			":17: cloudwatch.buffer_size: must be between 1000",
			":18: cloudwatch.storage_resolution: must be 1 or 60",
			":19: cloudwatch.include[0]: bad regular expression",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.text)
			_, err := LoadConfig(p, env())
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
				if strings.HasPrefix(w, ":") && !strings.Contains(err.Error(), p+w) {
					t.Errorf("error\n%v\nshould name the file before %q", err, w)
				}
			}
		})
	}
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestRunCheckAndExitCodes(t *testing.T) {
	good := writeConfig(t, "interval: 5s\n")
	bad := writeConfig(t, "interval: 5 s\nlisten: nope\n")
	var out safeBuffer
	if code := run(t.Context(), []string{"--config", good, "--check"}, &out, env()); code != ExitOK || !strings.Contains(out.String(), "configuration ok") {
		t.Errorf("--check on a good file: exit %d, output %q", code, out.String())
	}
	out = safeBuffer{}
	if code := run(t.Context(), []string{"--config", bad, "--check"}, &out, env()); code != ExitUsage ||
		!strings.Contains(out.String(), bad+":1: interval") || !strings.Contains(out.String(), bad+":2: listen") {
		t.Errorf("--check on a bad file: exit %d, output %q", code, out.String())
	}
	out = safeBuffer{}
	if code := run(t.Context(), []string{"--config", bad}, &out, env()); code != ExitUsage {
		t.Errorf("starting on a bad file: exit %d, want %d", code, ExitUsage)
	}
	if code := run(t.Context(), []string{"--bogus"}, &out, env()); code != ExitUsage {
		t.Errorf("unknown flag: exit %d", code)
	}
	// The image's own configuration is found without flags.
	img := t.TempDir()
	os.MkdirAll(filepath.Join(img, "etc"), 0o755)
	os.WriteFile(filepath.Join(img, ImageConfigPath), []byte("intervall: 1s\n"), 0o644)
	out = safeBuffer{}
	if code := run(t.Context(), []string{"--check"}, &out, env("KILN_IMAGE_DIR", img)); code != ExitUsage || !strings.Contains(out.String(), "intervall") {
		t.Errorf("the image configuration should be read: exit %d, output %q", code, out.String())
	}
}
