package local

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/kilnhq/kiln/targets/local/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// programConfig is what the local target adds to a fleet spec.
type programConfig struct {
	// Listen is the load balancer's address; port 0 picks a free port once.
	Listen string
	// LB bounds the load balancer; it reaches kiln lb's config as its proxy section.
	LB lb.Proxy
	// RunDir holds the instances' data dirs and the load balancer's files (absolute).
	RunDir string
	// Secrets are the names of the service's secrets, read from the stack's config.
	Secrets []string
	// SecretsVersion is the version of the secrets the stack's config holds now.
	SecretsVersion string
	// Frozen are the slots whose release runs already (fleet.Frozen): their instances
	// keep the env and drain timeout they were started with.
	Frozen map[fleet.Slot]bool
}

// The resources' state as the program sees it. Their pulumi tags name outputs declared in
// package schema (a test holds them to it).
type imageState struct {
	pulumi.CustomResourceState
}

type instanceState struct {
	pulumi.CustomResourceState
	Address pulumi.StringOutput `pulumi:"address"`
}

type loadBalancerState struct {
	pulumi.CustomResourceState
	Address pulumi.StringOutput `pulumi:"address"`
	Admin   pulumi.StringOutput `pulumi:"admin"`
}

// fleetProgram is the program of a fleet on the local target: per slot an image and its
// instances, and one load balancer whose groups are the slots, weighted as the spec says.
// It exports the spec itself, so the next rollout starts from what was really applied.
func fleetProgram(spec fleet.Spec, cfg programConfig) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if err := spec.Validate(); err != nil {
			return err
		}
		drain := spec.DrainTimeout.String()
		var secrets map[string]pulumi.StringInput // nil without secrets: the input is left out
		for _, name := range cfg.Secrets {
			v, ok := ctx.GetConfig(stacks.SecretConfigKey(name))
			if !ok {
				return fmt.Errorf("secret %s is not in the stack's config: set it with kiln secret set %s", name, name)
			}
			if secrets == nil {
				secrets = map[string]pulumi.StringInput{}
			}
			// Marked secret, the value is encrypted wherever it enters the state.
			secrets[name] = pulumi.ToSecret(pulumi.String(v)).(pulumi.StringOutput)
		}
		balancer := schema.LoadBalancer[pulumi.StringInput]{
			Service:      spec.Service,
			RunDir:       cfg.RunDir,
			Listen:       cfg.Listen,
			DrainTimeout: lb.Duration(spec.DrainTimeout),
			Health: lb.HealthCheck{Path: spec.Health.Path, Interval: lb.Duration(spec.Health.Interval), Timeout: lb.Duration(spec.Health.Timeout),
				HealthyThreshold: spec.Health.HealthyThreshold, UnhealthyThreshold: spec.Health.UnhealthyThreshold},
			Proxy: cfg.LB,
		}
		for _, slot := range fleet.Slots {
			sp := spec.Slots[slot]
			group := schema.Group[pulumi.StringInput]{Name: string(slot), Weight: sp.Weight, Targets: []schema.Target[pulumi.StringInput]{}}
			if !sp.Empty() {
				var img imageState
				err := register(ctx, schema.ImageType, fmt.Sprintf("%s-%s-image", spec.Service, slot),
					schema.Image{Digest: sp.Release.Image.Digest, Dir: sp.Release.Image.Location}, &img)
				if err != nil {
					return err
				}
				opts := []pulumi.ResourceOption{pulumi.DependsOn([]pulumi.Resource{&img})}
				if cfg.Frozen[slot] {
					// An instance's inputs are immutable: a changed env or drain timeout
					// would replace (restart) the instances carrying the traffic.
					opts = append(opts, pulumi.IgnoreChanges([]string{schema.InstanceEnv, schema.InstanceDrainTimeout}))
				}
				if sp.Release.Secrets != cfg.SecretsVersion {
					// The slot runs with secrets set before the current ones: its
					// instances keep the values they were created with, so that a
					// secret changed mid-rollout replaces no instance of the old slot.
					opts = append(opts, pulumi.IgnoreChanges([]string{schema.InstanceSecrets}))
				}
				for i := 0; i < sp.Size; i++ {
					var inst instanceState
					err := register(ctx, schema.InstanceType, fmt.Sprintf("%s-%s-%d", spec.Service, slot, i), schema.Instance[pulumi.StringInput]{
						Service:        spec.Service,
						Slot:           string(slot),
						Index:          i,
						Version:        sp.Release.Version,
						ImageDir:       sp.Release.Image.Location,
						Digest:         sp.Release.Image.Digest,
						RunDir:         cfg.RunDir,
						Env:            spec.Env,
						DrainTimeout:   drain,
						SecretsVersion: sp.Release.Secrets,
						Secrets:        secrets,
					}, &inst, opts...)
					if err != nil {
						return err
					}
					group.Targets = append(group.Targets, schema.Target[pulumi.StringInput]{ID: inst.ID().ToStringOutput(), Address: inst.Address})
				}
			}
			balancer.Groups = append(balancer.Groups, group)
		}
		var lbs loadBalancerState
		if err := register(ctx, schema.LoadBalancerType, spec.Service+"-lb", balancer, &lbs); err != nil {
			return err
		}
		b, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		ctx.Export(stacks.OutputSpec, pulumi.String(string(b)))
		ctx.Export(schema.OutputAddress, lbs.Address)
		ctx.Export(schema.OutputAdmin, lbs.Admin)
		ctx.Export(schema.OutputRunDir, pulumi.String(cfg.RunDir))
		return nil
	}
}

