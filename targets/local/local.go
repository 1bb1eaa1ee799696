// Package local is the embedded local target: images are directories of kiln's image
// store, instances are process trees booted by `kiln boot` on 127.0.0.1, and the load
// balancer is `kiln lb`, all managed by kiln's own Pulumi provider.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/boot"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/internal/procstat"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/kilnhq/kiln/targets/local/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

var _ targets.Target = (*Target)(nil)

func init() {
	targets.Register("local", func(ctx context.Context, cfg targets.Config) (targets.Target, error) {
		m := cfg.Manifest
		if m.Target.Local == nil {
			return nil, fmt.Errorf("service %s: the manifest has no target.local settings", m.Service)
		}
		return Open(ctx, Config{StateDir: cfg.StateDir, Service: m.Service, Listen: m.Target.Local.Listen, LB: lbProxy(m.Target.Local.LB),
			PulumiRoot: cfg.PulumiRoot, BinDir: cfg.BinDir, EngineLog: cfg.EngineLog, Images: cfg.Images, Backend: cfg.Backend,
			Secrets: m.Secrets, LoadSecrets: cfg.Secrets})
	})
}

// lbProxy is the manifest's target.local.lb as kiln-lb's proxy settings. Fields the
// manifest leaves out stay zero, and kiln-lb gives them lb.DefaultProxy's values.
func lbProxy(m manifests.LocalLB) lb.Proxy {
	return lb.Proxy{
		MaxHeaderBytes:        m.MaxHeaderBytes,
		ReadHeaderTimeout:     lb.Duration(m.ReadHeaderTimeout),
		IdleTimeout:           lb.Duration(m.IdleTimeout),
		RequestTimeout:        lb.Duration(m.RequestTimeout),
		UpstreamHeaderTimeout: lb.Duration(m.UpstreamHeaderTimeout),
		ExposeTarget:          m.ExposeTarget,
	}
}

// Config says where the local target keeps its state and how it reaches the engine.
type Config struct {
	// StateDir is kiln's state directory (absolute).
	StateDir string
	// Service names the stack.
	Service string
	// Listen is the load balancer's address.
	Listen string
	// LB bounds the load balancer (the manifest's target.local.lb).
	LB lb.Proxy
	// PulumiRoot is the Pulumi CLI installation.
	PulumiRoot string
	// BinDir holds kiln and pulumi-resource-kiln.
	BinDir string
	// EngineLog receives the engine's raw output.
	EngineLog io.Writer
	// Images is the image store instances boot from: images stay on this host.
	Images *images.Store
	// Backend is where the stack's Pulumi state lives; the zero value is the file
	// backend in StateDir.
	Backend backend.Backend
	// Secrets names the service's secrets; LoadSecrets reads their ciphertexts from the
	// stack's store before every operation that runs the program.
	Secrets     []string
	LoadSecrets func() (releases.Secrets, error)
}

// Target is the local target for one service.
type Target struct {
	cfg   Config
	stack *stacks.Stack
}

// Open opens (creating if needed) the service's stack.
func Open(ctx context.Context, cfg Config) (*Target, error) {
	st, err := stacks.Open(ctx, stacks.Options{
		StateDir:   cfg.StateDir,
		Backend:    cfg.Backend.PulumiURL(),
		Env:        cfg.Backend.EngineEnv(),
		Stack:      cfg.Service,
		PulumiRoot: cfg.PulumiRoot,
		PluginDir:  cfg.BinDir,
		Log:        cfg.EngineLog,
	})
	if err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, stack: st}, nil
}

// Publish returns the image as instances boot it: its directory in the image store.
func (t *Target) Publish(_ context.Context, img *images.Image) (fleet.Image, error) {
	return fleet.Image{Digest: img.Digest, Location: img.Dir}, nil
}

// CollectImages removes the service's images beyond the newest keep, sparing inUse.
func (t *Target) CollectImages(_ context.Context, keep int, inUse []fleet.Image) ([]string, error) {
	var digests []string
	for _, img := range inUse {
		digests = append(digests, img.Digest)
	}
	if t.cfg.Images == nil {
		return nil, errors.New("local target: no image store to collect")
	}
	return t.cfg.Images.GC(t.cfg.Service, keep, digests)
}

