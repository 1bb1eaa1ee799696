package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Fleet returns the fleet stack's program: per slot a target group (both slots always have
// one, so the listener can weigh both), and for a slot with instances a launch template
// and an auto scaling group attached to it; one listener (or a rule on an existing one)
// forwarding to the slots by their weights; the security groups, the instance role and the
// secrets' parameters. Names depend only on the service and the slot: a traffic step
// changes only the listener, a release in the idle slot only that slot's template and
// group. It exports the spec itself, so the next rollout starts from what was applied.
func Fleet(in FleetInput) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if err := in.validate(); err != nil {
			return err
		}
		spec, s := in.Spec, in.Settings
		svcTags := tagMap(s, TagService, spec.Service)
		net, err := lookupNetwork(ctx, s)
		if err != nil {
			return err
		}
		paramARNs, err := secretParameters(ctx, in, svcTags)
		if err != nil {
			return err
		}
		policy, err := instancePolicy(in.Policies, paramARNs)
		if err != nil {
			return err
		}
		profile, grants, err := instanceProfile(ctx, spec.Service+"-instance", svcTags, policy)
		if err != nil {
			return err
		}
		front, err := balancer(ctx, in, net, svcTags)
		if err != nil {
			return err
		}
		instSG, err := ec2.NewSecurityGroup(ctx, spec.Service+"-instances", &ec2.SecurityGroupArgs{
			Description: pulumi.String("kiln: instances of " + spec.Service + ", reached only by the balancer"),
			VpcId:       pulumi.String(net.vpc),
			Ingress: ec2.SecurityGroupIngressArray{&ec2.SecurityGroupIngressArgs{
				Description:    pulumi.String("the app port, from the balancer"),
				Protocol:       pulumi.String("tcp"),
				FromPort:       pulumi.Int(spec.Port),
				ToPort:         pulumi.Int(spec.Port),
				SecurityGroups: front.securityGroups,
			}},
			Egress: egressAll,
			Tags:   svcTags,
		})
		if err != nil {
			return err
		}
		groups := pulumi.StringMap{}
		targetGroups := pulumi.StringMap{}
		tgDims := pulumi.StringMap{}
		var forward []weighted
		for _, slot := range fleet.Slots {
			sp := spec.Slots[slot]
			tg, err := targetGroup(ctx, spec, slot, net.vpc, svcTags)
			if err != nil {
				return err
			}
			targetGroups[string(slot)] = tg.Arn
			tgDims[string(slot)] = tg.ArnSuffix
			forward = append(forward, weighted{arn: tg.Arn, weight: sp.Weight})
			if sp.Empty() {
				continue
			}
			group, err := slotGroup(ctx, in, slot, *sp.Release, sp.Size, tg, profile, grants, instSG)
			if err != nil {
				return fmt.Errorf("slot %s: %w", slot, err)
			}
			groups[string(slot)] = group.Name
		}
		if err := front.route(ctx, forward); err != nil {
			return err
		}
		b, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		ctx.Export(stacks.OutputSpec, pulumi.String(string(b)))
		ctx.Export(OutputEndpoint, front.endpoint)
		ctx.Export(OutputTargetGroups, targetGroups)
		ctx.Export(OutputGroups, groups)
		ctx.Export(OutputLoadBalancer, front.dimension)
		ctx.Export(OutputTargetGroupDims, tgDims)
		return nil
	}
}

func (in FleetInput) validate() error {
	if err := in.Spec.Validate(); err != nil {
		return err
	}
	var errs []error
	s := in.Settings
	if len(s.Subnets) == 0 {
		errs = append(errs, errors.New("fleet: no subnets"))
	}
	if s.Region == "" || s.InstanceType == "" {
		errs = append(errs, errors.New("fleet: the region and instance type must be set"))
	}
	if s.LoadBalancer.ListenerARN == "" && s.LoadBalancer.Port <= 0 {
		errs = append(errs, errors.New("fleet: the load balancer needs a listener port"))
	}
	for name, port := range in.NamedPorts {
		if port == in.Spec.Port || port <= 0 {
			errs = append(errs, fmt.Errorf("fleet: named port %s: %d is not a free port", name, port))
		}
	}
	for _, sl := range fleet.Slots {
		if sp := in.Spec.Slots[sl]; !sp.Empty() && sp.Release.Image.Location == "" {
			errs = append(errs, fmt.Errorf("fleet: slot %s: release %s has no AMI", sl, sp.Release))
		}
	}
	return errors.Join(errs...)
}

