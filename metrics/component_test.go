package metrics

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComponentDefinition decodes the baked component definition strictly, with the
// fields of kiln's component contract, and checks the policy allows nothing but
// PutMetricData into the daemon's default namespace.
func TestComponentDefinition(t *testing.T) {
	const dir = "../components/builtin/kiln-metrics/"
	b, err := os.ReadFile(dir + "component.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Name        string `yaml:"name"`
		Version     string `yaml:"version"`
		Binary      string `yaml:"binary"`
		Description string `yaml:"description"`
		Unit        struct {
			Mode     string            `yaml:"mode"`
			Schedule string            `yaml:"schedule"`
			Args     []string          `yaml:"args"`
			Env      map[string]string `yaml:"env"`
			Ports    []string          `yaml:"ports"`
			Restart  string            `yaml:"restart"`
		} `yaml:"unit"`
		Policy string `yaml:"policy"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("component.yaml: %v", err)
	}
	if c.Name != "kiln-metrics" || c.Version != Version || c.Binary != "kiln-metrics" || c.Unit.Mode != "service" || c.Unit.Restart != "always" {
		t.Errorf("component = %+v", c)
	}
	if _, err := os.Stat("../cmd/" + c.Binary + "/main.go"); err != nil {
		t.Errorf("binary %s is not built from ./cmd/%s: %v", c.Binary, c.Binary, err)
	}
	if len(c.Unit.Ports) != 1 || c.Unit.Ports[0] != "metrics" || !strings.Contains(strings.Join(c.Unit.Args, " "), "${KILN_PORT_METRICS}") {
		t.Errorf("the unit should listen on its named port: %+v", c.Unit)
	}

	pb, err := os.ReadFile(dir + c.Policy)
	if err != nil {
		t.Fatal(err)
	}
	var pol struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    any
			Resource  any
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal(pb, &pol); err != nil {
		t.Fatalf("policy: %v", err)
	}
	ns := DefaultConfig(env()).CloudWatch.Namespace
	if pol.Version != "2012-10-17" || len(pol.Statement) != 1 {
		t.Fatalf("policy = %+v", pol)
	}
	s := pol.Statement[0]
	if s.Effect != "Allow" || s.Action != "cloudwatch:PutMetricData" || s.Condition["StringEquals"]["cloudwatch:namespace"] != ns {
		t.Errorf("statement = %+v; want only PutMetricData limited to namespace %q", s, ns)
	}
}