// RunDir is where instances and the load balancer keep their files: the directory the
// stack's last update used (with a shared backend, another state directory of this host
// may have deployed it), else one in this state directory.
func (t *Target) RunDir() string {
	outs := t.stack.Known()
	if d, ok := outs[schema.OutputRunDir].Value.(string); ok && filepath.IsAbs(d) {
		return d
	}
	return filepath.Join(t.cfg.StateDir, "run", t.cfg.Service)
}

// program is the fleet program for spec. It reads the stack's outputs first, so the fleet
// keeps its run directory whoever updates it and its frozen slots (fleet.Frozen) keep their
// instances, and writes the service's secrets, as they are stored now, into the stack's
// config.
func (t *Target) program(ctx context.Context, spec fleet.Spec) (pulumi.RunFunc, error) {
	cur, _, err := t.stack.KnownSpec(ctx)
	if err != nil {
		return nil, err
	}
	cfg := programConfig{Listen: t.cfg.Listen, LB: t.cfg.LB, RunDir: t.RunDir(), Secrets: t.cfg.Secrets,
		Frozen: fleet.Frozen(cur, spec)}
	version, err := targets.UseSecrets(ctx, t.stack, t.cfg.Service, t.cfg.Secrets, t.cfg.LoadSecrets)
	if err != nil {
		return nil, err
	}
	cfg.SecretsVersion = version
	return fleetProgram(spec, cfg), nil
}

// EncryptSecret encrypts a secret with the stack's secrets provider (see
// stacks.Stack.EncryptSecret).
func (t *Target) EncryptSecret(ctx context.Context, manager json.RawMessage, name string, value []byte) (string, json.RawMessage, error) {
	return t.stack.EncryptSecret(ctx, manager, name, value)
}

// Name returns "local".
func (t *Target) Name() string { return "local" }

// Current returns the spec the last update applied: this target's own last update's, if
// it made one, else read from the stack (stacks.Stack.Applied); Health and Endpoint reuse
// what it read.
func (t *Target) Current(ctx context.Context) (fleet.Spec, bool, error) {
	return t.stack.Applied(ctx)
}

// Apply converges the local fleet to spec.
func (t *Target) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	if err := os.MkdirAll(t.RunDir(), fileperm.Dir); err != nil {
		return err
	}
	program, err := t.program(ctx, spec)
	if err != nil {
		return err
	}
	_, err = t.stack.Up(ctx, program, ops)
	return err
}

var _ rollout.Previewer = (*Target)(nil)

// Preview reports the resource operations applying spec would make, changing nothing.
func (t *Target) Preview(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	program, err := t.program(ctx, spec)
	if err != nil {
		return err
	}
	_, err = t.stack.Preview(ctx, program, ops)
	return err
}

var _ rollout.Healer = (*Target)(nil)

// Heal re-creates what died behind kiln's back: a refresh drops dead processes (the load
// balancer, instances) from the stack, then spec is applied again. A re-created load
// balancer takes back the address it had.
func (t *Target) Heal(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	// The engine heals holding the stack's lock: an update still running is a leftover of
	// a killed kiln.
	if err := t.stack.TakeOver(ctx, 15*time.Second); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	if err := t.Refresh(ctx, ops); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	if err := t.Apply(ctx, spec, ops); err != nil {
		return err
	}
	return t.sweepOrphans(ctx)
}

