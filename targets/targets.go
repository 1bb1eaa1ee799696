// Package targets is the registry of kiln's targets: where a fleet runs. A target
// registers itself by name (local, aws); kiln opens the one a manifest names through
// Open and never imports a target's own packages.
package targets

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/backend"
	"github.com/kilnhq/kiln/components"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/images"
	"github.com/kilnhq/kiln/manifests"
	"github.com/kilnhq/kiln/releases"
	"github.com/kilnhq/kiln/rollout"
	"github.com/kilnhq/kiln/stacks"
)

// Target is a target opened for one service: the engine's rollout.Target, plus what kiln
// does around a rollout that depends on where the fleet runs.
type Target interface {
	rollout.Target
	// Publish makes a baked image bootable on the target and returns it as the fleet
	// knows it (local: the image directory itself; aws: an AMI).
	Publish(ctx context.Context, img *images.Image) (fleet.Image, error)
	// CollectImages removes the service's published images beyond the newest keep,
	// never one in inUse, and returns the digests it removed.
	CollectImages(ctx context.Context, keep int, inUse []fleet.Image) ([]string, error)
}

// AnalysisSourcer is implemented by targets whose metrics a runner reads from a store of
// the target's own rather than by scraping instances (aws: CloudWatch, since a CI runner
// cannot reach instances' private addresses). Targets without it are scraped.
type AnalysisSourcer interface {
	// AnalysisSource returns the source the analysis template t reads for slot.
	AnalysisSource(ctx context.Context, t analysis.Template, slot fleet.Slot) (analysis.Source, error)
}

// PublishPreviewer is implemented by targets whose Publish costs real time and money (aws:
// an Image Builder run). PreviewPublish reports the operations publishing img would make
// and returns the image as the fleet would know it, changing nothing; an image not
// published yet has a placeholder location.
type PublishPreviewer interface {
	PreviewPublish(ctx context.Context, img *images.Image, ops func(fleet.ResourceOp)) (fleet.Image, error)
}

// ImageKeeper is implemented by targets that keep the images they published where any
// machine can find them (aws: the AMIs of the images stack), not only in the image store
// of the host that baked them: a rollback from another machine (a CI runner) returns to a
// kept image without re-baking it.
type ImageKeeper interface {
	// KeptImage returns the published image of digest, or false if the target keeps none.
	KeptImage(ctx context.Context, digest string) (fleet.Image, bool, error)
}

// HealthPacer is implemented by targets whose health reading is a call against an API's
// rate limits (aws: ELBv2, Auto Scaling and EC2, three calls a reading): a console reads
// it no more often than HealthInterval. Other targets are read every second.
type HealthPacer interface {
	HealthInterval() time.Duration
}

// ConsoleInterval is how often a console reads tgt's health and status.
func ConsoleInterval(tgt any) time.Duration {
	if p, ok := tgt.(HealthPacer); ok {
		return max(p.HealthInterval(), time.Second)
	}
	return time.Second
}

// Config is what opening a target needs.
type Config struct {
	// Manifest is the service's manifest; a target reads its own settings from it.
	Manifest *manifests.Manifest
	// StateDir is kiln's state directory on this host (absolute).
	StateDir string
	// BinDir holds kiln's binaries (the provider plugins, kiln-boot, kiln-lb).
	BinDir string
	// PulumiRoot is the Pulumi CLI installation targets drive.
	PulumiRoot string
	// EngineLog receives the Pulumi engine's raw output.
	EngineLog io.Writer
	// Images is the image store on this host that bakes land in.
	Images *images.Store
	// Catalog holds the definitions of the manifest's components (a cloud target grants
	// the instances what their policies ask for).
	Catalog *components.Catalog
	// Backend is where the stack's Pulumi state lives.
	Backend backend.Backend
	// Secrets reads the stack's encrypted secrets (the manifest's secrets section names
	// those the fleet gets); nil when there is no store to read them from.
	Secrets func() (releases.Secrets, error)
}

// Opener opens a target for the service of cfg.Manifest.
type Opener func(ctx context.Context, cfg Config) (Target, error)

var (
	mu         sync.Mutex
	openers    = map[string]Opener{}
	stackNamer = map[string]func(service string) []string{}
)

// Register makes a target available by name. It panics if the name is taken: two
// targets of one name are a programming error.
func Register(name string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[name]; dup {
		panic("targets: " + name + " registered twice")
	}
	openers[name] = open
}

// RegisterStacks names, for the target of that name, the Pulumi stacks it keeps for a
// service, when it keeps more than the one named after the service (aws: the fleet's and
// the images'). What moves a service's state (kiln state migrate) moves them all.
func RegisterStacks(name string, stacks func(service string) []string) {
	mu.Lock()
	defer mu.Unlock()
	stackNamer[name] = stacks
}

// Stacks returns the names of the Pulumi stacks the target keeps for service.
func Stacks(target, service string) []string {
	mu.Lock()
	fn := stackNamer[target]
	mu.Unlock()
	if fn == nil {
		return []string{service}
	}
	return fn(service)
}

// Names lists the registered targets.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for n := range openers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownError is a manifest naming a target this kiln does not have.
type UnknownError struct {
	Name  string
	Known []string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("target %q cannot be deployed by this kiln (it has: %v)", e.Name, e.Known)
}

// Open opens the target cfg.Manifest names.
func Open(ctx context.Context, cfg Config) (Target, error) {
	name := cfg.Manifest.Target.Name()
	mu.Lock()
	open, ok := openers[name]
	mu.Unlock()
	if !ok {
		return nil, &UnknownError{Name: name, Known: Names()}
	}
	return open(ctx, cfg)
}

// Has reports whether a target of that name is registered.
func Has(name string) bool { return slices.Contains(Names(), name) }

// UseSecrets writes the service's secrets (names), as its store holds them now (load), into
// the stack's config for the next run of the stack's program, and returns their version
// ("" for a service without secrets).
func UseSecrets(ctx context.Context, st *stacks.Stack, service string, names []string, load func() (releases.Secrets, error)) (string, error) {
	ciphertexts := map[string]string{}
	var manager []byte
	version := ""
	if len(names) > 0 {
		if load == nil {
			return "", fmt.Errorf("service %s has secrets but no store to read them from", service)
		}
		doc, err := load()
		if err != nil {
			return "", err
		}
		for _, name := range names {
			if sec, ok := doc.Values[name]; ok {
				ciphertexts[name] = sec.Ciphertext
			}
		}
		manager, version = doc.Manager, doc.Version
	}
	return version, st.UseSecrets(ctx, manager, ciphertexts)
}
