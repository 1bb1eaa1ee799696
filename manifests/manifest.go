// Package manifests reads kiln.yaml, the manifest of one service, strictly: every unknown field,
// wrong type, bad value and missing field is reported at once, each with file:line:column and the
// field path. The decoded Manifest has every default applied and its components resolved
// against a Catalog.
package manifests

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/kilnhq/kiln/analysis"
	"github.com/kilnhq/kiln/internal/strictyaml"
)

// APIVersion is the only manifest format this package reads.
const APIVersion = "kiln/v1"

// StrategyBlueGreen is the only rollout strategy: a new slot boots beside the old one and
// traffic moves once it is healthy.
const StrategyBlueGreen = "blue-green"

// Defaults applied to fields the manifest leaves out.
const (
	DefaultHealthInterval      = 2 * time.Second
	DefaultHealthTimeout       = 1 * time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3
	DefaultProgressDeadline    = 10 * time.Minute
	DefaultDrainTimeout        = 15 * time.Second
	DefaultListen              = "127.0.0.1:8080"
	DefaultImagesKeep          = 5
	DefaultScaleDownDelay      = 30 * time.Second
	DefaultAbortScaleDownDelay = 0 * time.Second
)

// PauseIndefinite is the rollout.steps[].pause value that waits for a human to promote.
const PauseIndefinite = "indefinite"

// Limits on manifest values.
const (
	MaxFleetSize     = 100
	MaxHealthyCount  = 10 // upper bound of healthyThreshold and unhealthyThreshold
	MinImagesKeep    = 2  // the running release and one to roll back to
	MaxServiceLength = 40
	MaxLBHeaderBytes = 1 << 20 // upper bound of target.local.lb.maxHeaderBytes
	MinLBHeaderBytes = 1 << 10
)

// Manifest is a decoded, validated kiln.yaml with defaults applied.
type Manifest struct {
	APIVersion string           // always APIVersion
	Service    string           // DNS label naming the service
	Version    *version.Version // the release version
	// Secrets are the names of the service's secrets, sorted: each is referenced as
	// ${secret:NAME} from App.Env or component settings, and its value is set with
	// `kiln secret set` and delivered when an instance starts, never baked.
	Secrets []string
	App     App
	// Components maps a component name to the version constraint written in the manifest.
	Components map[string]string
	// Resolved holds, sorted by name, the newest catalog version satisfying each constraint.
	Resolved []ResolvedComponent
	Fleet    Fleet
	Rollout  Rollout
	Target   Target
	// Backend is where the stack's state lives (a backend URL), if the manifest says;
	// --backend and $KILN_BACKEND override it.
	Backend string
	Images  Images
	// Analysis maps a template name (a DNS label) to its analysis; nil when the manifest has
	// no analysis section. Every template name the rollout refers to is defined here.
	Analysis map[string]analysis.Template
	Dir      string // absolute directory of the manifest file; relative paths are relative to it
	File     string // the manifest file name as given to Load or Parse
}

// App says how the service's program is obtained and started. Exactly one of Main and Binary is
// set.
type App struct {
	// Main is a Go main package built at bake time: "." or "./relative" to Dir, or an import path.
	Main string
	// Binary is a prebuilt executable, relative to Dir or absolute, as written; see BinaryPath.
	Binary string
	// Args are passed to the program.
	Args []string
	// Env is extra environment for the program. PORT, HOST and KILN_* are set by kiln and
	// reserved.
	Env map[string]string
	// At is where Main or Binary is written, for problems found after decoding (what the
	// bake needs: the package, the executable); see Manifest.ErrorAt.
	At Position
}

// Position is a place in the manifest file.
type Position struct{ Line, Column int }

