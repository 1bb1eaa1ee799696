// Package project is kiln between the command line and the engine: a loaded manifest and
// what derives from it (the recipe, the rollout request, the state directory, the target
// it names) and a Session that runs one rollout of it. The kiln command keeps flags, I/O
// and rendering; everything here runs without a terminal and is tested against a fake
// target.
package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/rollout/control"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/kilnhq/kiln/targets"
)

// InputError is input kiln refuses before doing anything (exit code 2).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Project is a loaded, valid manifest with everything derived from it.
type Project struct {
	Manifest *manifests.Manifest
	Catalog  *components.Catalog
	// StateDir is kiln's state directory on this host (absolute).
	StateDir string
	// BinDir holds kiln's binaries: the provider plugins, kiln-boot and the builtin
	// components.
	BinDir string
	// Backend is where the stack's state lives.
	Backend backend.Backend
}

// Options say where to find the manifest and kiln's state.
type Options struct {
	// File is the manifest.
	File string
	// StateDir overrides $KILN_STATE_DIR and the default, .kiln beside the manifest.
	StateDir string
	// Backend overrides $KILN_BACKEND, the manifest's backend and the default, the file
	// backend in the state directory: where the stack's Pulumi state, lock, checkpoints
	// and history live.
	Backend string
	// CatalogDir adds baked components to the builtin catalog.
	CatalogDir string
	// BinDir overrides the directory of the running executable.
	BinDir string
}

// Catalog is the builtin component catalog plus the components in extraDir, if any.
func Catalog(extraDir string) (*components.Catalog, error) {
	cat, err := components.Builtin()
	if err != nil {
		return nil, err
	}
	if extraDir != "" {
		extra, err := components.LoadDir(extraDir)
		if err != nil {
			return nil, err
		}
		cat = cat.Merge(extra)
	}
	return cat, nil
}

// Load reads and validates the manifest. Nothing is baked or deployed from an invalid one.
func Load(opts Options) (*Project, error) {
	cat, err := Catalog(opts.CatalogDir)
	if err != nil {
		return nil, err
	}
	m, err := manifests.Load(opts.File, cat)
	if err != nil {
		return nil, err
	}
	if name := m.Target.Name(); !targets.Has(name) {
		return nil, &InputError{Msg: fmt.Sprintf("%s: the %s target cannot be deployed by this kiln (it has: %v)", opts.File, name, targets.Names())}
	}
	p := &Project{Manifest: m, Catalog: cat, StateDir: opts.StateDir, BinDir: opts.BinDir}
	if p.StateDir == "" {
		p.StateDir = os.Getenv("KILN_STATE_DIR")
	}
	if p.StateDir == "" {
		p.StateDir = filepath.Join(m.Dir, ".kiln")
	}
	if p.StateDir, err = filepath.Abs(p.StateDir); err != nil {
		return nil, err
	}
	if p.BinDir == "" {
		if p.BinDir, err = executableDir(); err != nil {
			return nil, err
		}
	}
	p.Backend = backend.File(filepath.Join(p.StateDir, "pulumi"))
	url := opts.Backend
	if url == "" {
		url = os.Getenv("KILN_BACKEND")
	}
	if url == "" {
		url = m.Backend // checked, with its position, by the manifest's decoder
	}
	if url != "" {
		if p.Backend, err = backend.Parse(url); err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
	}
	return p, os.MkdirAll(p.StateDir, fileperm.Dir)
}

// executableDir is the directory of the running kiln, where its other binaries are
// installed beside it.
func executableDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

// Service is the service's name.
func (p *Project) Service() string { return p.Manifest.Service }

// Images is the image store on this host that bakes land in.
func (p *Project) Images() *images.Store {
	return &images.Store{Dir: filepath.Join(p.StateDir, "images")}
}

// Releases opens the stack's lock, rollout state and history in its backend. A backend
// whose state was moved elsewhere is refused, naming where it went.
func (p *Project) Releases() (releases.Store, error) {
	store, err := releases.Open(context.Background(), p.Backend, p.Manifest.Service)
	if err != nil {
		return nil, err
	}
	if to, err := store.MovedTo(); err != nil {
		return nil, err
	} else if to != "" {
		return nil, &InputError{Msg: fmt.Sprintf("the state of %s was moved from %s to %s (kiln state migrate): use --backend '%s' or KILN_BACKEND", p.Service(), p.Backend, to, to)}
	}
	return store, nil
}

// loadSecrets reads the stack's encrypted secrets.
func (p *Project) loadSecrets() (releases.Secrets, error) {
	store, err := p.Releases()
	if err != nil {
		return releases.Secrets{}, err
	}
	return store.LoadSecrets()
}