// register registers a resource whose inputs are one of package schema's structs.
func register(ctx *pulumi.Context, typ, name string, args any, state pulumi.CustomResource, opts ...pulumi.ResourceOption) error {
	in, err := inputs(reflect.ValueOf(args))
	if err != nil {
		return fmt.Errorf("%s %s: %w", typ, name, err)
	}
	m, ok := in.(pulumi.Map)
	if !ok {
		return fmt.Errorf("%s %s: inputs are not an object", typ, name)
	}
	return ctx.RegisterResource(typ, name, m, state, opts...)
}

var (
	inputType     = reflect.TypeFor[pulumi.Input]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// inputs turns a schema value into Pulumi inputs, naming every property by its JSON tag,
// so the provider, which decodes the same struct from JSON, reads what was written. Values
// that already are Pulumi inputs (outputs of other resources) are passed as they are.
func inputs(v reflect.Value) (pulumi.Input, error) {
	if v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil, nil
		}
		v = v.Elem()
	}
	t := v.Type()
	switch {
	case t.Implements(inputType):
		return v.Interface().(pulumi.Input), nil
	case t.Implements(marshalerType):
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, err
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil || x == nil {
			return nil, err
		}
		return inputs(reflect.ValueOf(x))
	}
	switch t.Kind() {
	case reflect.String:
		return pulumi.String(v.String()), nil
	case reflect.Bool:
		return pulumi.Bool(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return pulumi.Int(int(v.Int())), nil
	case reflect.Float32, reflect.Float64:
		return pulumi.Float64(v.Float()), nil
	case reflect.Slice:
		arr := pulumi.Array{}
		for i := range v.Len() {
			e, err := inputs(v.Index(i))
			if err != nil {
				return nil, err
			}
			arr = append(arr, e)
		}
		return arr, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s is not a string", t.Key())
		}
		m := pulumi.Map{}
		for _, k := range v.MapKeys() {
			e, err := inputs(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			m[k.String()] = e
		}
		return m, nil
	case reflect.Struct:
		m := pulumi.Map{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			e, err := inputs(fv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			m[name] = e
		}
		return m, nil
	}
	return nil, fmt.Errorf("cannot express a %s as a Pulumi input", t)
}
