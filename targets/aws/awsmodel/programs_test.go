//go:build e2e

package awsmodel

import (
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/imagebuilder"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The programs below are the test's own, in the shape of kiln's aws programs (package
// program): they exercise the model, not kiln's programs.

// regionProvider is an explicit aws provider, as kiln's programs configure the region
// from the manifest: the double's Configure receives it.
type regionProvider struct{ pulumi.ProviderResourceState }

func awsProvider(ctx *pulumi.Context, region string) (pulumi.ResourceOrInvokeOption, error) {
	var p regionProvider
	err := ctx.RegisterResource("pulumi:providers:aws", "aws", pulumi.Map{"region": pulumi.String(region)}, &p)
	return pulumi.Provider(&p), err
}

const assumeEC2 = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// bakeImage is one image of the images stack.
type bakeImage struct{ digest, version, payload string }

// imagesProgram declares the images stack's shape: the artifacts bucket, the payload,
// the Image Builder role, and per image a component, a recipe and the image.
func imagesProgram(images []bakeImage) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		prov, err := awsProvider(ctx, "eu-west-1")
		if err != nil {
			return err
		}
		bucket, err := s3.NewBucketV2(ctx, "artifacts", &s3.BucketV2Args{ForceDestroy: pulumi.Bool(true)}, prov)
		if err != nil {
			return err
		}
		if _, err := s3.NewBucketPublicAccessBlock(ctx, "artifacts", &s3.BucketPublicAccessBlockArgs{Bucket: bucket.ID(),
			BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true)}, prov); err != nil {
			return err
		}
		role, err := iam.NewRole(ctx, "builder", &iam.RoleArgs{AssumeRolePolicy: pulumi.String(assumeEC2)}, prov)
		if err != nil {
			return err
		}
		if _, err := iam.NewRolePolicyAttachment(ctx, "builder-ssm", &iam.RolePolicyAttachmentArgs{Role: role.Name,
			PolicyArn: pulumi.String("arn:aws:iam::aws:policy/EC2InstanceProfileForImageBuilder")}, prov); err != nil {
			return err
		}
		profile, err := iam.NewInstanceProfile(ctx, "builder", &iam.InstanceProfileArgs{Role: role.Name}, prov)
		if err != nil {
			return err
		}
		parent, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}, prov)
		if err != nil {
			return err
		}
		subnets, err := ec2.GetSubnets(ctx, &ec2.GetSubnetsArgs{Filters: []ec2.GetSubnetsFilter{{Name: "vpc-id", Values: []string{"vpc-0123"}}}}, prov)
		if err != nil {
			return err
		}
		infra, err := imagebuilder.NewInfrastructureConfiguration(ctx, "shop", &imagebuilder.InfrastructureConfigurationArgs{
			InstanceProfileName: profile.Name, InstanceTypes: pulumi.ToStringArray([]string{"t3.small"}),
			SubnetId: pulumi.String(subnets.Ids[0])}, prov)
		if err != nil {
			return err
		}
		amis := pulumi.StringMap{}
		for _, im := range images {
			name := "shop-" + im.digest
			payload, err := s3.NewBucketObjectv2(ctx, name, &s3.BucketObjectv2Args{Bucket: bucket.ID(),
				Key: pulumi.String("images/" + im.digest + ".tar"), Source: pulumi.NewFileAsset(im.payload)}, prov)
			if err != nil {
				return err
			}
			comp, err := imagebuilder.NewComponent(ctx, name, &imagebuilder.ComponentArgs{Platform: pulumi.String("Linux"),
				Version: pulumi.String(im.version),
				Data:    pulumi.Sprintf("phases: [{name: build, steps: [{action: S3Download, inputs: [{source: 's3://%s/%s'}]}]}]", bucket.Bucket, payload.Key)}, prov)
			if err != nil {
				return err
			}
			recipe, err := imagebuilder.NewImageRecipe(ctx, name, &imagebuilder.ImageRecipeArgs{ParentImage: pulumi.String(parent.Value),
				Version:    pulumi.String(im.version),
				Components: imagebuilder.ImageRecipeComponentArray{imagebuilder.ImageRecipeComponentArgs{ComponentArn: comp.Arn}}}, prov)
			if err != nil {
				return err
			}
			img, err := imagebuilder.NewImage(ctx, name, &imagebuilder.ImageArgs{ImageRecipeArn: recipe.Arn,
				InfrastructureConfigurationArn: infra.Arn}, prov)
			if err != nil {
				return err
			}
			amis[im.digest] = img.OutputResources.Index(pulumi.Int(0)).Amis().Index(pulumi.Int(0)).Image().Elem()
		}
		ctx.Export("amis", amis)
		ctx.Export("artifactsBucket", bucket.Bucket)
		return nil
	}
}

// fleetSlot is one slot of the fleet stack: without an AMI it has no instances, only
// its target group.
type fleetSlot struct {
	ami    string
	size   int
	weight int
}