// network is what the fleet reads of the VPC it lives in.
type network struct {
	vpc  string
	cidr string
}

// lookupNetwork reads the VPC of the fleet's subnets.
func lookupNetwork(ctx *pulumi.Context, s Settings) (network, error) {
	vpc := s.VPC
	if vpc == "" {
		sub, err := ec2.LookupSubnet(ctx, &ec2.LookupSubnetArgs{Id: &s.Subnets[0]})
		if err != nil {
			return network{}, fmt.Errorf("subnet %s: %w", s.Subnets[0], err)
		}
		vpc = sub.VpcId
	}
	v, err := ec2.LookupVpc(ctx, &ec2.LookupVpcArgs{Id: &vpc})
	if err != nil {
		return network{}, fmt.Errorf("vpc %s: %w", vpc, err)
	}
	return network{vpc: vpc, cidr: v.CidrBlock}, nil
}

// egressAll lets a group reach anything: instances fetch their secrets from SSM and talk
// to whatever the app needs; the balancer reaches the instances.
var egressAll = ec2.SecurityGroupEgressArray{&ec2.SecurityGroupEgressArgs{
	Protocol: pulumi.String("-1"), FromPort: pulumi.Int(0), ToPort: pulumi.Int(0),
	CidrBlocks: pulumi.StringArray{pulumi.String("0.0.0.0/0")},
}}

// secretParameters declares a SecureString parameter per secret, its value from the
// stack's config, and returns their ARNs.
func secretParameters(ctx *pulumi.Context, in FleetInput, tagsIn pulumi.StringMap) ([]pulumi.StringOutput, error) {
	var arns []pulumi.StringOutput
	for _, name := range in.Secrets {
		v, ok := ctx.GetConfig(stacks.SecretConfigKey(name))
		if !ok {
			return nil, fmt.Errorf("secret %s is not in the stack's config: set it with kiln secret set %s", name, name)
		}
		p, err := ssm.NewParameter(ctx, in.Spec.Service+"-secret-"+name, &ssm.ParameterArgs{
			Name: pulumi.String(secretParameter(in.Spec.Service, name)),
			Type: pulumi.String("SecureString"),
			// Marked secret, the value is encrypted wherever it enters the state.
			Value: pulumi.ToSecret(pulumi.String(v)).(pulumi.StringOutput),
			Tags:  tagsIn,
			// The name is fixed and the service's own. An engine killed while it created
			// the parameter leaves it in AWS unknown to the stack, and a create without
			// overwrite would fail every resume: overwriting takes it over.
			Overwrite: pulumi.Bool(true),
		})
		if err != nil {
			return nil, err
		}
		arns = append(arns, p.Arn)
	}
	return arns, nil
}

// targetGroup declares a slot's target group, checked as the manifest's health check says.
func targetGroup(ctx *pulumi.Context, spec fleet.Spec, slot fleet.Slot, vpc string, tagsIn pulumi.StringMap) (*lb.TargetGroup, error) {
	h := spec.Health
	return lb.NewTargetGroup(ctx, fmt.Sprintf("%s-%s", spec.Service, slot), &lb.TargetGroupArgs{
		Port:                pulumi.Int(spec.Port),
		Protocol:            pulumi.String("HTTP"),
		TargetType:          pulumi.String("instance"),
		VpcId:               pulumi.String(vpc),
		DeregistrationDelay: pulumi.Int(int(spec.DrainTimeout.Seconds())),
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled:            pulumi.Bool(true),
			Protocol:           pulumi.String("HTTP"),
			Port:               pulumi.String("traffic-port"),
			Path:               pulumi.String(h.Path),
			Interval:           pulumi.Int(int(h.Interval.Seconds())),
			Timeout:            pulumi.Int(int(h.Timeout.Seconds())),
			HealthyThreshold:   pulumi.Int(h.HealthyThreshold),
			UnhealthyThreshold: pulumi.Int(h.UnhealthyThreshold),
			Matcher:            pulumi.String("200-399"), // what the local balancer calls healthy
		},
		Tags: tagsIn,
	})
}

