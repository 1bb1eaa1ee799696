package manifests_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/manifests"
)

// FuzzParse feeds arbitrary bytes to the decoder. It must never panic; a failure must be
// Errors whose every entry has a position and a path; a success must satisfy every rule.
// CI runs: go test -fuzz=FuzzParse -fuzztime=20s ./manifests
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(minimal))
	f.Add([]byte(awsBase))
	f.Add([]byte(awsMinimal))
	f.Add(manifests.Starter("hello"))
	for _, s := range []string{
		"", "~", "- a", "a: b: c", "&a [*a]", "a: &a [*a, *a]\nb: *a",
		"apiVersion: kiln/v1\n---\n", "? [a]\n: b", "<<: {service: x}",
		"fleet: {size: 1e9, port: 0x50, health: {path: /, interval: 1ns, timeout: 1ns}}",
		"components: {kiln-metrics: \">= 0.1\", kiln-backup: 0.1, x: [1]}",
		"target: {local: {listen: \"[::1]:0\"}, aws: {}}",
		"target: {aws: {region: us-iso-east-1, subnets: [subnet-0123abcd], loadBalancer: {listenerARN: \"arn:aws-iso:elasticloadbalancing:us-iso-east-1:123456789012:listener/app/a/0123456789abcdef/0123456789abcdef\", rulePriority: 1}}}",
		"target: {aws: {region: cn-north-1, vpc: vpc-0123abcd, parentImage: \"ssm:/a//b\", tags: {\"\": x, aws:y: z}, artifactsBucket: 1.2.3.4, healthCheckGracePeriod: 1ns}}",
		"app: {main: ../x/./y, env: {A: !!binary aGk=, B: 2001-12-14}}",
		"rollout: {steps: [{weight: 10, pause: indefinite, analysis: a}, {weight: 100}]}\nanalysis: {a: {count: 1, metrics: [{name: m, metric: {name: up, min: 1e308}}]}}",
		"analysis: {a: {interval: 1ns, consecutiveSuccessLimit: 1, metrics: [{name: e, errorRatio: {max: 1, window: 1ns}}, {name: l, latency: {quantile: 0.5, max: 1ns}}]}}",
		"\xef\xbb\xbfservice: hello\n", "service: \"\\u0000\"\n", "\t- x",
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "errors", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifests.Parse("kiln.yaml", data, testCatalog)
		if err == nil {
			checkValid(t, m)
			return
		}
		if m != nil {
			t.Fatal("Parse returned both a manifest and an error")
		}
		var errs manifests.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T %v is not a non-empty manifests.Errors", err, err)
		}
		for i, e := range errs {
			if e.File != "kiln.yaml" || e.Line < 1 || e.Column < 1 || e.Path == "" || e.Msg == "" {
				t.Fatalf("incomplete error %+v", e)
			}
			if i > 0 && (e.Line < errs[i-1].Line || e.Line == errs[i-1].Line && e.Column < errs[i-1].Column) {
				t.Fatalf("errors not sorted: %v before %v", errs[i-1], e)
			}
		}
	})
}

