package manifests_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/manifests"
)

// withAnalysis is base with issue 3's rollout steps and analysis templates. Table cases edit it
// with editA; line numbers in their expectations refer to it.
var withAnalysis = strings.Replace(base, "  drainTimeout: 15s\n", `  drainTimeout: 15s
  steps:
    - weight: 10
      pause: 30s
      analysis: errors
    - weight: 50
      pause: indefinite
    - weight: 100
  prePromotionAnalysis: smoke
  postPromotionAnalysis: errors
  scaleDownDelay: 1m
  abortScaleDownDelay: 5s
`, 1) + `analysis:
  errors:
    interval: 10s
    count: 6
    failureLimit: 1
    consecutiveSuccessLimit: 3
    inconclusiveLimit: 2
    metrics:
      - name: error-ratio
        errorRatio: {max: 0.01, window: 30s, minRequests: 20}
      - name: p99
        latency: {quantile: 0.99, max: 250ms, window: 30s, minRequests: 20}
      - name: queue
        metric: {name: queue_depth, max: 100, aggregate: sum}
  smoke:
    consecutiveSuccessLimit: 2
    metrics:
      - name: up
        metric: {name: up, min: 1}
`

func editA(t *testing.T, pairs ...string) string {
	t.Helper()
	s := withAnalysis
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("editA: %q occurs %d times", pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func ptr(f float64) *float64 { return &f }

func TestParseRolloutAndAnalysis(t *testing.T) {
	m, err := manifests.Parse("kiln.yaml", []byte(withAnalysis), testCatalog)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantRollout := manifests.Rollout{
		Strategy: "blue-green", ProgressDeadline: 10 * time.Minute, DrainTimeout: 15 * time.Second,
		Steps: []manifests.Step{
			{Weight: 10, Pause: 30 * time.Second, Analysis: "errors"},
			{Weight: 50, Indefinite: true},
			{Weight: 100},
		},
		PrePromotionAnalysis: "smoke", PostPromotionAnalysis: "errors",
		ScaleDownDelay: time.Minute, AbortScaleDownDelay: 5 * time.Second,
	}
	if !reflect.DeepEqual(m.Rollout, wantRollout) {
		t.Errorf("rollout\n got %+v\nwant %+v", m.Rollout, wantRollout)
	}
	wantAnalysis := map[string]analysis.Template{
		"errors": {
			Interval: 10 * time.Second, Count: 6, FailureLimit: 1, ConsecutiveSuccessLimit: 3, InconclusiveLimit: 2,
			Metrics: []analysis.Metric{
				{Name: "error-ratio", ErrorRatio: &analysis.ErrorRatio{Max: 0.01, Window: 30 * time.Second, MinRequests: 20}},
				{Name: "p99", Latency: &analysis.Latency{Quantile: 0.99, Max: 250 * time.Millisecond, Window: 30 * time.Second, MinRequests: 20}},
				{Name: "queue", Gauge: &analysis.Gauge{Name: "queue_depth", Max: ptr(100), Aggregate: analysis.AggregateSum}},
			},
		},
		"smoke": {
			Interval: 10 * time.Second, ConsecutiveSuccessLimit: 2, InconclusiveLimit: 1,
			Metrics: []analysis.Metric{{Name: "up", Gauge: &analysis.Gauge{Name: "up", Min: ptr(1), Aggregate: analysis.AggregateMax}}},
		},
	}
	if !reflect.DeepEqual(m.Analysis, wantAnalysis) {
		t.Errorf("analysis\n got %+v\nwant %+v", m.Analysis, wantAnalysis)
	}
	for name, tmpl := range m.Analysis {
		if err := tmpl.Validate(); err != nil {
			t.Errorf("template %s does not validate: %v", name, err)
		}
	}
}

func TestParseAnalysisAccepts(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		check func(*manifests.Manifest) bool
	}{
		{"window defaults to a minute", editA(t, "max: 0.01, window: 30s, minRequests: 20", "max: 0.01"),
			func(m *manifests.Manifest) bool {
				e := m.Analysis["errors"].Metrics[0].ErrorRatio
				return e.Window == analysis.DefaultWindow && e.MinRequests == 0
			}},
		{"default window grows with a long interval", editA(t, "interval: 10s", "interval: 2m", ", window: 30s, minRequests: 20}\n      - name: p99\n        latency: {quantile: 0.99, max: 250ms, window: 30s, minRequests: 20}", "}\n      - name: p99\n        latency: {quantile: 0.99, max: 250ms}"),
			func(m *manifests.Manifest) bool {
				return m.Analysis["errors"].Metrics[0].ErrorRatio.Window == 2*time.Minute && m.Analysis["errors"].Metrics[1].Latency.Window == 2*time.Minute
			}},
		{"window equal to interval", editA(t, "max: 0.01, window: 30s", "max: 0.01, window: 10s"),
			func(m *manifests.Manifest) bool {
				return m.Analysis["errors"].Metrics[0].ErrorRatio.Window == 10*time.Second
			}},
		{"max 0 and 1 as integers", editA(t, "max: 0.01", "max: 0", "max: 100, aggregate: sum", "max: 1, min: -3.5, aggregate: avg"),
			func(m *manifests.Manifest) bool {
				g := m.Analysis["errors"].Metrics[2].Gauge
				return m.Analysis["errors"].Metrics[0].ErrorRatio.Max == 0 && *g.Max == 1 && *g.Min == -3.5 && g.Aggregate == analysis.AggregateAvg
			}},
		{"single step", editA(t, "    - weight: 10\n      pause: 30s\n      analysis: errors\n    - weight: 50\n      pause: indefinite\n", ""),
			func(m *manifests.Manifest) bool {
				return reflect.DeepEqual(m.Rollout.Steps, []manifests.Step{{Weight: 100}})
			}},
		{"pause on the last step", editA(t, "    - weight: 100\n", "    - weight: 100\n      pause: 1h\n"),
			func(m *manifests.Manifest) bool { return m.Rollout.Steps[2].Pause == time.Hour }},
		{"zero delays", editA(t, "scaleDownDelay: 1m", "scaleDownDelay: 0s", "abortScaleDownDelay: 5s", "abortScaleDownDelay: 0s"),
			func(m *manifests.Manifest) bool {
				return m.Rollout.ScaleDownDelay == 0 && m.Rollout.AbortScaleDownDelay == 0
			}},
		{"empty analysis section", editA(t, "  prePromotionAnalysis: smoke\n  postPromotionAnalysis: errors\n", "", "      analysis: errors\n", "", withAnalysis[strings.Index(withAnalysis, "analysis:\n  errors:"):], "analysis: {}\n"),
			func(m *manifests.Manifest) bool { return m.Analysis != nil && len(m.Analysis) == 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifests.Parse("kiln.yaml", []byte(tc.text), testCatalog)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tc.check(m) {
				t.Errorf("unexpected manifest: rollout %+v analysis %+v", m.Rollout, m.Analysis)
			}
			for name, tmpl := range m.Analysis {
				if err := tmpl.Validate(); err != nil {
					t.Errorf("template %s does not validate: %v", name, err)
				}
			}
		})
	}
}

// TestParseAnalysisRejects has one case per rule of the rollout steps and analysis templates.
func TestParseAnalysisRejects(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"weight 0", editA(t, "weight: 10\n", "weight: 0\n"), []string{"kiln.yaml:25:15: rollout.steps[0].weight: must be between 1 and 100, got 0"}},
		{"weights not increasing", editA(t, "weight: 50", "weight: 10"), []string{"kiln.yaml:28:15: rollout.steps[1].weight: weight 10 is not greater than the previous step's 10"}},
		{"last weight not 100", editA(t, "    - weight: 100\n", ""), []string{"kiln.yaml:28:15: rollout.steps[1].weight: the last step has weight 50; it must be 100"}},
		{"missing weight", editA(t, "    - weight: 100\n", "    - pause: 1s\n"), []string{"kiln.yaml:30:7: rollout.steps[2].weight: required field is missing"}},
		{"empty steps", editA(t, "  steps:\n    - weight: 10\n      pause: 30s\n      analysis: errors\n    - weight: 50\n      pause: indefinite\n    - weight: 100\n", "  steps: []\n"),
			[]string{"kiln.yaml:24:10: rollout.steps: at least one step is required"}},
		{"steps a mapping", editA(t, "  steps:\n    - weight: 10\n      pause: 30s\n      analysis: errors\n    - weight: 50\n      pause: indefinite\n    - weight: 100\n", "  steps: {weight: 100}\n"),
			[]string{"kiln.yaml:24:10: rollout.steps: expected a list, got a mapping"}},
		{"bad pause", editA(t, "pause: 30s", "pause: forever"), []string{`kiln.yaml:26:14: rollout.steps[0].pause: invalid pause "forever" (write a Go duration > 0 such as 30s or 5m, or indefinite`}},
		{"zero pause", editA(t, "pause: 30s", "pause: 0s"), []string{`rollout.steps[0].pause: invalid pause "0s"`}},
		{"undefined step analysis", editA(t, "analysis: errors\n    - weight: 50", "analysis: errros\n    - weight: 50"),
			[]string{`kiln.yaml:27:17: rollout.steps[0].analysis: undefined analysis template "errros" (did you mean "errors"?); defined: errors, smoke`}},
		{"undefined pre-promotion analysis", editA(t, "prePromotionAnalysis: smoke", "prePromotionAnalysis: canary"),
			[]string{`kiln.yaml:31:25: rollout.prePromotionAnalysis: undefined analysis template "canary"; defined: errors, smoke`}},
		{"reference without analysis section", edit(t, "  drainTimeout: 15s\n", "  drainTimeout: 15s\n  postPromotionAnalysis: errors\n"),
			[]string{`kiln.yaml:24:26: rollout.postPromotionAnalysis: undefined analysis template "errors"; define it under the top-level analysis: section`}},
		{"negative scaleDownDelay", editA(t, "scaleDownDelay: 1m", "scaleDownDelay: -1m"), []string{"kiln.yaml:33:19: rollout.scaleDownDelay: must not be negative, got -1m0s"}},
		{"bad abortScaleDownDelay", editA(t, "abortScaleDownDelay: 5s", "abortScaleDownDelay: 5"), []string{`kiln.yaml:34:24: rollout.abortScaleDownDelay: invalid duration "5"`}},
		{"analysis a list", editA(t, withAnalysis[strings.Index(withAnalysis, "analysis:\n  errors:"):], "analysis: [errors]\n"),
			[]string{"analysis: expected a mapping, got a list"}},
		{"bad template name", editA(t, "  smoke:\n", "  Smoke:\n", "prePromotionAnalysis: smoke", "prePromotionAnalysis: Smoke"),
			[]string{`kiln.yaml:54:3: analysis.Smoke: invalid template name "Smoke"`}},
		{"zero interval", editA(t, "interval: 10s", "interval: 0s"), []string{"kiln.yaml:42:15: analysis.errors.interval: must be greater than 0, got 0s"}},
		{"negative count", editA(t, "count: 6", "count: -1"), []string{"kiln.yaml:43:12: analysis.errors.count: must be at least 0, got -1"}},
		{"neither count nor consecutiveSuccessLimit", editA(t, "    count: 6\n", "", "consecutiveSuccessLimit: 3", "consecutiveSuccessLimit: 0"),
			[]string{"kiln.yaml:44:30: analysis.errors: set count (measurements to take) or consecutiveSuccessLimit"}},
		{"inconclusiveLimit 0", editA(t, "inconclusiveLimit: 2", "inconclusiveLimit: 0"), []string{"kiln.yaml:46:24: analysis.errors.inconclusiveLimit: must be at least 1, got 0"}},
		{"missing metrics", editA(t, "    metrics:\n      - name: up\n        metric: {name: up, min: 1}\n", ""), []string{"kiln.yaml:55:5: analysis.smoke.metrics: required field is missing"}},
		{"no metrics", editA(t, "    metrics:\n      - name: up\n        metric: {name: up, min: 1}\n", "    metrics: []\n"), []string{"kiln.yaml:56:14: analysis.smoke.metrics: at least one metric is required"}},
		{"duplicate metric name", editA(t, "name: p99", "name: queue"), []string{`kiln.yaml:52:15: analysis.errors.metrics[2].name: duplicate metric name "queue" (first used on line 50)`}},
		{"metric name with capitals", editA(t, "name: p99", "name: P99"), []string{`kiln.yaml:50:15: analysis.errors.metrics[1].name: invalid metric name "P99"`}},
		{"no kind", editA(t, "        metric: {name: up, min: 1}\n", ""), []string{"kiln.yaml:57:9: analysis.smoke.metrics[0]: set one of errorRatio, latency or metric"}},
		{"two kinds", editA(t, "        metric: {name: up, min: 1}\n", "        metric: {name: up, min: 1}\n        errorRatio: {max: 0.1}\n"),
			[]string{"kiln.yaml:58:9: analysis.smoke.metrics[0]: set only one of errorRatio, latency or metric (found errorRatio and metric)"}},
		{"ratio over 1", editA(t, "max: 0.01", "max: 5"), []string{"kiln.yaml:49:27: analysis.errors.metrics[0].errorRatio.max: must be a ratio between 0 and 1 (0.01 is 1%), got 5"}},
		{"ratio as text", editA(t, "max: 0.01", "max: 1%"), []string{`analysis.errors.metrics[0].errorRatio.max: expected a finite number, got the string "1%"`}},
		{"ratio infinite", editA(t, "max: 0.01", "max: .inf"), []string{"errorRatio.max: expected a finite number, got the number .inf"}},
		{"missing ratio max", editA(t, "max: 0.01, ", ""), []string{"kiln.yaml:49:21: analysis.errors.metrics[0].errorRatio.max: required field is missing"}},
		{"window shorter than interval", editA(t, "max: 0.01, window: 30s", "max: 0.01, window: 5s"),
			[]string{"kiln.yaml:49:41: analysis.errors.metrics[0].errorRatio.window: window 5s is shorter than the template's interval 10s"}},
		{"negative minRequests", editA(t, "max: 0.01, window: 30s, minRequests: 20", "max: 0.01, window: 30s, minRequests: -2"), []string{"errorRatio.minRequests: must be at least 0, got -2"}},
		{"quantile 1", editA(t, "quantile: 0.99", "quantile: 1"), []string{"kiln.yaml:51:29: analysis.errors.metrics[1].latency.quantile: must be between 0 and 1, exclusive"}},
		{"latency max as a number", editA(t, "max: 250ms", "max: 0.25"), []string{`kiln.yaml:51:40: analysis.errors.metrics[1].latency.max: invalid duration "0.25"`}},
		{"missing quantile", editA(t, "quantile: 0.99, ", ""), []string{"kiln.yaml:51:18: analysis.errors.metrics[1].latency.quantile: required field is missing"}},
		{"bad prometheus name", editA(t, "name: queue_depth", "name: queue-depth"), []string{`kiln.yaml:53:24: analysis.errors.metrics[2].metric.name: invalid metric name "queue-depth"`}},
		{"gauge without bounds", editA(t, "name: up, min: 1", "name: up"), []string{"kiln.yaml:58:17: analysis.smoke.metrics[0].metric: set min, max or both"}},
		{"gauge min over max", editA(t, "max: 100, aggregate: sum", "max: 100, min: 101"), []string{"analysis.errors.metrics[2].metric.min: min 101 is greater than max 100"}},
		{"unknown aggregate", editA(t, "aggregate: sum", "aggregate: p50"), []string{`kiln.yaml:53:58: analysis.errors.metrics[2].metric.aggregate: unknown aggregate "p50" (write sum, max or avg)`}},
		{"unknown template field", editA(t, "failureLimit: 1", "failureLimt: 1"), []string{`kiln.yaml:44:5: analysis.errors.failureLimt: unknown field "failureLimt" (did you mean "failureLimit"?)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifests.Parse("kiln.yaml", []byte(tc.text), testCatalog)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors %q", m, tc.want)
			}
			var errs manifests.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want manifests.Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

// TestStarterExamplesValidate uncomments the starter's rollout and analysis examples and
// decodes the result, so the examples users copy stay valid.
func TestStarterExamplesValidate(t *testing.T) {
	text := string(manifests.Starter("hello"))
	head, tail, ok := strings.Cut(text, "\n# analysis:")
	if !ok {
		t.Fatal("the starter has no analysis example")
	}
	tail = "\nanalysis:" + strings.ReplaceAll(tail, "\n#", "\n")
	for _, prefix := range []string{"  # steps:", "  #   - ", "  #     pause", "  #     analysis", "  # prePromotionAnalysis", "  # postPromotionAnalysis"} {
		head = strings.ReplaceAll(head, "\n"+prefix, "\n"+strings.Replace(prefix, "# ", "", 1))
	}
	text = head + tail
	m, err := manifests.Parse("kiln.yaml", []byte(text), nil)
	if err != nil {
		t.Fatalf("uncommented starter does not validate: %v\n%s", err, text)
	}
	if len(m.Rollout.Steps) != 3 || m.Rollout.PrePromotionAnalysis != "errors" || len(m.Analysis["errors"].Metrics) != 3 {
		t.Errorf("examples not all uncommented: rollout %+v analysis %+v\n%s", m.Rollout, m.Analysis, text)
	}
}
