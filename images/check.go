package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// CheckApp checks, without building anything, what the bake needs of the app: a
// prebuilt binary is an executable file; a Go package resolves in app.Dir (go list, as
// the build will) and is a main package. The error says what is wrong, for the app's
// field in the manifest.
func CheckApp(ctx context.Context, app App) error {
	if app.Binary != "" {
		fi, err := os.Stat(app.Binary)
		switch {
		case err != nil:
			return fmt.Errorf("the executable cannot be read: %w", err)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s is not a file", app.Binary)
		case fi.Mode().Perm()&0o111 == 0:
			return fmt.Errorf("%s is not executable (chmod +x it)", app.Binary)
		}
		return nil
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-f", "{{.Name}}", app.Main)
	cmd.Dir = app.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		why := strings.TrimSpace(stderr.String())
		if why == "" {
			why = err.Error()
		}
		return fmt.Errorf("%q is no Go package the bake can build here: %s", app.Main, why)
	}
	if names := strings.Fields(string(out)); len(names) != 1 || names[0] != "main" {
		return fmt.Errorf("%q is package %s, not a main package (the bake builds a program)", app.Main, strings.Join(names, ", "))
	}
	return nil
}
