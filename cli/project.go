package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/kilnhq/kiln/targets/local"
)

// project is a loaded manifest with everything derived from it.
type project struct {
	m        *manifests.Manifest
	catalog  *components.Catalog
	stateDir string
	binDir   string
}

// catalog is the builtin component catalog plus the extra directory, if any.
func (a *app) catalog() (*components.Catalog, error) {
	cat, err := components.Builtin()
	if err != nil {
		return nil, err
	}
	if a.catalogDir != "" {
		extra, err := components.LoadDir(a.catalogDir)
		if err != nil {
			return nil, err
		}
		cat = cat.Merge(extra)
	}
	return cat, nil
}

// load reads and validates the manifest. Nothing is baked or deployed from an invalid one.
func (a *app) load() (*project, error) {
	cat, err := a.catalog()
	if err != nil {
		return nil, err
	}
	m, err := manifests.Load(a.file, cat)
	if err != nil {
		return nil, err
	}
	if m.Target.Local == nil {
		return nil, &usageError{msg: fmt.Sprintf("%s: only the local target can be deployed by this kiln", a.file)}
	}
	p := &project{m: m, catalog: cat}
	p.stateDir = a.stateDir
	if p.stateDir == "" {
		p.stateDir = os.Getenv("KILN_STATE_DIR")
	}
	if p.stateDir == "" {
		p.stateDir = filepath.Join(m.Dir, ".kiln")
	}
	if p.stateDir, err = filepath.Abs(p.stateDir); err != nil {
		return nil, err
	}
	if p.binDir, err = binDir(); err != nil {
		return nil, err
	}
	return p, os.MkdirAll(p.stateDir, 0o755)
}

// binDir is the directory of the running kiln, where pulumi-resource-kiln and the builtin
// components are installed beside it.
func binDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

func (p *project) store() *images.Store {
	return &images.Store{Dir: filepath.Join(p.stateDir, "images")}
}

// recipe turns the manifest into what the bake needs.
func (p *project) recipe() (images.Recipe, error) {
	m := p.m
	r := images.Recipe{Name: m.Service, Version: m.Version.Original(),
		App: images.App{Main: m.App.Main, Binary: m.BinaryPath(), Dir: m.Dir, Args: m.App.Args, Env: m.App.Env}}
	defs, err := p.catalog.Resolve(m.Resolved)
	if err != nil {
		return r, err
	}
	for i, d := range defs {
		env := map[string]string{}
		for k, v := range d.Unit.Env {
			env[k] = v
		}
		for k, v := range m.Resolved[i].Settings {
			env[k] = v // baked: an image carries its whole configuration
		}
		bin := d.BinaryPath()
		if bin == "" {
			bin = filepath.Join(p.binDir, d.Binary)
		}
		if _, err := os.Stat(bin); err != nil {
			return r, fmt.Errorf("component %s %s: binary %s not found (builtin components are installed beside kiln: go tool task build)", d.Name, d.Version, bin)
		}
		sched := ""
		if d.Unit.Schedule > 0 {
			sched = d.Unit.Schedule.String()
		}
		r.Components = append(r.Components, images.ComponentSource{
			Name: d.Name, Version: d.Version.Original(), Binary: bin, Ports: d.Unit.Ports,
			Unit: images.Unit{Mode: d.Unit.Mode, Schedule: sched, Args: d.Unit.Args, Env: env, Restart: d.Unit.Restart},
		})
	}
	return r, nil
}

// bake bakes the manifest's release and returns it as the target knows it.
func (p *project) bake(ctx context.Context) (fleet.Release, bool, error) {
	r, err := p.recipe()
	if err != nil {
		return fleet.Release{}, false, err
	}
	res, err := p.store().Bake(ctx, r)
	if err != nil {
		return fleet.Release{}, false, err
	}
	return fleet.Release{Version: res.Image.Version, Image: fleet.Image{Digest: res.Image.Digest, Location: res.Image.Dir}}, res.Cached, nil
}

// request is the rollout the manifest asks for.
func (p *project) request() rollout.Request {
	m := p.m
	return rollout.Request{
		Template: fleet.Spec{
			Service: m.Service,
			Port:    m.Fleet.Port,
			Health: fleet.HealthCheck{Path: m.Fleet.Health.Path, Interval: m.Fleet.Health.Interval, Timeout: m.Fleet.Health.Timeout,
				HealthyThreshold: m.Fleet.Health.HealthyThreshold, UnhealthyThreshold: m.Fleet.Health.UnhealthyThreshold},
			DrainTimeout: m.Rollout.DrainTimeout,
		},
		Size:                  m.Fleet.Size,
		ProgressDeadline:      m.Rollout.ProgressDeadline,
		Steps:                 steps(m.Rollout.Steps),
		PrePromotionAnalysis:  m.Rollout.PrePromotionAnalysis,
		PostPromotionAnalysis: m.Rollout.PostPromotionAnalysis,
		ScaleDownDelay:        m.Rollout.ScaleDownDelay,
		AbortScaleDownDelay:   m.Rollout.AbortScaleDownDelay,
	}
}

func steps(ms []manifests.Step) []rollout.Step {
	var out []rollout.Step
	for _, s := range ms {
		out = append(out, rollout.Step{Weight: s.Weight, Pause: s.Pause, Indefinite: s.Indefinite, Analysis: s.Analysis})
	}
	return out
}

// target opens the local target, building the pinned Pulumi CLI first if there is none.
func (a *app) target(ctx context.Context, p *project) (*local.Target, error) {
	if _, err := os.Stat(filepath.Join(p.binDir, "pulumi-resource-kiln")); err != nil {
		return nil, fmt.Errorf("pulumi-resource-kiln is not installed beside kiln in %s: build both with `go tool task build`", p.binDir)
	}
	root, err := pulumicli.Ensure(ctx, pulumicli.Options{Progress: a.stderr})
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(p.stateDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	engineLog, err := os.OpenFile(filepath.Join(logDir, "engine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return local.Open(ctx, local.Config{
		StateDir:   p.stateDir,
		Service:    p.m.Service,
		Listen:     p.m.Target.Local.Listen,
		LB:         p.m.Target.Local.LB,
		PulumiRoot: root,
		BinDir:     p.binDir,
		EngineLog:  engineLog,
	})
}

// releases opens the stack's lock, rollout state and history in its backend.
func (p *project) releases() (*releases.FileStore, error) {
	return releases.OpenFileStore(releases.Dir(p.stateDir, p.m.Service))
}
