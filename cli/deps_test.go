package cli

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The command layer reaches targets only through the registry (targets, and
// targets/builtin for the side effect of registering them): a target is one tree that
// kiln can add to or replace without touching the commands.
func TestCommandsImportNoTargetPackage(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			rest, ok := strings.CutPrefix(path, "github.com/kilnhq/kiln/targets/")
			if ok && rest != "builtin" {
				t.Errorf("%s imports %s: open targets through the registry (package targets)", name, path)
			}
		}
	}
}
