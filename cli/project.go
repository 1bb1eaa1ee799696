package cli

import (
	"context"

	"github.com/kilnhq/kiln/project"
	"github.com/kilnhq/kiln/targets"
	_ "github.com/kilnhq/kiln/targets/builtin" // every target kiln ships, opened by name
)

// load reads and validates the manifest. Nothing is baked or deployed from an invalid one.
func (a *app) load() (*project.Project, error) {
	return project.Load(project.Options{File: a.file, StateDir: a.stateDir, Backend: a.backend, CatalogDir: a.catalogDir})
}

// target opens the target the manifest names, building the pinned Pulumi CLI first if
// there is none (it says so on stderr).
func (a *app) target(ctx context.Context, p *project.Project) (targets.Target, error) {
	return p.OpenTarget(ctx, a.stderr)
}
