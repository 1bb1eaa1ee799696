package aws

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/targets/aws/program"
)

func loadExample(t *testing.T) (*manifests.Manifest, *project.Project) {
	t.Helper()
	cat, err := project.Catalog("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifests.Load("../../examples/aws/kiln.yaml", cat)
	if err != nil {
		t.Fatal(err)
	}
	return m, &project.Project{Manifest: m, Catalog: cat}
}

func TestTheExampleManifestBecomesTheProgramsSettings(t *testing.T) {
	m, _ := loadExample(t)
	s := SettingsOf(*m.Target.AWS)
	if s.Region != "eu-west-1" || len(s.Subnets) != 2 || s.InstanceType != "t3.small" ||
		s.ParentImage != manifests.DefaultAWSParentImage || s.GracePeriodSecs != int((5*time.Minute).Seconds()) ||
		s.LoadBalancer.Scheme != "internet-facing" || s.LoadBalancer.Port != 443 || !strings.HasPrefix(s.LoadBalancer.CertificateARN, "arn:aws:acm:") ||
		s.Tags["team"] != "web" || s.KeyName != "" {
		t.Fatalf("settings: %+v", s)
	}
}

func TestComponentsGetFixedNamedPortsAndTheirPolicies(t *testing.T) {
	m, p := loadExample(t)
	ports, err := NamedPorts(m, p.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"metrics": FirstNamedPort}; !maps.Equal(ports, want) {
		t.Fatalf("named ports %v, want %v", ports, want)
	}
	// A fleet listening where the first named port would be pushes it on.
	m.Fleet.Port = FirstNamedPort
	if ports, _ = NamedPorts(m, p.Catalog); ports["metrics"] != FirstNamedPort+1 {
		t.Fatalf("with the app on %d: %v", FirstNamedPort, ports)
	}
	pols, err := Policies(m, p.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 1 || !json.Valid(pols[0]) || !strings.Contains(string(pols[0]), "cloudwatch:PutMetricData") {
		t.Fatalf("policies: %q", pols)
	}
	// Without components: no ports, no policies, no catalog needed.
	m.Resolved = nil
	if ports, err := NamedPorts(m, nil); err != nil || len(ports) != 0 {
		t.Fatalf("no components: %v, %v", ports, err)
	}
	if pols, err := Policies(m, nil); err != nil || len(pols) != 0 {
		t.Fatalf("no components: %v, %v", pols, err)
	}
}

func TestImagesBeyondKeepAreDroppedButNeverOneInUse(t *testing.T) {
	imgs := func(ds ...string) []program.BakeImage {
		var out []program.BakeImage
		for _, d := range ds {
			out = append(out, program.BakeImage{Digest: d})
		}
		return out
	}
	digests := func(bs []program.BakeImage) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.Digest)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		stack, inUse  []string
		keep          int
		kept, dropped []string
	}{
		{"fewer than keep", []string{"a", "b"}, []string{"b"}, 3, []string{"a", "b"}, nil},
		{"the oldest go", []string{"a", "b", "c", "d"}, []string{"d"}, 2, []string{"c", "d"}, []string{"b", "a"}},
		{"an old one in use stays (a rollback target)", []string{"a", "b", "c", "d"}, []string{"a", "d"}, 2, []string{"a", "c", "d"}, []string{"b"}},
		{"in-use ones count toward keep", []string{"a", "b", "c"}, []string{"b", "c"}, 2, []string{"b", "c"}, []string{"a"}},
	} {
		kept, dropped := collect(imgs(tc.stack...), tc.inUse, tc.keep)
		if !slices.Equal(digests(kept), tc.kept) || !slices.Equal(digests(dropped), tc.dropped) {
			t.Errorf("%s: kept %v dropped %v, want %v and %v", tc.name, digests(kept), digests(dropped), tc.kept, tc.dropped)
		}
	}
}
