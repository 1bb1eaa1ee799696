package manifests_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/manifests"
)

func ExampleParse() {
	data := []byte(`apiVersion: kiln/v1
service: hello
version: 1.4.0
app:
  main: ./cmd/hello
fleet:
  size: 2
  port: 8080
  health:
    path: /healthz
    interval: fast
    helthyThreshold: 2
target:
  local: {}
`)
	_, err := manifests.Parse("kiln.yaml", data, nil)
	var errs manifests.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Println(e)
		}
	}
	// Output:
	// kiln.yaml:11:15: fleet.health.interval: invalid duration "fast" (write a Go duration such as 2s, 500ms or 1m30s)
	// kiln.yaml:12:5: fleet.health.helthyThreshold: unknown field "helthyThreshold" (did you mean "healthyThreshold"?); known fields: path, interval, timeout, healthyThreshold, unhealthyThreshold
}

func ExampleStarter() {
	m, err := manifests.Parse("kiln.yaml", manifests.Starter("My Service"), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Service, m.Version, m.App.Main, m.Fleet.Size, m.Target.Local.Listen)
	// Output: my-service 0.1.0 . 2 127.0.0.1:8080
}

// TestAWSExample keeps the README's aws manifest true: it is examples/aws/kiln.yaml, byte
// for byte, and it decodes. (cli's tests run kiln validate on the example, bake check
// included.)
func TestAWSExample(t *testing.T) {
	const file = "../examples/aws/kiln.yaml"
	example, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Deploying to AWS\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no ```yaml block under ### Deploying to AWS")
	}
	if block != string(example) {
		t.Errorf("the README's aws manifest differs from %s:\n%s", file, block)
	}
	m, err := manifests.Parse(file, example, testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	if m.Target.AWS == nil || m.Target.AWS.LoadBalancer.Port != 443 {
		t.Errorf("target = %+v", m.Target)
	}
}
