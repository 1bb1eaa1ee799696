package manifests_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnhq/kiln/manifests"
)

var update = flag.Bool("update", false, "rewrite testdata/errors/*.golden from the current output")

// TestGoldenErrors decodes each testdata/errors/*.yaml and compares the full error text with
// the .golden file beside it. Refresh with: go test ./manifests -run TestGoldenErrors -update
func TestGoldenErrors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "errors", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = manifests.Parse(filepath.Base(file), data, testCatalog)
			if err == nil {
				t.Fatalf("%s decoded without error", file)
			}
			got := []byte(err.Error() + "\n")
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("errors for %s differ from %s\n--- got\n%s--- want\n%s", file, golden, got, want)
			}
		})
	}
}
