//go:build e2e

package pulumicli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The CLI kiln builds links the zxcvbn-go stand-in in place of both forks of the library,
// and lives in a directory named after its recipe.
func TestTheBuiltCLILinksTheStandInNotTheLibraries(t *testing.T) {
	root, err := Ensure(context.Background(), Options{IgnorePath: true, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	if want := "pulumi-v" + Version + "-" + Recipe; filepath.Base(root) != want {
		t.Errorf("built into %s, want a directory named %s", root, want)
	}
	out, err := exec.Command("go", "version", "-m", filepath.Join(root, "bin", "pulumi")).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	for _, mod := range []string{"github.com/nbutton23/zxcvbn-go", "github.com/ccojocar/zxcvbn-go"} {
		// A replaced module is its dep line, then a line naming what replaced it.
		lines := strings.Split(string(out), "\n")
		i := slices.IndexFunc(lines, func(l string) bool {
			f := strings.Fields(l)
			return len(f) >= 2 && f[0] == "dep" && f[1] == mod
		})
		if i < 0 {
			t.Errorf("%s is not linked at all: the CLI no longer needs its stand-in", mod)
			continue
		}
		if f := strings.Fields(lines[min(i+1, len(lines)-1)]); len(f) < 2 || f[0] != "=>" || !strings.HasPrefix(f[1], "./zxcvbn/") {
			t.Errorf("%s is linked, not replaced by the stand-in: %q", mod, lines[i:min(i+2, len(lines))])
		}
	}
}