// fleetProgram declares the fleet stack's shape: the balancer, a target group per slot,
// one listener weighing both, the instance role, a secret parameter, and per slot with
// an AMI a launch template and an auto scaling group.
func fleetProgram(slots map[string]fleetSlot) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		prov, err := awsProvider(ctx, "eu-west-1")
		if err != nil {
			return err
		}
		vpc, err := ec2.LookupVpc(ctx, &ec2.LookupVpcArgs{Default: pulumi.BoolRef(true)}, prov)
		if err != nil {
			return err
		}
		subnets, err := ec2.GetSubnets(ctx, &ec2.GetSubnetsArgs{Filters: []ec2.GetSubnetsFilter{{Name: "vpc-id", Values: []string{vpc.Id}}}}, prov)
		if err != nil {
			return err
		}
		lbSG, err := ec2.NewSecurityGroup(ctx, "shop-lb", &ec2.SecurityGroupArgs{VpcId: pulumi.String(vpc.Id), Description: pulumi.String("balancer")}, prov)
		if err != nil {
			return err
		}
		instSG, err := ec2.NewSecurityGroup(ctx, "shop-instances", &ec2.SecurityGroupArgs{VpcId: pulumi.String(vpc.Id), Description: pulumi.String("instances")}, prov)
		if err != nil {
			return err
		}
		if _, err := ec2.NewSecurityGroupRule(ctx, "shop-from-lb", &ec2.SecurityGroupRuleArgs{Type: pulumi.String("ingress"),
			SecurityGroupId: instSG.ID(), SourceSecurityGroupId: lbSG.ID(), Protocol: pulumi.String("tcp"),
			FromPort: pulumi.Int(8080), ToPort: pulumi.Int(8080)}, prov); err != nil {
			return err
		}
		balancer, err := lb.NewLoadBalancer(ctx, "shop", &lb.LoadBalancerArgs{Subnets: pulumi.ToStringArray(subnets.Ids),
			SecurityGroups: pulumi.StringArray{lbSG.ID()}}, prov)
		if err != nil {
			return err
		}
		role, err := iam.NewRole(ctx, "shop-instance", &iam.RoleArgs{AssumeRolePolicy: pulumi.String(assumeEC2)}, prov)
		if err != nil {
			return err
		}
		if _, err := iam.NewRolePolicy(ctx, "shop-secrets", &iam.RolePolicyArgs{Role: role.Name,
			Policy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameters","Resource":"*"}]}`)}, prov); err != nil {
			return err
		}
		profile, err := iam.NewInstanceProfile(ctx, "shop", &iam.InstanceProfileArgs{Role: role.Name}, prov)
		if err != nil {
			return err
		}
		if _, err := ssm.NewParameter(ctx, "shop-DB_PASSWORD", &ssm.ParameterArgs{Name: pulumi.String("/kiln/shop/DB_PASSWORD"),
			Type: pulumi.String("SecureString"), Value: pulumi.ToSecret(pulumi.String("hunter2")).(pulumi.StringOutput)}, prov); err != nil {
			return err
		}
		var forward lb.ListenerDefaultActionForwardTargetGroupArray
		tgArns, groups := pulumi.StringMap{}, pulumi.StringMap{}
		for _, slot := range []string{"blue", "green"} {
			s := slots[slot]
			tg, err := lb.NewTargetGroup(ctx, "shop-"+slot, &lb.TargetGroupArgs{Port: pulumi.Int(8080), Protocol: pulumi.String("HTTP"),
				VpcId: pulumi.String(vpc.Id), HealthCheck: &lb.TargetGroupHealthCheckArgs{Path: pulumi.String("/healthz")}}, prov)
			if err != nil {
				return err
			}
			tgArns[slot] = tg.Arn
			forward = append(forward, lb.ListenerDefaultActionForwardTargetGroupArgs{Arn: tg.Arn, Weight: pulumi.Int(s.weight)})
			if s.ami == "" {
				continue
			}
			lt, err := ec2.NewLaunchTemplate(ctx, "shop-"+slot, &ec2.LaunchTemplateArgs{ImageId: pulumi.String(s.ami),
				InstanceType: pulumi.String("t3.small"), VpcSecurityGroupIds: pulumi.StringArray{instSG.ID()},
				IamInstanceProfile: &ec2.LaunchTemplateIamInstanceProfileArgs{Name: profile.Name},
				MetadataOptions:    &ec2.LaunchTemplateMetadataOptionsArgs{HttpTokens: pulumi.String("required")}}, prov)
			if err != nil {
				return err
			}
			g, err := autoscaling.NewGroup(ctx, "shop-"+slot, &autoscaling.GroupArgs{Name: pulumi.String("shop-" + slot),
				LaunchTemplate: &autoscaling.GroupLaunchTemplateArgs{Id: lt.ID(),
					Version: lt.LatestVersion.ApplyT(func(v int) string { return strconv.Itoa(v) }).(pulumi.StringOutput)},
				MinSize: pulumi.Int(s.size), MaxSize: pulumi.Int(s.size), DesiredCapacity: pulumi.Int(s.size),
				TargetGroupArns: pulumi.StringArray{tg.Arn}, HealthCheckType: pulumi.String("ELB"),
				HealthCheckGracePeriod: pulumi.Int(60), VpcZoneIdentifiers: pulumi.ToStringArray(subnets.Ids)}, prov)
			if err != nil {
				return err
			}
			groups[slot] = g.Name
		}
		if _, err := lb.NewListener(ctx, "shop", &lb.ListenerArgs{LoadBalancerArn: balancer.Arn, Port: pulumi.Int(80), Protocol: pulumi.String("HTTP"),
			DefaultActions: lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"),
				Forward: &lb.ListenerDefaultActionForwardArgs{TargetGroups: forward}}}}, prov); err != nil {
			return err
		}
		ctx.Export("endpoint", pulumi.Sprintf("http://%s", balancer.DnsName))
		ctx.Export("loadBalancerDimension", balancer.ArnSuffix)
		ctx.Export("targetGroups", tgArns)
		ctx.Export("groups", groups)
		return nil
	}
}
