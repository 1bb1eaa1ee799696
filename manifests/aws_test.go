package manifests_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/manifests"
)

// awsBase is a valid aws manifest setting every target.aws field. Cases edit it; the line
// numbers in their expectations refer to it.
const awsBase = `apiVersion: kiln/v1
service: shop
version: 1.4.0
app:
  main: ./cmd/shop
fleet:
  size: 2
  port: 8080
  health:
    path: /healthz
    interval: 15s
    timeout: 5s
    healthyThreshold: 3
    unhealthyThreshold: 2
rollout:
  drainTimeout: 30s
target:
  aws:
    region: eu-west-1
    subnets: [subnet-0123456789abcdef0, subnet-89abcdef]
    instanceType: m7g.large
    parentImage: ami-0fedcba9876543210
    loadBalancer:
      scheme: internal
      port: 8443
      certificateARN: arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab
    securityGroups: [sg-0a1b2c3d]
    tags: {team: web, cost-center: 42}
    artifactsBucket: acme-kiln-artifacts
    keyName: ops
    healthCheckGracePeriod: 2m
`

func TestParseAWSFull(t *testing.T) {
	m, err := manifests.Parse("kiln.yaml", []byte(awsBase), testCatalog)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &manifests.AWSTarget{
		Region:       "eu-west-1",
		Subnets:      []string{"subnet-0123456789abcdef0", "subnet-89abcdef"},
		InstanceType: "m7g.large",
		ParentImage:  "ami-0fedcba9876543210",
		LoadBalancer: manifests.AWSLoadBalancer{Scheme: "internal", Port: 8443,
			CertificateARN: "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"},
		SecurityGroups:         []string{"sg-0a1b2c3d"},
		Tags:                   map[string]string{"team": "web", "cost-center": "42"},
		ArtifactsBucket:        "acme-kiln-artifacts",
		KeyName:                "ops",
		HealthCheckGracePeriod: 2 * time.Minute,
		At:                     manifests.Position{Line: 18, Column: 3},
	}
	if !reflect.DeepEqual(m.Target.AWS, want) || m.Target.Local != nil {
		t.Errorf("target = %+v / %+v\nwant aws %+v", m.Target.Local, m.Target.AWS, want)
	}
	if m.Target.Name() != "aws" {
		t.Errorf("Name() = %q", m.Target.Name())
	}
	if got := m.Fleet; got != (manifests.Fleet{Size: 2, Port: 8080, Health: manifests.Health{
		Path: "/healthz", Interval: 15 * time.Second, Timeout: 5 * time.Second, HealthyThreshold: 3, UnhealthyThreshold: 2}}) {
		t.Errorf("fleet = %+v", got)
	}
}

// awsMinimal leaves out everything target.aws and fleet.health default.
const awsMinimal = `apiVersion: kiln/v1
service: tiny
version: 1.0.0
app: {binary: bin/tiny}
fleet: {size: 1, port: 3000, health: {path: /}}
target:
  aws: {region: us-gov-west-1, vpc: vpc-0123abcd}
`

