// Package fleet is the vocabulary shared by the rollout engine, the targets and the
// consoles: slots, releases, the desired shape of a fleet and what its health looks like.
// It knows nothing of processes, AMIs or Pulumi, so both the local and the aws targets
// can speak it.
package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Slot names one of the two halves of a blue-green fleet.
type Slot string

// The two slots. Which one is live changes with every release.
const (
	Blue  Slot = "blue"
	Green Slot = "green"
)

// Slots lists both slots in a stable order.
var Slots = []Slot{Blue, Green}

// Other returns the slot that is not s.
func (s Slot) Other() Slot {
	if s == Blue {
		return Green
	}
	return Blue
}

// Valid reports whether s is blue or green.
func (s Slot) Valid() bool { return s == Blue || s == Green }

// Image identifies a baked image on a target: a content digest, and where the target
// finds it (a directory for local, an AMI ID for aws).
type Image struct {
	Digest   string `json:"digest"`
	Location string `json:"location"`
}

// Short returns the first 12 hex digits of the digest, for display.
func (i Image) Short() string {
	d := i.Digest
	if len(d) > 7 && d[:7] == "sha256:" {
		d = d[7:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// Release is one version of the service baked into one image.
type Release struct {
	Version string `json:"version"`
	Image   Image  `json:"image"`
	// Secrets is the version of the stack's secrets the release runs with (a random ID
	// renewed whenever a secret is set or removed, never derived from a value); empty
	// when the service has none. A release is its image and its secrets: changing a
	// secret makes a new release of the same image.
	Secrets string `json:"secrets,omitempty"`
}

// String returns "version (digest)", or "version (digest, secrets v)" when the release
// has secrets.
func (r Release) String() string {
	if r.Secrets != "" {
		return fmt.Sprintf("%s (%s, secrets %s)", r.Version, r.Image.Short(), r.Secrets)
	}
	return fmt.Sprintf("%s (%s)", r.Version, r.Image.Short())
}

// SlotSpec is the desired state of one slot. A slot without a release has no instances.
type SlotSpec struct {
	Release *Release `json:"release,omitempty"`
	Size    int      `json:"size"`
	// Weight is the share of traffic in percent (0..100) sent to this slot.
	Weight int `json:"weight"`
}

// Empty reports whether the slot holds nothing.
func (s SlotSpec) Empty() bool { return s.Release == nil || s.Size == 0 }

// Frozen are the slots of next whose release cur runs already: the stable slot while the
// other deploys, both during a traffic step. A target keeps such a slot's instances as
// they were launched, so that a change of the fleet's settings (its env, its drain
// timeout, a target's own settings) reaches a slot with its next release, never by
// replacing the instances that carry the traffic; a rollback finds them unchanged.
func Frozen(cur, next Spec) map[Slot]bool {
	out := map[Slot]bool{}
	for _, sl := range Slots {
		a, b := cur.Slots[sl], next.Slots[sl]
		if !a.Empty() && !b.Empty() && *a.Release == *b.Release {
			out[sl] = true
		}
	}
	return out
}

// HealthCheck is how the traffic layer decides an instance may receive requests.
type HealthCheck struct {
	Path               string        `json:"path"`
	Interval           time.Duration `json:"interval"`
	Timeout            time.Duration `json:"timeout"`
	HealthyThreshold   int           `json:"healthyThreshold"`
	UnhealthyThreshold int           `json:"unhealthyThreshold"`
}

// Spec is the desired shape of a whole fleet: both slots and how traffic is split.
type Spec struct {
	Service      string            `json:"service"`
	Port         int               `json:"port"`
	Health       HealthCheck       `json:"health"`
	DrainTimeout time.Duration     `json:"drainTimeout"`
	Env          map[string]string `json:"env,omitempty"`
	Slots        map[Slot]SlotSpec `json:"slots"`
}

// Live returns the slot that carries most of the traffic, and false when no slot
// carries any.
func (s Spec) Live() (Slot, bool) {
	best, found := Blue, false
	for _, sl := range Slots {
		sp := s.Slots[sl]
		if sp.Weight > 0 && !sp.Empty() && (!found || sp.Weight > s.Slots[best].Weight) {
			best, found = sl, true
		}
	}
	return best, found
}

// Validate checks the invariants every target relies on.
func (s Spec) Validate() error {
	total := 0
	for sl, sp := range s.Slots {
		if !sl.Valid() {
			return fmt.Errorf("fleet %s: unknown slot %q", s.Service, sl)
		}
		if sp.Weight < 0 || sp.Weight > 100 {
			return fmt.Errorf("fleet %s: slot %s: weight %d is not within 0..100", s.Service, sl, sp.Weight)
		}
		if sp.Weight > 0 && sp.Empty() {
			return fmt.Errorf("fleet %s: slot %s has weight %d but no instances", s.Service, sl, sp.Weight)
		}
		if sp.Size < 0 {
			return fmt.Errorf("fleet %s: slot %s: negative size", s.Service, sl)
		}
		total += sp.Weight
	}
	if total != 0 && total != 100 {
		return fmt.Errorf("fleet %s: weights add up to %d, want 100", s.Service, total)
	}
	return nil
}

// Clone returns a deep copy, so a caller may change the copy's slots freely.
func (s Spec) Clone() Spec {
	c := s
	c.Slots = make(map[Slot]SlotSpec, len(s.Slots))
	for k, v := range s.Slots {
		if v.Release != nil {
			r := *v.Release
			v.Release = &r
		}
		c.Slots[k] = v
	}
	if s.Env != nil {
		c.Env = make(map[string]string, len(s.Env))
		for k, v := range s.Env {
			c.Env[k] = v
		}
	}
	return c
}

// HealthState is what the traffic layer thinks of one instance.
type HealthState string

// Health states, the same words an ALB uses for its targets.
const (
	Initial   HealthState = "initial"
	Healthy   HealthState = "healthy"
	Unhealthy HealthState = "unhealthy"
	Draining  HealthState = "draining"
	Unknown   HealthState = "unknown"
)

// InstanceHealth is one instance as the traffic layer sees it.
type InstanceHealth struct {
	ID        string      `json:"id"`
	Slot      Slot        `json:"slot"`
	Address   string      `json:"address"`
	State     HealthState `json:"state"`
	LastCheck time.Time   `json:"lastCheck,omitzero"`
	LastError string      `json:"lastError,omitempty"`
	Restarts  int         `json:"restarts"`
	// Ports are the named ports of the instance's baked components (KILN_PORT_<NAME>),
	// by lower-case name, when the target knows them.
	Ports map[string]int `json:"ports,omitempty"`
	// Backup is the state of the instance's kiln-backup agent, when it bakes one:
	// active (it holds its table's lease) or standby.
	Backup string `json:"backup,omitempty"`
}

// AllHealthy reports whether want instances are present and every one is healthy.
func AllHealthy(hs []InstanceHealth, want int) bool {
	n := 0
	for _, h := range hs {
		if h.State != Healthy {
			return false
		}
		n++
	}
	return n == want
}

// SortHealth orders instances by slot, then ID.
func SortHealth(hs []InstanceHealth) {
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].Slot != hs[j].Slot {
			return hs[i].Slot < hs[j].Slot
		}
		return hs[i].ID < hs[j].ID
	})
}

// ResourceOp is one resource operation of a target's infrastructure engine (for the
// local and aws targets, a Pulumi step), reported when it starts and when it ends.
type ResourceOp struct {
	// Op is the engine's word: create, update, delete, replace, create-replacement,
	// delete-replaced, refresh, read.
	Op string `json:"op"`
	// Type is the resource type, e.g. kiln:local:Instance.
	Type string `json:"type"`
	// Name is the resource's logical name.
	Name string `json:"name"`
	// Status is started, done or failed.
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// Resource operation statuses.
const (
	OpStarted = "started"
	OpDone    = "done"
	OpFailed  = "failed"
)

// URL returns an endpoint as a URL: a target's endpoint is either one (aws: the balancer's
// https://…) or a host:port served over plain HTTP (local).
func URL(endpoint string) string {
	if strings.Contains(endpoint, "://") {
		return endpoint
	}
	return "http://" + endpoint
}
