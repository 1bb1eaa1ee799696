package metrics

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDaemonDependencies keeps packages out of the kiln-metrics binary that cost resident
// memory on every instance for nothing the daemon needs (docs/benchmarks.md, section
// kiln-metrics, says how much each one costs). Every package linked into the binary runs
// its init and keeps its code resident, whether CloudWatch is configured or not.
func TestDaemonDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/kiln-metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for p := range strings.FieldsSeq(string(out)) {
		deps[p] = true
	}
	if !deps["github.com/aws/aws-sdk-go-v2/service/cloudwatch"] {
		t.Fatal("go list -deps does not list the CloudWatch client: is the test listing the right binary?")
	}
	for pkg, why := range map[string]string{
		// service/cloudwatch v1.66.0 and later describe every shape of the API in schemas
		// built at package init: 360 KB of heap and 200 KB of code kept resident.
		"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas": "service/cloudwatch must stay below v1.66.0 (schema serde)",
		"github.com/aws/aws-sdk-go-v2/config":                     "the SDK's config package (shared files, SSO, STS) costs about 1 MiB",
		"github.com/prometheus/client_golang/prometheus":          "the daemon writes the exposition itself",
		"github.com/prometheus/common/expfmt":                     "the daemon parses the text format itself",
		"google.golang.org/protobuf/proto":                        "no protobuf in the daemon",
	} {
		if deps[pkg] {
			t.Errorf("kiln-metrics links %s: %s", pkg, why)
		}
	}
}