// checkValid asserts the invariants every successfully decoded manifest holds.
func checkValid(t *testing.T, m *manifests.Manifest) {
	t.Helper()
	h := m.Fleet.Health
	switch {
	case m.APIVersion != manifests.APIVersion:
		t.Fatalf("apiVersion %q", m.APIVersion)
	case manifests.CheckServiceName(m.Service) != nil:
		t.Fatalf("service %q", m.Service)
	case m.Version == nil:
		t.Fatal("nil version")
	case (m.App.Main == "") == (m.App.Binary == ""):
		t.Fatalf("app %+v", m.App)
	case m.Fleet.Size < 1 || m.Fleet.Size > manifests.MaxFleetSize || m.Fleet.Port < 1 || m.Fleet.Port > 65535:
		t.Fatalf("fleet %+v", m.Fleet)
	case h.Path == "" || h.Path[0] != '/' || h.Interval <= 0 || h.Timeout <= 0 || h.Timeout > h.Interval:
		t.Fatalf("health %+v", h)
	case h.HealthyThreshold < 1 || h.HealthyThreshold > 10 || h.UnhealthyThreshold < 1 || h.UnhealthyThreshold > 10:
		t.Fatalf("health thresholds %+v", h)
	case m.Rollout.Strategy != manifests.StrategyBlueGreen || m.Rollout.ProgressDeadline <= 0 || m.Rollout.DrainTimeout < 0:
		t.Fatalf("rollout %+v", m.Rollout)
	case (m.Target.Local == nil) == (m.Target.AWS == nil):
		t.Fatalf("target %+v", m.Target)
	case m.Images.Keep < manifests.MinImagesKeep:
		t.Fatalf("images %+v", m.Images)
	case len(m.Resolved) != len(m.Components):
		t.Fatalf("resolved %v for components %v", m.Resolved, m.Components)
	}
	if m.Target.AWS != nil {
		checkValidAWS(t, m)
	}
	r := m.Rollout
	if len(r.Steps) == 0 || r.Steps[len(r.Steps)-1].Weight != 100 || r.ScaleDownDelay < 0 || r.AbortScaleDownDelay < 0 {
		t.Fatalf("rollout %+v", r)
	}
	refs := []string{r.PrePromotionAnalysis, r.PostPromotionAnalysis}
	for i, s := range r.Steps {
		if s.Weight < 1 || s.Weight > 100 || i > 0 && s.Weight <= r.Steps[i-1].Weight || s.Pause < 0 || s.Indefinite && s.Pause != 0 {
			t.Fatalf("steps %+v", r.Steps)
		}
		refs = append(refs, s.Analysis)
	}
	for _, ref := range refs {
		if _, ok := m.Analysis[ref]; ref != "" && !ok {
			t.Fatalf("undefined template %q accepted", ref)
		}
	}
	for name, tmpl := range m.Analysis {
		if err := manifests.CheckServiceName(name); err != nil {
			t.Fatalf("template name %q accepted", name)
		}
		if err := tmpl.Validate(); err != nil {
			t.Fatalf("template %q accepted but invalid: %v", name, err)
		}
	}
	for k := range m.App.Env {
		if k == "PORT" || len(k) >= 5 && k[:5] == "KILN_" {
			t.Fatalf("reserved env %q accepted", k)
		}
	}
}

// checkValidAWS asserts what every decoded aws manifest holds: what AWS itself would refuse
// never validates.
func checkValidAWS(t *testing.T, m *manifests.Manifest) {
	t.Helper()
	a, h := m.Target.AWS, m.Fleet.Health
	lb := a.LoadBalancer
	whole := func(d time.Duration) bool { return d%time.Second == 0 }
	switch {
	case a.Region == "" || a.InstanceType == "" || a.ParentImage == "" || a.At.Line < 1:
		t.Fatalf("target.aws %+v", a)
	case (len(a.Subnets) == 0) == (a.VPC == ""):
		t.Fatalf("subnets %v and vpc %q", a.Subnets, a.VPC)
	case lb.ListenerARN == "" && (lb.Port < 1 || lb.Port > 65535 || lb.RulePriority != 0 || len(a.Subnets) == 1):
		t.Fatalf("created balancer %+v with subnets %v", lb, a.Subnets)
	case lb.ListenerARN != "" && (lb.Port != 0 || lb.Scheme != "" || lb.CertificateARN != "" || lb.RulePriority < 1 || lb.RulePriority > 50000):
		t.Fatalf("existing listener %+v", lb)
	case len(a.Tags) > 40 || a.HealthCheckGracePeriod < 0 || !whole(a.HealthCheckGracePeriod):
		t.Fatalf("target.aws %+v", a)
	case h.Interval < 5*time.Second || h.Timeout < 2*time.Second || h.Timeout >= h.Interval || !whole(h.Interval) || !whole(h.Timeout):
		t.Fatalf("health %+v refused by an ALB", h)
	case h.HealthyThreshold < 2 || h.UnhealthyThreshold < 2 || !whole(m.Rollout.DrainTimeout) || m.Rollout.DrainTimeout > time.Hour:
		t.Fatalf("health %+v, drain %s refused by an ALB", h, m.Rollout.DrainTimeout)
	}
	for k := range a.Tags {
		if l := strings.ToLower(k); strings.HasPrefix(l, "aws:") || strings.HasPrefix(l, "kiln:") {
			t.Fatalf("reserved tag %q accepted", k)
		}
	}
}