// slotGroup declares a slot's launch template and auto scaling group. The group waits for
// grants, so its instances boot with their role's policy (and the secrets it reads) in place.
func slotGroup(ctx *pulumi.Context, in FleetInput, slot fleet.Slot, rel fleet.Release, size int, tg *lb.TargetGroup, profile *iam.InstanceProfile, grants []pulumi.Resource, instSG *ec2.SecurityGroup) (*autoscaling.Group, error) {
	spec, s := in.Spec, in.Settings
	name := fmt.Sprintf("%s-%s", spec.Service, slot)
	slotTags := tags(s, TagService, spec.Service, TagSlot, string(slot), TagVersion, rel.Version, TagDigest, rel.Image.Digest)
	ud, err := userData(bootSpec(in, slot, rel))
	if err != nil {
		return nil, err
	}
	sgs := pulumi.StringArray{instSG.ID()}
	for _, g := range s.SecurityGroups {
		sgs = append(sgs, pulumi.String(g))
	}
	var key pulumi.StringPtrInput
	if s.KeyName != "" {
		key = pulumi.String(s.KeyName)
	}
	ltOpts := []pulumi.ResourceOption{
		// A new image or boot spec is a new template, so the group below is replaced
		// rather than left running instances of the old one.
		pulumi.ReplaceOnChanges([]string{"imageId", "userData"}),
	}
	if rel.Secrets != in.SecretsVersion {
		// The slot runs a release made before the current secrets (the old slot while a
		// secret change rolls out): the secrets it names stay those it was made with, so
		// adding or removing one replaces nothing of the slot.
		ltOpts = append(ltOpts, pulumi.IgnoreChanges([]string{"userData"}))
	}
	asgOpts := []pulumi.ResourceOption{
		// The group's name is fixed (<service>-<slot>): a replacement must delete the old
		// group first.
		pulumi.ReplaceOnChanges([]string{"launchTemplate"}), pulumi.DeleteBeforeReplace(true), pulumi.DependsOn(grants),
	}
	if in.Frozen[slot] {
		// The slot's release runs already: what it was launched with stays, whatever
		// changed in the settings since, so the slot's instances are never replaced
		// while they may carry traffic. Only its size follows the spec.
		ltOpts = append(ltOpts, pulumi.IgnoreChanges([]string{"imageId", "instanceType", "iamInstanceProfile", "keyName",
			"vpcSecurityGroupIds", "metadataOptions", "userData", "tagSpecifications", "tags"}))
		asgOpts = append(asgOpts, pulumi.IgnoreChanges([]string{"launchTemplate", "vpcZoneIdentifiers", "healthCheckType",
			"healthCheckGracePeriod", "tags"}))
	}
	instanceTags := tags(s, TagService, spec.Service, TagSlot, string(slot), TagVersion, rel.Version, TagDigest, rel.Image.Digest, "Name", name)
	lt, err := ec2.NewLaunchTemplate(ctx, name, &ec2.LaunchTemplateArgs{
		ImageId:             pulumi.String(rel.Image.Location),
		InstanceType:        pulumi.String(s.InstanceType),
		IamInstanceProfile:  &ec2.LaunchTemplateIamInstanceProfileArgs{Arn: profile.Arn},
		KeyName:             key,
		VpcSecurityGroupIds: sgs,
		MetadataOptions: &ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String("enabled"),
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(1),
		},
		UserData: pulumi.String(ud),
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: pulumi.ToStringMap(instanceTags)},
		},
		Tags: pulumi.ToStringMap(slotTags),
	}, ltOpts...)
	if err != nil {
		return nil, err
	}
	var asgTags autoscaling.GroupTagArray
	for _, k := range sortedKeys(instanceTags) {
		asgTags = append(asgTags, &autoscaling.GroupTagArgs{Key: pulumi.String(k), Value: pulumi.String(instanceTags[k]), PropagateAtLaunch: pulumi.Bool(true)})
	}
	subnets := pulumi.ToStringArray(s.Subnets)
	return autoscaling.NewGroup(ctx, name, &autoscaling.GroupArgs{
		Name:                   pulumi.String(name),
		MinSize:                pulumi.Int(size),
		MaxSize:                pulumi.Int(size),
		DesiredCapacity:        pulumi.Int(size),
		LaunchTemplate:         &autoscaling.GroupLaunchTemplateArgs{Id: lt.ID(), Version: lt.LatestVersion.ApplyT(func(v int) string { return fmt.Sprint(v) }).(pulumi.StringOutput)},
		VpcZoneIdentifiers:     subnets,
		TargetGroupArns:        pulumi.StringArray{tg.Arn},
		HealthCheckType:        pulumi.String("ELB"),
		HealthCheckGracePeriod: pulumi.Int(s.GracePeriodSecs),
		WaitForElbCapacity:     pulumi.Int(size),
		Tags:                   asgTags,
	}, asgOpts...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