// ErrorAt is a problem at pos of the manifest, at the field path, as the decoder reports
// them.
func (m *Manifest) ErrorAt(pos Position, path, format string, args ...any) *Error {
	return &Error{File: m.File, Line: pos.Line, Column: pos.Column, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Fleet is the set of instances of one slot.
type Fleet struct {
	Size int // instances per slot, 1..MaxFleetSize
	// Port is the app's port on an instance: on aws, where the target group sends requests
	// and health checks (and $PORT); the local target assigns its own through $PORT.
	Port   int
	Health Health
}

// Health is the HTTP health check of an instance.
type Health struct {
	Path               string        // request path, starting with '/'
	Interval           time.Duration // time between checks, > 0
	Timeout            time.Duration // per check, > 0 and <= Interval
	HealthyThreshold   int           // consecutive successes that make an instance healthy
	UnhealthyThreshold int           // consecutive failures that make it unhealthy
}

// Rollout says how a release replaces the previous one.
type Rollout struct {
	Strategy         string        // StrategyBlueGreen
	ProgressDeadline time.Duration // bounds every phase of a rollout (booting, each step, each analysis)
	DrainTimeout     time.Duration // connection draining when instances leave; 0 = none
	// Steps move traffic to the new slot gradually; weights strictly increase and the last is
	// 100. Without steps in the manifest it is [{Weight: 100}].
	Steps []Step
	// PrePromotionAnalysis names a template of Manifest.Analysis run against the new slot
	// before it gets any traffic; "" for none.
	PrePromotionAnalysis string
	// PostPromotionAnalysis names a template run once the new slot has 100%; "" for none.
	PostPromotionAnalysis string
	// ScaleDownDelay is how long the old slot is kept after 100% (the fast-rollback window), >= 0.
	ScaleDownDelay time.Duration
	// AbortScaleDownDelay is how long the new slot is kept after an abort, >= 0.
	AbortScaleDownDelay time.Duration
}

// Step is one traffic step of a rollout.
type Step struct {
	Weight     int           // percent of traffic on the new slot, 1..100
	Pause      time.Duration // wait after the weight is set; 0 = none
	Indefinite bool          // wait until a human promotes (pause: indefinite); Pause is then 0
	Analysis   string        // template of Manifest.Analysis run at this step; "" for none
}

// Target is where the service runs. Exactly one field is set.
type Target struct {
	Local *LocalTarget
	AWS   *AWSTarget
}

// Name is the name of the target the manifest deploys to: "local" or "aws".
func (t Target) Name() string {
	if t.AWS != nil {
		return "aws"
	}
	return "local"
}

// LocalTarget runs instances as process trees on this machine behind kiln's own load balancer.
type LocalTarget struct {
	// Listen is the load balancer's host:port. Port 0 means kiln picks a free port once and
	// keeps it for the life of the deployment.
	Listen string
	// LB bounds the load balancer's clients and targets (target.local.lb). Fields left out
	// are zero: the local target gives them kiln lb's defaults.
	LB LocalLB
}

// LocalLB is target.local.lb, the bounds of the local target's load balancer (kiln-lb).
type LocalLB struct {
	MaxHeaderBytes        int           // a request's header block; larger ones are answered 431
	ReadHeaderTimeout     time.Duration // for a client to send a request's headers
	IdleTimeout           time.Duration // of a client's keep-alive connection
	RequestTimeout        time.Duration // deadline of one request (504); upgrades are exempt
	UpstreamHeaderTimeout time.Duration // wait for an instance's response headers (504)
	ExposeTarget          bool          // answers name the instance (X-Kiln-Target)
}

// AWSTarget runs the service on EC2 (target.aws): AMIs baked by EC2 Image Builder, one auto
// scaling group per slot, an Application Load Balancer whose listener weighs the slots' target
// groups.
type AWSTarget struct {
	// Region is the AWS region, e.g. eu-west-1.
	Region string
	// Subnets are the subnets instances (and a created balancer) are placed in, or VPC is
	// the VPC whose subnets kiln looks up. Exactly one of them is set.
	Subnets []string
	VPC     string
	// InstanceType is the EC2 instance type of both slots (DefaultAWSInstanceType).
	InstanceType string
	// ParentImage is what Image Builder bakes on: an AMI ID, an Image Builder image ARN or
	// an "ssm:/..." public parameter (DefaultAWSParentImage).
	ParentImage string
	// LoadBalancer is the balancer kiln creates, or an existing listener it adds a rule to.
	LoadBalancer AWSLoadBalancer
	// SecurityGroups are extra security groups attached to the instances.
	SecurityGroups []string
	// Tags are added to every resource kiln creates (beside kiln's own service tags).
	Tags map[string]string
	// ArtifactsBucket holds the baked payloads; "" means the images stack creates one.
	ArtifactsBucket string
	// KeyName is an EC2 key pair allowed to SSH in; "" (the default) means no SSH key.
	KeyName string
	// HealthCheckGracePeriod is how long an auto scaling group waits before it acts on a
	// new instance's ELB health (DefaultAWSGracePeriod).
	HealthCheckGracePeriod time.Duration
	// At is where target.aws is written.
	At Position
}

// AWSLoadBalancer is target.aws.loadBalancer. Either kiln creates the balancer (Scheme, Port,
// CertificateARN) or it adds a weighted rule to an existing listener (ListenerARN,
// RulePriority).
type AWSLoadBalancer struct {
	Scheme         string // AWSSchemeInternetFacing (default) or AWSSchemeInternal
	Port           int    // listener port: 80, or 443 with a certificate
	CertificateARN string // an ACM certificate: the listener speaks HTTPS
	ListenerARN    string // an existing listener; kiln creates no balancer
	RulePriority   int    // the rule's priority on ListenerARN (DefaultAWSRulePriority)
}

// Defaults of target.aws.
const (
	DefaultAWSInstanceType = "t3.micro"
	DefaultAWSParentImage  = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	DefaultAWSGracePeriod  = 300 * time.Second
	DefaultAWSRulePriority = 100
	// An ALB target group's health check counts whole seconds, an interval of at least 5s
	// and a timeout of at least 2s shorter than it: on aws, fleet.health defaults to these.
	DefaultAWSHealthInterval = 10 * time.Second
	DefaultAWSHealthTimeout  = 5 * time.Second
	AWSSchemeInternetFacing  = "internet-facing"
	AWSSchemeInternal        = "internal"
)

// Images controls the retention of baked images.
type Images struct {
	Keep int // releases kept for rollback, >= MinImagesKeep
}

// ResolvedComponent is a component requested by the manifest, resolved against a Catalog.
type ResolvedComponent struct {
	Name       string
	Constraint string           // as written in the manifest
	Version    *version.Version // newest catalog version satisfying Constraint
	// Settings are the values the service gives the component (components.<name>.settings).
	Settings map[string]string
}

// Catalog lists the baked components kiln can put into an image. components.Catalog
// implements it.
type Catalog interface {
	// Names returns every component name.
	Names() []string
	// Versions returns every version of the named component (nil if unknown).
	Versions(name string) []*version.Version
}

// Error is one problem in a manifest, with its position and field path. Its Error method prints
// `kiln.yaml:12:5: fleet.health.interval: invalid duration "fast" (...)`.
type Error = strictyaml.Error

// Errors is every problem found in one manifest, sorted by position. Parse and Load return it
// as their error; errors.As reaches both Errors and the first *Error.
type Errors = strictyaml.Errors

// BinaryPath returns App.Binary as an absolute path (relative paths are taken from Dir), or ""
// when the app is built from a main package.
func (m *Manifest) BinaryPath() string {
	if m.App.Binary == "" {
		return ""
	}
	if filepath.IsAbs(m.App.Binary) {
		return filepath.Clean(m.App.Binary)
	}
	return filepath.Join(m.Dir, filepath.FromSlash(m.App.Binary))
}
