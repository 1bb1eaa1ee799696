package stacks

import (
	"encoding/json"
	"fmt"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Resource type tokens of kiln's own provider (pulumi-resource-kiln).
const (
	LocalImageType        = "kiln:local:Image"
	LocalInstanceType     = "kiln:local:Instance"
	LocalLoadBalancerType = "kiln:local:LoadBalancer"
)

// Stack output names every fleet program exports.
const (
	OutputSpec    = "spec"
	OutputAddress = "address"
	OutputAdmin   = "admin"
)

// LocalConfig is what the local target adds to a fleet spec.
type LocalConfig struct {
	// Listen is the load balancer's address; port 0 picks a free port once.
	Listen string
	// LB bounds the load balancer; it reaches kiln lb's config as its proxy section.
	LB lb.Proxy
	// RunDir holds the instances' data dirs and the load balancer's files (absolute).
	RunDir string
}

type localImage struct {
	pulumi.CustomResourceState
	Digest pulumi.StringOutput `pulumi:"digest"`
}

type localInstance struct {
	pulumi.CustomResourceState
	Address pulumi.StringOutput `pulumi:"address"`
}

type localLoadBalancer struct {
	pulumi.CustomResourceState
	Address pulumi.StringOutput `pulumi:"address"`
	Admin   pulumi.StringOutput `pulumi:"admin"`
}

// LocalFleet is the program of a fleet on the local target: per slot an image and its
// instances, and one load balancer whose groups are the slots, weighted as the spec says.
// It exports the spec itself, so the next rollout starts from what was really applied.
func LocalFleet(spec fleet.Spec, cfg LocalConfig) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if err := spec.Validate(); err != nil {
			return err
		}
		drain := spec.DrainTimeout.String()
		var groups pulumi.Array
		for _, slot := range fleet.Slots {
			sp := spec.Slots[slot]
			targets := pulumi.Array{}
			if !sp.Empty() {
				var img localImage
				err := ctx.RegisterResource(LocalImageType, fmt.Sprintf("%s-%s-image", spec.Service, slot), pulumi.Map{
					"digest": pulumi.String(sp.Release.Image.Digest),
					"dir":    pulumi.String(sp.Release.Image.Location),
				}, &img)
				if err != nil {
					return err
				}
				env := pulumi.StringMap{}
				for k, v := range spec.Env {
					env[k] = pulumi.String(v)
				}
				for i := 0; i < sp.Size; i++ {
					var inst localInstance
					err := ctx.RegisterResource(LocalInstanceType, fmt.Sprintf("%s-%s-%d", spec.Service, slot, i), pulumi.Map{
						"service":      pulumi.String(spec.Service),
						"slot":         pulumi.String(string(slot)),
						"index":        pulumi.Int(i),
						"version":      pulumi.String(sp.Release.Version),
						"imageDir":     pulumi.String(sp.Release.Image.Location),
						"digest":       img.Digest,
						"runDir":       pulumi.String(cfg.RunDir),
						"env":          env,
						"drainTimeout": pulumi.String(drain),
					}, &inst, pulumi.DependsOn([]pulumi.Resource{&img}))
					if err != nil {
						return err
					}
					targets = append(targets, pulumi.Map{"id": inst.ID(), "address": inst.Address})
				}
			}
			groups = append(groups, pulumi.Map{
				"name":    pulumi.String(string(slot)),
				"weight":  pulumi.Int(sp.Weight),
				"targets": targets,
			})
		}
		proxy, err := jsonInput(cfg.LB)
		if err != nil {
			return err
		}
		var balancer localLoadBalancer
		err = ctx.RegisterResource(LocalLoadBalancerType, spec.Service+"-lb", pulumi.Map{
			"service":      pulumi.String(spec.Service),
			"runDir":       pulumi.String(cfg.RunDir),
			"listen":       pulumi.String(cfg.Listen),
			"drainTimeout": pulumi.String(drain),
			"health": pulumi.Map{
				"path":               pulumi.String(spec.Health.Path),
				"interval":           pulumi.String(spec.Health.Interval.String()),
				"timeout":            pulumi.String(spec.Health.Timeout.String()),
				"healthyThreshold":   pulumi.Int(spec.Health.HealthyThreshold),
				"unhealthyThreshold": pulumi.Int(spec.Health.UnhealthyThreshold),
			},
			"proxy":  proxy,
			"groups": groups,
		}, &balancer)
		if err != nil {
			return err
		}
		b, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		ctx.Export(OutputSpec, pulumi.String(string(b)))
		ctx.Export(OutputAddress, balancer.Address)
		ctx.Export(OutputAdmin, balancer.Admin)
		return nil
	}
}

// jsonInput passes v to the provider in the shape of its JSON encoding, the shape the
// provider decodes it from.
func jsonInput(v any) (pulumi.Map, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return pulumi.ToMap(m), nil
}