// Recipe turns the manifest into what the bake needs.
func (p *Project) Recipe() (images.Recipe, error) {
	m := p.Manifest
	r := images.Recipe{Name: m.Service, Version: m.Version.Original(),
		App: images.App{Main: m.App.Main, Binary: m.BinaryPath(), Dir: m.Dir, Args: m.App.Args, Env: m.App.Env}}
	r.Init = filepath.Join(p.BinDir, images.InitName)
	if _, err := os.Stat(r.Init); err != nil {
		return r, fmt.Errorf("%s, the instance init baked into every image, is not installed beside kiln in %s: go tool task build", images.InitName, p.BinDir)
	}
	defs, err := p.Catalog.Resolve(m.Resolved)
	if err != nil {
		return r, err
	}
	for i, d := range defs {
		env := map[string]string{}
		for k, v := range d.Unit.Env {
			env[k] = v
		}
		for k, v := range m.Resolved[i].Settings {
			env[k] = v // baked: an image carries its whole configuration (a secret as its reference)
		}
		if err := secretsOffCommandLine(d.Name, d.Unit.Args, m.Resolved[i].Settings); err != nil {
			return r, err
		}
		bin := d.BinaryPath()
		if bin == "" {
			bin = filepath.Join(p.BinDir, d.Binary)
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

// CheckBake checks what the bake will need of the app, as a problem of the manifest (exit
// code 2): the Go main package resolves, or the prebuilt executable exists. It builds
// nothing.
func (p *Project) CheckBake(ctx context.Context) error {
	m := p.Manifest
	field := "app.main"
	if m.App.Binary != "" {
		field = "app.binary"
	}
	err := images.CheckApp(ctx, images.App{Main: m.App.Main, Binary: m.BinaryPath(), Dir: m.Dir})
	if err != nil && ctx.Err() == nil {
		return manifests.Errors{m.ErrorAt(m.App.At, field, "%v", err)}
	}
	return err
}

// BakeImage bakes the manifest's release into the image store on this host (a cache hit
// when the recipe was baked before).
func (p *Project) BakeImage(ctx context.Context) (images.Result, error) {
	r, err := p.Recipe()
	if err != nil {
		return images.Result{}, err
	}
	return p.Images().Bake(ctx, r)
}

// Bake bakes the manifest's release and publishes its image to tgt.
func (p *Project) Bake(ctx context.Context, tgt targets.Target) (fleet.Release, error) {
	res, err := p.BakeImage(ctx)
	if err != nil {
		return fleet.Release{}, err
	}
	img, err := tgt.Publish(ctx, res.Image)
	if err != nil {
		return fleet.Release{}, fmt.Errorf("publish %s %s: %w", res.Image.Name, res.Image.Digest, err)
	}
	return fleet.Release{Version: res.Image.Version, Image: img}, nil
}

// Request is the rollout the manifest asks for.
func (p *Project) Request() rollout.Request {
	m := p.Manifest
	req := rollout.Request{
		Template: fleet.Spec{
			Service: m.Service,
			Port:    m.Fleet.Port,
			Health: fleet.HealthCheck{Path: m.Fleet.Health.Path, Interval: m.Fleet.Health.Interval, Timeout: m.Fleet.Health.Timeout,
				HealthyThreshold: m.Fleet.Health.HealthyThreshold, UnhealthyThreshold: m.Fleet.Health.UnhealthyThreshold},
			DrainTimeout: m.Rollout.DrainTimeout,
		},
		Size:                  m.Fleet.Size,
		ProgressDeadline:      m.Rollout.ProgressDeadline,
		PrePromotionAnalysis:  m.Rollout.PrePromotionAnalysis,
		PostPromotionAnalysis: m.Rollout.PostPromotionAnalysis,
		ScaleDownDelay:        m.Rollout.ScaleDownDelay,
		AbortScaleDownDelay:   m.Rollout.AbortScaleDownDelay,
	}
	for _, s := range m.Rollout.Steps {
		req.Steps = append(req.Steps, rollout.Step{Weight: s.Weight, Pause: s.Pause, Indefinite: s.Indefinite, Analysis: s.Analysis})
	}
	return req
}

// OpenTarget opens the target the manifest names, building the pinned Pulumi CLI first
// if there is none (saying so on progress). The engine's raw output goes to
// logs/engine.log in the state directory.
func (p *Project) OpenTarget(ctx context.Context, progress io.Writer) (targets.Target, error) {
	if _, err := p.Releases(); err != nil {
		return nil, err // e.g. the state was moved to another backend
	}
	if _, err := os.Stat(filepath.Join(p.BinDir, "pulumi-resource-kiln")); err != nil {
		return nil, fmt.Errorf("pulumi-resource-kiln is not installed beside kiln in %s: build both with `go tool task build`", p.BinDir)
	}
	root, err := pulumicli.Ensure(ctx, pulumicli.Options{Progress: progress})
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(p.StateDir, "logs")
	if err := os.MkdirAll(logDir, fileperm.Dir); err != nil {
		return nil, err
	}
	engineLog, err := os.OpenFile(filepath.Join(logDir, "engine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, fileperm.File)
	if err != nil {
		return nil, err
	}
	// A log an older kiln created keeps its mode when appended to.
	if err := engineLog.Chmod(fileperm.File); err != nil {
		engineLog.Close()
		return nil, err
	}
	return targets.Open(ctx, targets.Config{Manifest: p.Manifest, StateDir: p.StateDir, BinDir: p.BinDir,
		PulumiRoot: root, EngineLog: engineLog, Images: p.Images(), Catalog: p.Catalog, Backend: p.Backend, Secrets: p.loadSecrets})
}

// ControlSocket is where the service's running rollout listens for controls and watchers.
func (p *Project) ControlSocket() string { return control.SocketPath(p.StateDir, p.Manifest.Service) }