// sweepOrphans stops instances the stack does not know: a kiln killed while the engine
// was creating one can leave a process whose creation was never recorded.
func (t *Target) sweepOrphans(ctx context.Context) error {
	state, err := t.stack.State(ctx)
	if err != nil {
		return err
	}
	known := state.ResourceIDs(schema.InstanceType)
	dir := filepath.Join(t.RunDir(), "instances")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if known[e.Name()] {
			continue
		}
		for _, pid := range orphanBoots(filepath.Join(dir, e.Name(), "boot.json")) {
			// kiln boot leads its own session: the group holds its units too.
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// orphanBoots lists the live kiln-boot processes started for the instance whose spec is
// at specPath: a process that merely mentions the path (an editor, a tail) is not one.
// It must run an executable named kiln-boot, exactly as `<it> --spec <specPath>` (how the
// provider starts it), lead its own process group, and have started after the spec was
// written.
func orphanBoots(specPath string) []int {
	fi, err := os.Stat(specPath)
	if err != nil {
		return nil
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args, err := procstat.Cmdline(pid)
		if err != nil || len(args) != 3 || args[1] != "--spec" || args[2] != specPath {
			continue
		}
		exe, err := filepath.EvalSymlinks(args[0]) // what /proc/<pid>/exe shows
		if err != nil {
			exe = args[0]
		}
		boot := procstat.Identity{Exe: exe, ExeName: images.InitName, Args: args, StartedAfter: fi.ModTime(), Leader: true}
		if boot.Is(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Refresh makes the stack notice processes that died (an instance or the load balancer
// killed behind kiln's back), so the next Apply re-creates them.
func (t *Target) Refresh(ctx context.Context, ops func(fleet.ResourceOp)) error {
	return t.stack.Refresh(ctx, ops)
}

func (t *Target) output(ctx context.Context, name string) (string, error) {
	outs, err := t.stack.KnownOutputs(ctx)
	if err != nil {
		return "", err
	}
	s, _ := outs[name].Value.(string)
	if s == "" {
		return "", fmt.Errorf("stack %s has no %s yet: nothing was deployed", t.cfg.Service, name)
	}
	return s, nil
}

// Endpoint returns the load balancer's address.
func (t *Target) Endpoint(ctx context.Context) (string, error) {
	return t.output(ctx, schema.OutputAddress)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// Health reads the load balancer's view of every instance, with the restart counts the
// instances' inits report.
func (t *Target) Health(ctx context.Context) ([]fleet.InstanceHealth, error) {
	admin, err := t.output(ctx, schema.OutputAdmin)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load balancer status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("load balancer status: %s", resp.Status)
	}
	var st lb.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("load balancer status: %w", err)
	}
	var out []fleet.InstanceHealth
	for _, g := range st.Groups {
		slot := fleet.Slot(g.Name)
		if !slot.Valid() {
			continue
		}
		for _, tg := range g.Targets {
			h := fleet.InstanceHealth{ID: tg.ID, Slot: slot, Address: tg.Address, State: healthState(tg.Health), LastError: tg.LastError}
			if tg.LastCheck != "" {
				h.LastCheck, _ = time.Parse(time.RFC3339Nano, tg.LastCheck)
			}
			h.Restarts = t.restarts(tg.ID)
			h.Ports = t.ports(tg.ID)
			out = append(out, h)
		}
	}
	fleet.SortHealth(out)
	return out, nil
}

func healthState(h lb.Health) fleet.HealthState {
	switch fleet.HealthState(h) {
	case fleet.Initial, fleet.Healthy, fleet.Unhealthy, fleet.Draining:
		return fleet.HealthState(h)
	}
	return fleet.Unknown
}

// restarts sums the restarts of an instance's units from its init's status file.
func (t *Target) restarts(id string) int {
	b, err := os.ReadFile(filepath.Join(t.RunDir(), "instances", id, "status.json"))
	if err != nil {
		return 0
	}
	var st boot.Status
	if json.Unmarshal(b, &st) != nil {
		return 0
	}
	n := 0
	for _, u := range st.Units {
		n += u.Restarts
	}
	return n
}

// ports returns the named ports of an instance's components, from its boot spec.
func (t *Target) ports(id string) map[string]int {
	b, err := os.ReadFile(filepath.Join(t.RunDir(), "instances", id, "boot.json"))
	var spec boot.Spec
	if err != nil || json.Unmarshal(b, &spec) != nil {
		return nil
	}
	var out map[string]int
	for k, v := range spec.Env {
		name, ok := strings.CutPrefix(k, "KILN_PORT_")
		if p, err := strconv.Atoi(v); ok && err == nil {
			if out == nil {
				out = map[string]int{}
			}
			out[strings.ToLower(name)] = p
		}
	}
	return out
}

// Destroy stops every instance and the load balancer and forgets the stack's resources.
// Like Heal, it is called holding the stack's lock, so an update still running is a
// leftover of a killed kiln and is ended first.
func (t *Target) Destroy(ctx context.Context, ops func(fleet.ResourceOp)) error {
	if err := t.stack.TakeOver(ctx, 15*time.Second); err != nil {
		return err
	}
	err := t.stack.Destroy(ctx, ops)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(t.RunDir()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
