// Package schema is the one declaration of the local target's Pulumi resources: their
// type tokens and the shape of their inputs. The fleet program (package local) builds
// these structs and the provider (pulumi-resource-kiln) decodes them, so a property is
// named once, in a JSON tag here, and both sides follow it.
package schema

import "github.com/kilnhq/kiln/targets/local/lb"

// Provider is the plugin name: the engine runs pulumi-resource-<Provider>.
const Provider = "kiln"

// Resource type tokens of the local target.
const (
	ImageType        = Provider + ":local:Image"
	InstanceType     = Provider + ":local:Instance"
	LoadBalancerType = Provider + ":local:LoadBalancer"
)

// Stack outputs the local fleet program exports beside the spec.
const (
	// OutputAddress is the load balancer's listen address.
	OutputAddress = "address"
	// OutputAdmin is the load balancer's admin API address.
	OutputAdmin = "admin"
	// OutputRunDir is the directory of the instances' and the balancer's files.
	OutputRunDir = "runDir"
)

// Image pins a baked image directory of kiln's image store.
type Image struct {
	// Digest is the image's content digest, "sha256:<hex>".
	Digest string `json:"digest"`
	// Dir is the image directory.
	Dir string `json:"dir"`
}

// Instance is one instance booted from an image. Any change replaces it. S is the type of
// a secret's value: string in the provider, a secret Pulumi output in the program, so the
// values are encrypted wherever they enter the stack's state.
type Instance[S any] struct {
	Service string `json:"service"`
	Slot    string `json:"slot"`
	Index   int    `json:"index"`
	Version string `json:"version"`
	// ImageDir and Digest name the image the instance boots from.
	ImageDir string `json:"imageDir"`
	Digest   string `json:"digest"`
	// RunDir is the target's run directory; the instance's data dir is made under it.
	RunDir string `json:"runDir"`
	// Env is added to the environment of the image's units.
	Env map[string]string `json:"env"`
	// DrainTimeout is how long the instance's units get after SIGTERM (a Go duration).
	DrainTimeout string `json:"drainTimeout"`
	// SecretsVersion is the version of the secrets the instance's release runs with:
	// a new version replaces the instance like a new image does.
	SecretsVersion string `json:"secretsVersion,omitempty"`
	// Secrets are the service's secrets, name to value, handed to kiln-boot when the
	// instance starts (never written to a file, argv or the provider's outputs).
	Secrets map[string]S `json:"secrets,omitempty"`
}

// Input properties of an instance that a program names.
const (
	InstanceSecrets      = "secrets"      // its secrets
	InstanceEnv          = "env"          // the env added to its units'
	InstanceDrainTimeout = "drainTimeout" // its units' drain timeout
)

// InstanceOutputs are what the provider adds to an instance's inputs.
type InstanceOutputs struct {
	// Address is where the app listens, host:port.
	Address string `json:"address,omitempty"`
}

// LoadBalancer is kiln's weighted reverse proxy in front of both slots. S is the type of
// the values only known once the instances exist (their IDs and addresses): string in
// the provider, a Pulumi output in the program.
type LoadBalancer[S any] struct {
	Service      string         `json:"service"`
	RunDir       string         `json:"runDir"`
	Listen       string         `json:"listen"`
	DrainTimeout lb.Duration    `json:"drainTimeout"`
	Health       lb.HealthCheck `json:"health"`
	Proxy        lb.Proxy       `json:"proxy"`
	Groups       []Group[S]     `json:"groups"`
}

// Group is one slot behind the load balancer.
type Group[S any] struct {
	Name    string      `json:"name"`
	Weight  int         `json:"weight"`
	Targets []Target[S] `json:"targets"`
}

// Target is one instance of a group.
type Target[S any] struct {
	ID      S `json:"id"`
	Address S `json:"address"`
}

// LoadBalancerOutputs are what the provider adds to a load balancer's inputs.
type LoadBalancerOutputs struct {
	Address string `json:"address,omitempty"`
	Admin   string `json:"admin,omitempty"`
}

// LBGroups turns the provider's view of the groups into the load balancer's own config.
func LBGroups(gs []Group[string]) []lb.Group {
	out := make([]lb.Group, 0, len(gs))
	for _, g := range gs {
		lg := lb.Group{Name: g.Name, Weight: g.Weight, Targets: []lb.Target{}}
		for _, t := range g.Targets {
			lg.Targets = append(lg.Targets, lb.Target{ID: t.ID, Address: t.Address})
		}
		out = append(out, lg)
	}
	return out
}
