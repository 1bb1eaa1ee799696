// Package aws is the aws target: a release is baked into an AMI by EC2 Image Builder, each
// slot is an auto scaling group of instances booted from its AMI, and an Application Load
// Balancer's listener weighs the slots' target groups. Pulumi owns every resource (the
// programs are in package program); at run time kiln only reads AWS (package awsapi):
// target health, auto scaling lifecycle, CloudWatch metrics. The one exception is an AMI
// the images stack no longer keeps: Image Builder made it, not the stack, so kiln
// deregisters it and deletes its snapshots.
package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/kilnhq/kiln/targets"
	"github.com/kilnhq/kiln/targets/aws/program"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Name is the target's name in a manifest (target: aws).
const Name = "aws"

var (
	_ targets.Target          = (*Target)(nil)
	_ rollout.Previewer       = (*Target)(nil)
	_ targets.AnalysisSourcer = (*Target)(nil)
)

// ImagesStack is the name of the stack that holds the service's AMIs (see images.go).
func ImagesStack(service string) string { return service + "-images" }

func init() {
	targets.RegisterStacks(Name, func(service string) []string { return []string{service, ImagesStack(service)} })
	targets.Register(Name, func(ctx context.Context, cfg targets.Config) (targets.Target, error) {
		m := cfg.Manifest
		if m.Target.AWS == nil {
			return nil, fmt.Errorf("service %s: the manifest has no target.aws settings", m.Service)
		}
		policies, err := Policies(m, cfg.Catalog)
		if err != nil {
			return nil, err
		}
		ports, err := NamedPorts(m, cfg.Catalog)
		if err != nil {
			return nil, err
		}
		return Open(ctx, Config{StateDir: cfg.StateDir, Service: m.Service, Settings: SettingsOf(*m.Target.AWS),
			PulumiRoot: cfg.PulumiRoot, BinDir: cfg.BinDir, EngineLog: cfg.EngineLog, Images: cfg.Images, Backend: cfg.Backend,
			Policies: policies, NamedPorts: ports, Secrets: m.Secrets, LoadSecrets: cfg.Secrets})
	})
}

// Policies returns the IAM policies of the manifest's baked components, their settings
// substituted: the statements the instance role holds.
func Policies(m *manifests.Manifest, cat *components.Catalog) ([][]byte, error) {
	if len(m.Resolved) == 0 {
		return nil, nil
	}
	if cat == nil {
		return nil, fmt.Errorf("service %s: no component catalog to read the components' policies from", m.Service)
	}
	return program.Policies(m.Resolved, cat)
}

// FirstNamedPort is the port of the first named port of the baked components (in name
// order; the app's own port is skipped): every instance has its own address on aws, so the
// ports are the same on all of them.
const FirstNamedPort = 9100

