package rollout

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTheEngineKnowsNoUIAndNoTarget keeps the engine a library of its own: the
// consoles, the command, the Pulumi programs and the targets depend on it, never the
// other way round, so a second target plugs in without touching it.
func TestTheEngineKnowsNoUIAndNoTarget(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !strings.Contains(string(out), "github.com/kilnhq/kiln/fleet") {
		t.Fatal("go list -deps does not list fleet: is the test listing the engine?")
	}
	for _, p := range deps {
		for _, banned := range []string{"cli", "tui", "stacks", "targets"} {
			if prefix := "github.com/kilnhq/kiln/" + banned; p == prefix || strings.HasPrefix(p, prefix+"/") {
				t.Errorf("the engine imports %s", p)
			}
		}
		if strings.HasPrefix(p, "github.com/charmbracelet/") || strings.HasPrefix(p, "github.com/pulumi/") {
			t.Errorf("the engine imports %s", p)
		}
	}
}