func TestParseAWSDefaults(t *testing.T) {
	m, err := manifests.Parse("kiln.yaml", []byte(awsMinimal), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &manifests.AWSTarget{
		Region:                 "us-gov-west-1",
		VPC:                    "vpc-0123abcd",
		InstanceType:           manifests.DefaultAWSInstanceType,
		ParentImage:            manifests.DefaultAWSParentImage,
		LoadBalancer:           manifests.AWSLoadBalancer{Scheme: manifests.AWSSchemeInternetFacing, Port: 80},
		HealthCheckGracePeriod: manifests.DefaultAWSGracePeriod,
		At:                     manifests.Position{Line: 7, Column: 3},
	}
	if !reflect.DeepEqual(m.Target.AWS, want) {
		t.Errorf("target.aws = %+v\nwant %+v", m.Target.AWS, want)
	}
	// An ALB health check counts whole seconds from 5s: the local defaults (2s, 1s) would
	// be refused by AWS.
	if got := m.Fleet.Health; got != (manifests.Health{Path: "/", Interval: manifests.DefaultAWSHealthInterval,
		Timeout: manifests.DefaultAWSHealthTimeout, HealthyThreshold: 2, UnhealthyThreshold: 3}) {
		t.Errorf("fleet.health = %+v", got)
	}
}

func TestParseAWSAccepts(t *testing.T) {
	lb := "    loadBalancer:\n      scheme: internal\n      port: 8443\n      certificateARN: arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab\n"
	listener := "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/0123456789abcdef/fedcba9876543210"
	runAccepts(t, func(m *manifests.Manifest) any { return m.Target.AWS }, []acceptCase{
		{"certificate: port 443 by default", editDoc(t, awsBase, "      port: 8443\n", ""),
			func(m *manifests.Manifest) bool { return m.Target.AWS.LoadBalancer.Port == 443 }},
		{"no loadBalancer: internet-facing on 80", editDoc(t, awsBase, lb, ""),
			func(m *manifests.Manifest) bool {
				return m.Target.AWS.LoadBalancer == manifests.AWSLoadBalancer{Scheme: "internet-facing", Port: 80}
			}},
		{"existing listener: one subnet, default priority", editDoc(t, awsBase, lb, "    loadBalancer: {listenerARN: "+listener+"}\n",
			", subnet-89abcdef", ""),
			func(m *manifests.Manifest) bool {
				return m.Target.AWS.LoadBalancer == manifests.AWSLoadBalancer{ListenerARN: listener, RulePriority: manifests.DefaultAWSRulePriority} &&
					len(m.Target.AWS.Subnets) == 1
			}},
		{"existing listener with a priority", editDoc(t, awsBase, lb, "    loadBalancer: {listenerARN: "+listener+", rulePriority: 50000}\n"),
			func(m *manifests.Manifest) bool { return m.Target.AWS.LoadBalancer.RulePriority == 50000 }},
		{"parent image from SSM", editDoc(t, awsBase, "ami-0fedcba9876543210", "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"),
			func(m *manifests.Manifest) bool { return strings.HasSuffix(m.Target.AWS.ParentImage, "arm64") }},
		{"parent image from Image Builder", editDoc(t, awsBase, "ami-0fedcba9876543210", "arn:aws:imagebuilder:eu-west-1:aws:image/amazon-linux-2023-arm64/x.x.x"),
			func(m *manifests.Manifest) bool {
				return strings.HasPrefix(m.Target.AWS.ParentImage, "arn:aws:imagebuilder:")
			}},
		{"a VPC instead of subnets", editDoc(t, awsBase, "subnets: [subnet-0123456789abcdef0, subnet-89abcdef]", "vpc: vpc-0123456789abcdef0"),
			func(m *manifests.Manifest) bool {
				return m.Target.AWS.VPC == "vpc-0123456789abcdef0" && m.Target.AWS.Subnets == nil
			}},
		{"metal instance type", editDoc(t, awsBase, "m7g.large", "c7i.metal-24xl"),
			func(m *manifests.Manifest) bool { return m.Target.AWS.InstanceType == "c7i.metal-24xl" }},
		{"grace period 0", editDoc(t, awsBase, "healthCheckGracePeriod: 2m", "healthCheckGracePeriod: 0s"),
			func(m *manifests.Manifest) bool { return m.Target.AWS.HealthCheckGracePeriod == 0 }},
		{"40 tags", editDoc(t, awsBase, "tags: {team: web, cost-center: 42}", "tags: {"+tags(40)+"}"),
			func(m *manifests.Manifest) bool { return len(m.Target.AWS.Tags) == 40 }},
		{"unicode tag", editDoc(t, awsBase, "team: web", "équipe: \"café @ 9:00\""),
			func(m *manifests.Manifest) bool { return m.Target.AWS.Tags["équipe"] == "café @ 9:00" }},
		// A short interval written, timeout left out: the timeout follows it below.
		{"interval 5s, default timeout", editDoc(t, awsBase, "    interval: 15s\n    timeout: 5s\n", "    interval: 5s\n"),
			func(m *manifests.Manifest) bool { return m.Fleet.Health.Timeout == 4*time.Second }},
		{"drain timeout 1h", editDoc(t, awsBase, "drainTimeout: 30s", "drainTimeout: 1h"),
			func(m *manifests.Manifest) bool { return m.Rollout.DrainTimeout == time.Hour }},
	})
}

func tags(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "t%d: v, ", i)
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// TestParseAWSRejects has one case per rule of target.aws, each with its exact errors.
func TestParseAWSRejects(t *testing.T) {
	lb := "    loadBalancer:\n      scheme: internal\n      port: 8443\n      certificateARN: arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab\n"
	listener := "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/0123456789abcdef/fedcba9876543210"
	subnets := "subnets: [subnet-0123456789abcdef0, subnet-89abcdef]"
	const idHow = "then 8 or 17 hexadecimal digits"
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"missing region", editDoc(t, awsBase, "    region: eu-west-1\n", ""),
			[]string{"kiln.yaml:19:5: target.aws.region: required field is missing"}},
		{"availability zone as region", editDoc(t, awsBase, "region: eu-west-1", "region: eu-west-1a"),
			[]string{`kiln.yaml:19:13: target.aws.region: invalid region "eu-west-1a" (write an AWS region name such as eu-west-1 or us-gov-west-1)`}},
		{"neither subnets nor vpc", editDoc(t, awsBase, "    "+subnets+"\n", ""),
			[]string{"kiln.yaml:19:5: target.aws: one of subnets (a list of subnet IDs) or vpc (a VPC ID whose subnets kiln looks up) is required"}},
		{"both subnets and vpc", editDoc(t, awsBase, subnets, subnets+"\n    vpc: vpc-0123abcd"),
			[]string{"kiln.yaml:21:5: target.aws: set only one of subnets (the subnets to use) or vpc (a VPC whose subnets kiln looks up)"}},
		{"empty subnets", editDoc(t, awsBase, subnets, "subnets: []"),
			[]string{"kiln.yaml:20:14: target.aws.subnets: at least one subnet is required"}},
		{"subnets not a list", editDoc(t, awsBase, subnets, "subnets: subnet-0123abcd"),
			[]string{`kiln.yaml:20:14: target.aws.subnets: expected a list, got the string "subnet-0123abcd"`}},
		{"duplicate subnet", editDoc(t, awsBase, subnets, "subnets: [subnet-89abcdef, subnet-89abcdef]"),
			[]string{"kiln.yaml:20:32: target.aws.subnets[1]: subnet-89abcdef is listed twice (first at target.aws.subnets[0])"}},
		{"one subnet for a created balancer", editDoc(t, awsBase, subnets, "subnets: [subnet-89abcdef]"),
			[]string{"kiln.yaml:20:14: target.aws.subnets: the load balancer kiln creates needs subnets in at least two availability zones: list two or more, or give loadBalancer.listenerARN to use an existing one"}},
		{"subnet ID of 9 digits", editDoc(t, awsBase, "subnet-89abcdef]", "subnet-89abcdef0]"),
			[]string{`kiln.yaml:20:41: target.aws.subnets[1]: invalid subnet ID "subnet-89abcdef0" (write subnet-, ` + idHow + `, such as subnet-0123456789abcdef0)`}},
		{"upper-case VPC ID", editDoc(t, awsBase, subnets, "vpc: vpc-0123ABCD"),
			[]string{`kiln.yaml:20:10: target.aws.vpc: invalid VPC ID "vpc-0123ABCD" (write vpc-, ` + idHow + `, such as vpc-0123456789abcdef0)`}},
		{"instance type without size", editDoc(t, awsBase, "m7g.large", "m7g"),
			[]string{`kiln.yaml:21:19: target.aws.instanceType: invalid instance type "m7g" (write family.size, such as t3.micro or m7g.large)`}},
		{"parent image a name", editDoc(t, awsBase, "ami-0fedcba9876543210", "amazon-linux"),
			[]string{`kiln.yaml:22:18: target.aws.parentImage: invalid parent image "amazon-linux" (write an AMI ID (ami-...), an Image Builder image ARN (arn:aws:imagebuilder:REGION:ACCOUNT:image/NAME/x.x.x) or ssm: and a parameter name (ssm:/aws/service/...))`}},
		{"parent image SSM without a slash", editDoc(t, awsBase, "ami-0fedcba9876543210", "ssm:al2023"),
			[]string{`kiln.yaml:22:18: target.aws.parentImage: invalid parameter "al2023" after ssm: (a parameter name starting with '/', such as /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64)`}},
		{"parent image ARN of a recipe", editDoc(t, awsBase, "ami-0fedcba9876543210", "arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/shop/1.0.0"),
			[]string{`kiln.yaml:22:18: target.aws.parentImage: invalid Image Builder image ARN "arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/..." (arn:aws:imagebuilder:REGION:ACCOUNT:image/NAME/x.x.x)`}},
		{"parent image of another region", editDoc(t, awsBase, "ami-0fedcba9876543210", "arn:aws:imagebuilder:us-east-1:aws:image/amazon-linux-2023-x86/x.x.x"),
			[]string{`kiln.yaml:22:18: target.aws.parentImage: the image is in region us-east-1, not in target.aws.region eu-west-1 (AWS uses it only in its own region)`}},
		{"unknown scheme", editDoc(t, awsBase, "scheme: internal", "scheme: public"),
			[]string{`kiln.yaml:24:15: target.aws.loadBalancer.scheme: invalid scheme "public" (write internet-facing or internal)`}},
		{"port 0", editDoc(t, awsBase, "port: 8443", "port: 0"),
			[]string{"kiln.yaml:25:13: target.aws.loadBalancer.port: must be between 1 and 65535, got 0"}},
		{"certificate of IAM", editDoc(t, awsBase, "arn:aws:acm:eu-west-1:123456789012:certificate/", "arn:aws:iam::123456789012:server-certificate/"),
			[]string{`kiln.yaml:26:23: target.aws.loadBalancer.certificateARN: invalid certificate ARN "arn:aws:iam::123456789012:server-certificate/0b1c2d3e-aaa..." (write an ACM certificate's ARN: arn:aws:acm:REGION:ACCOUNT:certificate/ID)`}},
		{"certificate of another region", editDoc(t, awsBase, "acm:eu-west-1", "acm:us-east-1"),
			[]string{"kiln.yaml:26:23: target.aws.loadBalancer.certificateARN: the certificate is in region us-east-1, not in target.aws.region eu-west-1 (AWS uses it only in its own region)"}},
		{"priority without listener", editDoc(t, awsBase, "      port: 8443\n", "      port: 8443\n      rulePriority: 10\n"),
			[]string{"kiln.yaml:26:7: target.aws.loadBalancer.rulePriority: set only with listenerARN: the listener of a load balancer kiln creates has no other rules"}},
		{"listener with the created balancer's fields", editDoc(t, awsBase, "      scheme: internal\n", "      listenerARN: "+listener+"\n      rulePriority: 0\n"),
			[]string{
				"kiln.yaml:25:21: target.aws.loadBalancer.rulePriority: must be between 1 and 50000, got 0",
				"kiln.yaml:26:7: target.aws.loadBalancer.port: set only for a load balancer kiln creates: an existing listener (listenerARN) already has them",
				"kiln.yaml:27:7: target.aws.loadBalancer.certificateARN: set only for a load balancer kiln creates: an existing listener (listenerARN) already has them",
			}},
		{"listener ARN of a balancer", editDoc(t, awsBase, lb, "    loadBalancer: {listenerARN: \"arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/shop/0123456789abcdef\"}\n"),
			[]string{`kiln.yaml:23:33: target.aws.loadBalancer.listenerARN: invalid listener ARN "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadb..." (write an Application Load Balancer listener's ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID)`}},
		{"listener of another region", editDoc(t, awsBase, lb, "    loadBalancer: {listenerARN: "+strings.Replace(listener, "eu-west-1", "eu-west-2", 1)+"}\n"),
			[]string{"kiln.yaml:23:33: target.aws.loadBalancer.listenerARN: the listener is in region eu-west-2, not in target.aws.region eu-west-1 (AWS uses it only in its own region)"}},
		{"security group twice", editDoc(t, awsBase, "[sg-0a1b2c3d]", "[sg-0a1b2c3d, sg-0a1b2c3d]"),
			[]string{"kiln.yaml:27:35: target.aws.securityGroups[1]: sg-0a1b2c3d is listed twice (first at target.aws.securityGroups[0])"}},
		{"41 tags", editDoc(t, awsBase, "tags: {team: web, cost-center: 42}", "tags: {"+tags(41)+"}"),
			[]string{"kiln.yaml:28:" + fmt.Sprint(12+len(tags(40))+2) + ": target.aws.tags: 41 tags; at most 40 (AWS allows 50 a resource, and kiln adds its own)"}},
		{"AWS tag in another case", editDoc(t, awsBase, "team: web", "AWS:team: web"),
			[]string{"kiln.yaml:28:12: target.aws.tags.AWS:team: tag keys starting with aws: are reserved by AWS"}},
		{"kiln's own tag", editDoc(t, awsBase, "team: web", "kiln:slot: blue"),
			[]string{"kiln.yaml:28:12: target.aws.tags.kiln:slot: tag keys starting with kiln: are kiln's own (it tags service, slot and version itself)"}},
		{"tag key of 129", editDoc(t, awsBase, "team: web", strings.Repeat("k", 129)+": web"),
			[]string{`kiln.yaml:28:12: target.aws.tags.` + strings.Repeat("k", 129) + `: invalid tag key "` + strings.Repeat("k", 57) + `..." (1 to 128 letters, digits, spaces and _ . : / = + - @)`}},
		{"tag value of 257", editDoc(t, awsBase, "team: web", "team: "+strings.Repeat("v", 257)),
			[]string{`kiln.yaml:28:18: target.aws.tags.team: invalid tag value "` + strings.Repeat("v", 57) + `..." (at most 256 letters, digits, spaces and _ . : / = + - @)`}},
		{"tags a list", editDoc(t, awsBase, "tags: {team: web, cost-center: 42}", "tags: [web]"),
			[]string{"kiln.yaml:28:11: target.aws.tags: expected a mapping, got a list"}},
		{"bucket as an IP address", editDoc(t, awsBase, "acme-kiln-artifacts", "192.168.5.4"),
			[]string{`kiln.yaml:29:22: target.aws.artifactsBucket: invalid bucket name "192.168.5.4": formatted as an IP address (S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)`}},
		{"bucket with two dots", editDoc(t, awsBase, "acme-kiln-artifacts", "acme..kiln"),
			[]string{`kiln.yaml:29:22: target.aws.artifactsBucket: invalid bucket name "acme..kiln": two adjacent periods (S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)`}},
		{"bucket with a reserved suffix", editDoc(t, awsBase, "acme-kiln-artifacts", "acme-kiln--x-s3"),
			[]string{`kiln.yaml:29:22: target.aws.artifactsBucket: invalid bucket name "acme-kiln--x-s3": the suffix --x-s3 is reserved (S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)`}},
		{"bucket of 64", editDoc(t, awsBase, "acme-kiln-artifacts", strings.Repeat("b", 64)),
			[]string{`kiln.yaml:29:22: target.aws.artifactsBucket: invalid bucket name "` + strings.Repeat("b", 57) + `...": not a valid name (S3 bucket names are 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)`}},
		{"key name of 256", editDoc(t, awsBase, "keyName: ops", "keyName: "+strings.Repeat("k", 256)),
			[]string{`kiln.yaml:30:14: target.aws.keyName: invalid key pair name "` + strings.Repeat("k", 57) + `..." (an EC2 key pair name: 1 to 255 printable ASCII characters)`}},
		{"negative grace period", editDoc(t, awsBase, "healthCheckGracePeriod: 2m", "healthCheckGracePeriod: -1s"),
			[]string{"kiln.yaml:31:29: target.aws.healthCheckGracePeriod: must be at least 0s, got -1s (an auto scaling group's grace period)"}},
		{"unknown field", editDoc(t, awsBase, "keyName: ops", "keyname: ops"),
			[]string{`kiln.yaml:30:5: target.aws.keyname: unknown field "keyname" (did you mean "keyName"?); known fields: region, subnets, vpc, instanceType, parentImage, loadBalancer, securityGroups, tags, artifactsBucket, keyName, healthCheckGracePeriod`}},
		{"aws not a mapping", editDoc(t, awsBase, "  aws:\n", "  aws: eu-west-1\n  x:\n"),
			[]string{`kiln.yaml:18:8: target.aws: expected a mapping, got the string "eu-west-1"`, `kiln.yaml:19:3: target.x: unknown field "x"; known fields: local, aws`}},

		// What an ALB target group accepts of the fleet.
		{"interval under 5s", editDoc(t, awsBase, "interval: 15s", "interval: 2s", "timeout: 5s", "timeout: 1s"),
			[]string{"kiln.yaml:11:15: fleet.health.interval: must be between 5s and 5m0s, got 2s (the aws target's ALB health check)",
				"kiln.yaml:12:14: fleet.health.timeout: must be between 2s and 2m0s, got 1s (the aws target's ALB health check)"}},
		{"timeout in milliseconds", editDoc(t, awsBase, "timeout: 5s", "timeout: 2500ms"),
			[]string{"kiln.yaml:12:14: fleet.health.timeout: must be a whole number of seconds, got 2.5s (the aws target's ALB health check)"}},
		{"timeout equal to interval", editDoc(t, awsBase, "timeout: 5s", "timeout: 15s"),
			[]string{"kiln.yaml:12:14: fleet.health.timeout: timeout 15s must be shorter than interval 15s (the aws target's ALB health check)"}},
		{"timeout over the default interval", editDoc(t, awsBase, "    interval: 15s\n", "", "timeout: 5s", "timeout: 20s"),
			[]string{"kiln.yaml:11:14: fleet.health.timeout: timeout 20s must be shorter than the interval, 10s by default on aws; set fleet.health.interval (the aws target's ALB health check)"}},
		{"healthy threshold 1", editDoc(t, awsBase, "healthyThreshold: 3", "healthyThreshold: 1"),
			[]string{"kiln.yaml:13:23: fleet.health.healthyThreshold: must be between 2 and 10, got 1 (the aws target's ALB health check)"}},
		{"unhealthy threshold 1", editDoc(t, awsBase, "unhealthyThreshold: 2", "unhealthyThreshold: 1"),
			[]string{"kiln.yaml:14:25: fleet.health.unhealthyThreshold: must be between 2 and 10, got 1 (the aws target's ALB health check)"}},
		{"health path over 1024 bytes", editDoc(t, awsBase, "path: /healthz", "path: /"+strings.Repeat("h", 1024)),
			[]string{"kiln.yaml:10:11: fleet.health.path: is 1025 bytes; at most 1024 (the aws target's ALB health check)"}},
		{"drain timeout over an hour", editDoc(t, awsBase, "drainTimeout: 30s", "drainTimeout: 61m"),
			[]string{"kiln.yaml:16:17: rollout.drainTimeout: must be between 0s and 1h0m0s, got 1h1m0s (on aws, a target group's deregistration delay)"}},
		{"drain timeout in milliseconds", editDoc(t, awsBase, "drainTimeout: 30s", "drainTimeout: 500ms"),
			[]string{"kiln.yaml:16:17: rollout.drainTimeout: must be a whole number of seconds, got 500ms (on aws, a target group's deregistration delay)"}},
		// fleet.port is where the target group sends requests: required, as on local.
		{"no fleet port", editDoc(t, awsBase, "  port: 8080\n", ""),
			[]string{"kiln.yaml:7:3: fleet.port: required field is missing"}},
		// target.local.lb belongs to the local target: with aws it cannot be written.
		{"aws with a local lb", editDoc(t, awsBase, "target:\n", "target:\n  local: {lb: {requestTimeout: 30s}}\n"),
			[]string{"kiln.yaml:19:3: target: set only one of local or aws"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifests.Parse("kiln.yaml", []byte(tc.text), testCatalog)
			var errs manifests.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