// NamedPorts gives each named port of the manifest's baked components (kiln-metrics'
// metrics, kiln-backup's status...) a fixed port, KILN_PORT_<NAME> on every instance.
func NamedPorts(m *manifests.Manifest, cat *components.Catalog) (map[string]int, error) {
	if len(m.Resolved) == 0 {
		return nil, nil
	}
	if cat == nil {
		return nil, fmt.Errorf("service %s: no component catalog to read the components' ports from", m.Service)
	}
	defs, err := cat.Resolve(m.Resolved)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range defs {
		for _, p := range d.Unit.Ports {
			if !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
	}
	sort.Strings(names)
	ports := map[string]int{}
	next := FirstNamedPort
	for _, n := range names {
		if next == m.Fleet.Port {
			next++
		}
		ports[n] = next
		next++
	}
	return ports, nil
}

// SettingsOf is the manifest's target.aws as the programs read it.
func SettingsOf(a manifests.AWSTarget) program.Settings {
	return program.Settings{
		Region:          a.Region,
		Subnets:         a.Subnets,
		VPC:             a.VPC,
		InstanceType:    a.InstanceType,
		ParentImage:     a.ParentImage,
		SecurityGroups:  a.SecurityGroups,
		Tags:            a.Tags,
		ArtifactsBucket: a.ArtifactsBucket,
		KeyName:         a.KeyName,
		GracePeriodSecs: int(a.HealthCheckGracePeriod.Seconds()),
		LoadBalancer: program.LoadBalancer{
			Scheme:         a.LoadBalancer.Scheme,
			Port:           a.LoadBalancer.Port,
			CertificateARN: a.LoadBalancer.CertificateARN,
			ListenerARN:    a.LoadBalancer.ListenerARN,
			RulePriority:   a.LoadBalancer.RulePriority,
		},
	}
}

// Config says what the aws target deploys and how it reaches the engine and AWS.
type Config struct {
	// StateDir is kiln's state directory (absolute).
	StateDir string
	// Service names the stacks: <service> is the fleet, <service>-images the artifacts
	// bucket, <service>-image-<digest> one AMI each.
	Service  string
	Settings program.Settings
	// PulumiRoot is the Pulumi CLI installation.
	PulumiRoot string
	// BinDir holds kiln's binaries.
	BinDir string
	// EngineLog receives the engine's raw output.
	EngineLog io.Writer
	// Images is the image store bakes land in (payloads are archived from it).
	Images *images.Store
	// Backend is where the stacks' state lives.
	Backend backend.Backend
	// Policies are the instance role's statements (see Policies).
	Policies [][]byte
	// NamedPorts are the components' ports on every instance (see NamedPorts).
	NamedPorts map[string]int
	// Secrets names the service's secrets; LoadSecrets reads their ciphertexts.
	Secrets     []string
	LoadSecrets func() (releases.Secrets, error)
	// API reads AWS at run time; nil opens clients for Settings.Region with the default
	// credential chain (tests give scripted fakes or the model).
	API API
}

// Target is the aws target for one service.
type Target struct {
	cfg       Config
	fleet     *stacks.Stack
	pluginDir string // holds pulumi-resource-aws
	// The images stack (<service>-images), opened and its outputs read (the Stack keeps
	// them) in the background from Open on; imagesReady is closed once both are done.
	imagesReady chan struct{}
	images      *stacks.Stack
	imagesErr   error
	settled     bool // the fleet stack's orphans were looked for (settle)
	// The fleet stack's state as settle reads it, read ahead from the first Publish on
	// (readStateAhead): a rollout's bake hides the read from its deploy.
	ahead *stateRead

	mu sync.Mutex
}

// Open opens (creating if needed) the service's fleet stack.
func Open(ctx context.Context, cfg Config) (*Target, error) {
	if cfg.API == nil {
		api, err := openAPI(ctx, cfg.Settings.Region, cfg.Service)
		if err != nil {
			return nil, err
		}
		cfg.API = api
	}
	home, err := pulumicli.Home()
	if err != nil {
		return nil, err
	}
	plugin, ok := pulumicli.AWSPlugin.Find(home)
	if !ok {
		return nil, fmt.Errorf("the %s is not installed: run kiln setup (see docs/aws.md)", pulumicli.AWSPlugin)
	}
	t := &Target{cfg: cfg, pluginDir: filepath.Dir(plugin)}
	t.openImages(ctx)
	st, err := t.openStack(ctx, cfg.Service)
	if err != nil {
		return nil, err
	}
	t.fleet = st
	return t, nil
}

// openStack opens one of the service's stacks. The engine gets the region (the provider
// reads AWS_REGION when the program sets none) and, like every provider it starts, the
// AWS credentials in kiln's own environment.
func (t *Target) openStack(ctx context.Context, name string) (*stacks.Stack, error) {
	env := t.cfg.Backend.EngineEnv()
	if env == nil {
		env = map[string]string{}
	}
	env["AWS_REGION"] = t.cfg.Settings.Region
	return stacks.Open(ctx, stacks.Options{
		StateDir:   t.cfg.StateDir,
		Backend:    t.cfg.Backend.PulumiURL(),
		Env:        env,
		Stack:      name,
		PulumiRoot: t.cfg.PulumiRoot,
		PluginDir:  t.pluginDir + string(os.PathListSeparator) + t.cfg.BinDir,
		Log:        t.cfg.EngineLog,
	})
}

// Name returns "aws".
func (t *Target) Name() string { return Name }

// EncryptSecret encrypts a secret with the fleet stack's secrets provider (see
// stacks.Stack.EncryptSecret): `kiln secret set` stores the ciphertext, the fleet program
// puts the value in the secret's SecureString parameter.
func (t *Target) EncryptSecret(ctx context.Context, manager json.RawMessage, name string, value []byte) (string, json.RawMessage, error) {
	return t.fleet.EncryptSecret(ctx, manager, name, value)
}

// Current returns the spec the fleet stack's last update applied: this target's own last
// update's, if it made one, else read from the stack (stacks.Stack.Applied).
func (t *Target) Current(ctx context.Context) (fleet.Spec, bool, error) {
	return t.fleet.Applied(ctx)
}

// program is the fleet program for spec, the service's secrets (as stored now) written
// into the stack's config first.
func (t *Target) program(ctx context.Context, spec fleet.Spec) (pulumi.RunFunc, error) {
	cur, _, err := t.fleet.KnownSpec(ctx)
	if err != nil {
		return nil, err
	}
	in := program.FleetInput{Spec: spec, Settings: t.cfg.Settings, Policies: t.cfg.Policies, NamedPorts: t.cfg.NamedPorts,
		Secrets: t.cfg.Secrets, Frozen: fleet.Frozen(cur, spec)}
	version, err := targets.UseSecrets(ctx, t.fleet, t.cfg.Service, t.cfg.Secrets, t.cfg.LoadSecrets)
	if err != nil {
		return nil, err
	}
	in.SecretsVersion = version
	return program.Fleet(in), nil
}

// groupType is the Pulumi type of an auto scaling group.
const groupType = "aws:autoscaling/group:Group"

// settle removes, before the fleet stack's first update in this process, an auto scaling
// group a killed engine created without recording it: the stack holds a pending create of
// it, AWS holds the group. No stack owns that group, and AWS would refuse the update's
// create of its name. It is reported as a delete. (Other half-done creates are dropped by
// the update, which makes them anew.) The engine calls Apply and Destroy holding the
// stack's lock, so no live engine is at work on it.
func (t *Target) settle(ctx context.Context, ops func(fleet.ResourceOp)) error {
	t.mu.Lock()
	done := t.settled
	t.mu.Unlock()
	if done {
		return nil
	}
	state, err := t.fleetState(ctx)
	if err != nil {
		return err
	}
	held := state.ResourceIDs(groupType)
	for _, p := range state.PendingCreates() {
		name, _ := p.Inputs["name"].(string)
		if p.Type != groupType || name == "" {
			continue
		}
		if held[name] {
			continue // the stack holds a group of that name: not an orphan
		}
		op := fleet.ResourceOp{Op: "delete", Type: groupType, Name: name, Status: fleet.OpStarted}
		report(ops, op)
		start := time.Now()
		found, err := t.cfg.API.RemoveOrphanGroup(ctx, name)
		op.Duration = time.Since(start)
		switch {
		case err != nil:
			op.Status, op.Error = fleet.OpFailed, err.Error()
			report(ops, op)
			return err
		case found:
			op.Status = fleet.OpDone
			report(ops, op)
		}
	}
	t.mu.Lock()
	t.settled = true
	t.mu.Unlock()
	return nil
}

// stateRead is one read of the fleet stack's state; ready is closed when it is done.
type stateRead struct {
	ready chan struct{}
	state *stacks.State
	err   error
}

// readStateAhead starts reading the fleet stack's state for settle in the background,
// unless a read is under way or done; Publish calls it, as the bake comes before the
// fleet stack's first update.
func (t *Target) readStateAhead(ctx context.Context) *stateRead {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ahead == nil {
		r := &stateRead{ready: make(chan struct{})}
		go func() {
			defer close(r.ready)
			r.state, r.err = t.fleet.State(ctx)
		}()
		t.ahead = r
	}
	return t.ahead
}

// fleetState is the fleet stack's state as read ahead, or read now if no read was started
// or it failed (its context may have ended with the bake's).
func (t *Target) fleetState(ctx context.Context) (*stacks.State, error) {
	r := t.readStateAhead(ctx)
	select {
	case <-r.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err == nil {
		return r.state, nil
	}
	return t.fleet.State(ctx)
}

// unsettle makes the next update look for orphans again, in the state read anew: after
// TakeOver, since an engine that was still at work may have changed it.
func (t *Target) unsettle() {
	t.mu.Lock()
	t.settled, t.ahead = false, nil
	t.mu.Unlock()
}

func report(ops func(fleet.ResourceOp), op fleet.ResourceOp) {
	if ops != nil {
		ops(op)
	}
}

// Apply converges the fleet stack to spec.
func (t *Target) Apply(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	if err := t.settle(ctx, ops); err != nil {
		return err
	}
	prog, err := t.program(ctx, spec)
	if err != nil {
		return err
	}
	_, err = t.fleet.Up(ctx, prog, ops)
	return err
}

// Preview reports what applying spec would do: the Pulumi plan.
func (t *Target) Preview(ctx context.Context, spec fleet.Spec, ops func(fleet.ResourceOp)) error {
	prog, err := t.program(ctx, spec)
	if err != nil {
		return err
	}
	_, err = t.fleet.Preview(ctx, prog, ops)
	return err
}

// Destroy removes the fleet: groups, templates, target groups, the balancer, the role.
// The AMIs stay (kiln destroy of a service's images is CollectImages with keep 0).
func (t *Target) Destroy(ctx context.Context, ops func(fleet.ResourceOp)) error {
	if err := t.fleet.TakeOver(ctx, takeOverGrace); err != nil {
		return err
	}
	t.unsettle()
	if err := t.settle(ctx, ops); err != nil {
		return err
	}
	return t.fleet.Destroy(ctx, ops)
}

func (t *Target) output(ctx context.Context, name string) (auto.OutputValue, error) {
	outs, err := t.fleet.KnownOutputs(ctx)
	if err != nil {
		return auto.OutputValue{}, err
	}
	v, ok := outs[name]
	if !ok || v.Value == nil {
		return auto.OutputValue{}, fmt.Errorf("stack %s has no %s yet: nothing was deployed", t.cfg.Service, name)
	}
	return v, nil
}

// Endpoint returns the URL users reach the service at.
func (t *Target) Endpoint(ctx context.Context) (string, error) {
	v, err := t.output(ctx, program.OutputEndpoint)
	if err != nil {
		return "", err
	}
	s, _ := v.Value.(string)
	return s, nil
}

// slotOutputs reads an output that maps slot names to strings.
func (t *Target) slotOutputs(ctx context.Context, name string) (map[fleet.Slot]string, error) {
	outs, err := t.fleet.KnownOutputs(ctx)
	if err != nil {
		return nil, err
	}
	m := map[fleet.Slot]string{}
	raw, _ := outs[name].Value.(map[string]any)
	for k, v := range raw {
		if s, ok := v.(string); ok && fleet.Slot(k).Valid() && s != "" {
			m[fleet.Slot(k)] = s
		}
	}
	return m, nil
}

// Health reads every instance as the balancer's target groups and the auto scaling groups
// see it.
func (t *Target) Health(ctx context.Context) ([]fleet.InstanceHealth, error) {
	tgs, err := t.slotOutputs(ctx, program.OutputTargetGroups)
	if err != nil {
		return nil, err
	}
	if len(tgs) == 0 {
		return nil, fmt.Errorf("stack %s has no target groups yet: nothing was deployed", t.cfg.Service)
	}
	groups, err := t.slotOutputs(ctx, program.OutputGroups)
	if err != nil {
		return nil, err
	}
	return t.cfg.API.Health(ctx, tgs, groups)
}

// errNoMetrics is an analysis asked for before the balancer exists.
var errNoMetrics = errors.New("the fleet has no load balancer yet: nothing to read metrics of")
