// Package program holds the aws target's Pulumi programs, written with pulumi-aws: the
// images stack (an AMI per baked image, by EC2 Image Builder) and the fleet stack (per slot
// a launch template and an auto scaling group behind one load balancer listener that
// weighs the slots). The aws target (package aws) runs them through package stacks; this
// package decides only what the programs declare. Its tests run the programs against a
// model of AWS (Pulumi's mocks answering as AWS would), never AWS.
package program

import (
	"github.com/kilnhq/kiln/fleet"
)

// Settings are the manifest's target.aws, with the subnets resolved.
type Settings struct {
	Region          string
	Subnets         []string // where instances and a created balancer live
	VPC             string   // when the manifest names a VPC: its subnets are looked up
	InstanceType    string
	ParentImage     string
	SecurityGroups  []string // extra groups for the instances
	Tags            map[string]string
	ArtifactsBucket string // "" : the images stack creates the bucket
	KeyName         string // "" : no SSH key
	GracePeriodSecs int    // the auto scaling groups' health check grace period
	LoadBalancer    LoadBalancer
}

// LoadBalancer is target.aws.loadBalancer.
type LoadBalancer struct {
	Scheme         string // internet-facing or internal
	Port           int
	CertificateARN string
	ListenerARN    string // existing listener: the fleet adds a weighted rule to it
	RulePriority   int
}

// BakeInput is what the images stack declares: one AMI per image it keeps. Removing an
// image from Images removes its Image Builder resources (the aws target deregisters the
// AMI and its snapshots afterwards).
type BakeInput struct {
	Service  string
	Settings Settings
	Images   []BakeImage // every image the stack keeps, oldest first
}

// BakeImage is one baked image as the images stack uploads it.
type BakeImage struct {
	Digest    string // the image's content digest (sha256:...)
	Version   string // the release version
	RecipeKey string // the recipe key of the bake (images.Image.RecipeKey)
	// Payload is the local path of the image's payload archive (a gzip-compressed tar
	// of the image directory, its root the image's root), uploaded to the artifacts
	// bucket; PayloadSHA256 is its hex sha256, which the component verifies. An image
	// kept from an earlier bake (read back from OutputImages) has no Payload: its
	// objects are already uploaded and stay as they are.
	Payload       string
	PayloadSHA256 string
	// SBOM is the local path of the image's SBOM, uploaded beside the payload ("" for a
	// kept image, like Payload).
	SBOM string
}

// Outputs of the images stack.
const (
	// OutputAMIs is a map of image digest to AMI ID.
	OutputAMIs = "amis"
	// OutputBucket is the artifacts bucket's name.
	OutputBucket = "artifactsBucket"
	// OutputImages is the JSON of the BakeInput.Images the stack holds (without local
	// paths), so the next bake keeps them.
	OutputImages = "images"
)

// FleetInput is what the fleet stack declares.
type FleetInput struct {
	// Spec is the fleet; a slot's Release.Image.Location is its AMI ID.
	Spec     fleet.Spec
	Settings Settings
	// Policies are the IAM policy documents of the image's baked components, with the
	// component settings substituted; the instance role holds exactly their statements,
	// plus reading the stack's secret parameters.
	Policies [][]byte
	// Secrets are the names of the service's secrets, read from the stack's config and
	// held as SecureString parameters; SecretsVersion is the version the config holds now.
	Secrets        []string
	SecretsVersion string
	// NamedPorts are the ports of the image's baked components (images.Meta.Ports), given
	// to every unit as KILN_PORT_<NAME>. On aws each instance has its own address, so a
	// port is fixed per fleet; none may be Spec.Port. (Added by the awsprog branch.)
	NamedPorts map[string]int
}

// Outputs of the fleet stack (besides stacks.OutputSpec, the spec as applied).
const (
	OutputEndpoint = "endpoint" // the URL users reach the service at
	// OutputTargetGroups maps a slot to its target group ARN (both slots have one, the
	// listener weighs both); OutputGroups maps a slot to its auto scaling group's name
	// (slots without instances have none).
	OutputTargetGroups = "targetGroups"
	OutputGroups       = "groups"
	// OutputLoadBalancer is the balancer's CloudWatch dimension (app/name/id);
	// OutputTargetGroupDims maps a slot to its target group's (targetgroup/name/id).
	OutputLoadBalancer    = "loadBalancerDimension"
	OutputTargetGroupDims = "targetGroupDimensions"
)
