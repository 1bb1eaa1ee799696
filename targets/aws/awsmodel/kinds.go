package awsmodel

import (
	"fmt"
	"strings"
	"time"
)

// kind is what the model knows of one resource type of pulumi-aws: how it is named and
// identified, which inputs force a replacement (upstream's ForceNew), and the outputs AWS
// computes. A type the model does not know gets genericKind: it still works, so new types
// in kiln's programs do not break the double.
type kind struct {
	// nameKey is the input Check fills in when neither it nor namePrefix is given (the
	// provider's autonaming); nameMax is AWS's limit on it, lowerName for S3's buckets.
	nameKey   string
	nameMax   int
	lowerName bool
	// unique: AWS refuses a second resource of the type with the same name, unless the
	// input overwriteKey (if any) is true: then the create takes the existing one over (SSM
	// PutParameter with Overwrite).
	unique       bool
	overwriteKey string
	// replaceOn are the inputs whose change replaces the resource.
	replaceOn []string
	// invent returns the ID and computed outputs of a new resource.
	invent func(a account, urnName string, in map[string]any) (id string, computed map[string]any)
	// updated adjusts the outputs after an update (a launch template's new version).
	updated func(outs map[string]any)
	// volatile are computed outputs every update changes: unknown in an update's preview.
	volatile []string
}

// account is where the model's resources live: the provider's configured region and a
// made-up account ID (the documentation's example account, never a real one).
type account struct {
	Region string
	ID     string
}

// ModelAccount is the account ID of every resource of the model.
const ModelAccount = "123456789012"

func (a account) arn(service, res string) string {
	return "arn:aws:" + service + ":" + a.Region + ":" + a.ID + ":" + res
}

// Type tokens of the resources the model treats specially.
const (
	TypeBucket         = "aws:s3/bucketV2:BucketV2"
	TypeBucketObject   = "aws:s3/bucketObjectv2:BucketObjectv2"
	TypeComponent      = "aws:imagebuilder/component:Component"
	TypeImageRecipe    = "aws:imagebuilder/imageRecipe:ImageRecipe"
	TypeInfraConfig    = "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"
	TypeImage          = "aws:imagebuilder/image:Image"
	TypeRole           = "aws:iam/role:Role"
	TypeRolePolicy     = "aws:iam/rolePolicy:RolePolicy"
	TypeRolePolicyAtt  = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	TypeProfile        = "aws:iam/instanceProfile:InstanceProfile"
	TypeSecurityGroup  = "aws:ec2/securityGroup:SecurityGroup"
	TypeSGRule         = "aws:ec2/securityGroupRule:SecurityGroupRule"
	TypeLaunchTemplate = "aws:ec2/launchTemplate:LaunchTemplate"
	TypeGroup          = "aws:autoscaling/group:Group"
	TypeLoadBalancer   = "aws:lb/loadBalancer:LoadBalancer"
	TypeTargetGroup    = "aws:lb/targetGroup:TargetGroup"
	TypeListener       = "aws:lb/listener:Listener"
	TypeListenerRule   = "aws:lb/listenerRule:ListenerRule"
	TypeParameter      = "aws:ssm/parameter:Parameter"
)

var kinds = map[string]kind{
	TypeBucket: {nameKey: "bucket", nameMax: 63, lowerName: true, unique: true,
		replaceOn: []string{"bucket", "bucketPrefix", "objectLockEnabled"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			b := str(in["bucket"])
			return b, map[string]any{"arn": "arn:aws:s3:::" + b, "bucketDomainName": b + ".s3.amazonaws.com",
				"bucketRegionalDomainName": b + ".s3." + a.Region + ".amazonaws.com", "region": a.Region,
				"hostedZoneId": "Z3AQBSTGFYJSTF"}
		}},
	TypeBucketObject: {replaceOn: []string{"bucket", "key"},
		invent: func(_ account, _ string, in map[string]any) (string, map[string]any) {
			return str(in["key"]), map[string]any{"arn": "arn:aws:s3:::" + str(in["bucket"]) + "/" + str(in["key"]),
				"etag": randomHex(32), "versionId": randomHex(32)}
		},
		updated:  func(outs map[string]any) { outs["etag"], outs["versionId"] = randomHex(32), randomHex(32) },
		volatile: []string{"etag", "versionId"}},
	TypeComponent: {nameKey: "name", nameMax: 128, unique: true,
		replaceOn: []string{"name", "version", "data", "uri", "platform", "description", "changeDescription", "kmsKeyId", "supportedOsVersions"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			arn := a.arn("imagebuilder", "component/"+strings.ToLower(str(in["name"]))+"/"+str(in["version"])+"/1")
			return arn, map[string]any{"arn": arn, "dateCreated": now(), "owner": a.ID, "type": "BUILD", "encrypted": true}
		}},
	TypeImageRecipe: {nameKey: "name", nameMax: 128, unique: true,
		replaceOn: []string{"name", "version", "components", "parentImage", "blockDeviceMappings", "workingDirectory", "description", "userDataBase64", "systemsManagerAgent"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			arn := a.arn("imagebuilder", "image-recipe/"+strings.ToLower(str(in["name"]))+"/"+str(in["version"]))
			return arn, map[string]any{"arn": arn, "dateCreated": now(), "owner": a.ID, "platform": "Linux"}
		}},
	TypeInfraConfig: {nameKey: "name", nameMax: 128, unique: true, replaceOn: []string{"name"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			arn := a.arn("imagebuilder", "infrastructure-configuration/"+strings.ToLower(str(in["name"])))
			return arn, map[string]any{"arn": arn, "dateCreated": now()}
		}},
	TypeImage: {
		replaceOn: []string{"imageRecipeArn", "containerRecipeArn", "infrastructureConfigurationArn", "distributionConfigurationArn",
			"imageTestsConfiguration", "imageScanningConfiguration", "enhancedImageMetadataEnabled", "workflows", "executionRole"},
		invent: func(a account, urnName string, in map[string]any) (string, map[string]any) {
			// The recipe's ARN ends in image-recipe/<name>/<version>; the image takes both.
			recipe := strings.TrimPrefix(resourcePart(str(in["imageRecipeArn"])), "image-recipe/")
			if recipe == "" {
				recipe = strings.ToLower(urnName) + "/1.0.0"
			}
			arn := a.arn("imagebuilder", "image/"+recipe+"/"+randomDigits(1))
			ami := map[string]any{"accountId": a.ID, "description": "", "image": "ami-" + randomHex(17),
				"name": urnName, "region": a.Region}
			return arn, map[string]any{"arn": arn, "dateCreated": now(), "platform": "Linux", "osVersion": "Amazon Linux 2023",
				"name": strings.Split(recipe, "/")[0], "version": recipe[strings.LastIndex(recipe, "/")+1:] + "/1",
				"outputResources": []any{map[string]any{"amis": []any{ami}, "containers": []any{}}}}
		}},
	TypeRole: {nameKey: "name", nameMax: 64, unique: true, replaceOn: []string{"name", "namePrefix", "path"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			n := str(in["name"])
			return n, map[string]any{"arn": "arn:aws:iam::" + a.ID + ":role" + pathOf(in) + n,
				"uniqueId": "AROA" + strings.ToUpper(randomHex(17)), "createDate": now()}
		}},
	TypeProfile: {nameKey: "name", nameMax: 128, unique: true, replaceOn: []string{"name", "namePrefix", "path"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			n := str(in["name"])
			return n, map[string]any{"arn": "arn:aws:iam::" + a.ID + ":instance-profile" + pathOf(in) + n,
				"uniqueId": "AIPA" + strings.ToUpper(randomHex(17)), "createDate": now()}
		}},
	TypeRolePolicy: {nameKey: "name", nameMax: 128, replaceOn: []string{"role", "name", "namePrefix"},
		invent: func(_ account, _ string, in map[string]any) (string, map[string]any) {
			return str(in["role"]) + ":" + str(in["name"]), map[string]any{}
		}},
	TypeRolePolicyAtt: {replaceOn: []string{"role", "policyArn"},
		invent: func(_ account, _ string, in map[string]any) (string, map[string]any) {
			return str(in["role"]) + "-" + randomDigits(20), map[string]any{}
		}},
	TypeSecurityGroup: {nameKey: "name", nameMax: 255, replaceOn: []string{"name", "namePrefix", "description", "vpcId"},
		invent: func(a account, _ string, _ map[string]any) (string, map[string]any) {
			id := "sg-" + randomHex(17)
			return id, map[string]any{"arn": a.arn("ec2", "security-group/"+id), "ownerId": a.ID}
		}},
	TypeSGRule: {replaceOn: []string{"type", "securityGroupId", "protocol", "fromPort", "toPort", "cidrBlocks", "ipv6CidrBlocks", "prefixListIds", "sourceSecurityGroupId", "self"},
		invent: func(_ account, _ string, _ map[string]any) (string, map[string]any) {
			return "sgrule-" + randomDigits(10), map[string]any{}
		}},
	TypeLaunchTemplate: {nameKey: "name", nameMax: 128, unique: true, replaceOn: []string{"name", "namePrefix"},
		invent: func(a account, _ string, _ map[string]any) (string, map[string]any) {
			id := "lt-" + randomHex(17)
			return id, map[string]any{"arn": a.arn("ec2", "launch-template/"+id), "latestVersion": 1.0, "defaultVersion": 1.0}
		},
		updated: func(outs map[string]any) {
			outs["latestVersion"] = float64(num(outs["latestVersion"], 0) + 1)
			if b, _ := Plain(outs["updateDefaultVersion"]).(bool); b {
				outs["defaultVersion"] = outs["latestVersion"]
			}
		},
		volatile: []string{"latestVersion", "defaultVersion"}},
	TypeGroup: {nameKey: "name", nameMax: 255, unique: true, replaceOn: []string{"name", "namePrefix"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			n := str(in["name"])
			return n, map[string]any{"arn": a.arn("autoscaling", "autoScalingGroup:"+uuid()+":autoScalingGroupName/"+n)}
		}},
	TypeLoadBalancer: {nameKey: "name", nameMax: 32, unique: true, replaceOn: []string{"name", "namePrefix", "internal", "loadBalancerType"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			n := str(in["name"])
			suffix := "app/" + n + "/" + randomHex(16)
			scheme := "internet-facing"
			if b, _ := Plain(in["internal"]).(bool); b {
				scheme = "internal"
			}
			return a.arn("elasticloadbalancing", "loadbalancer/"+suffix), map[string]any{
				"arn": a.arn("elasticloadbalancing", "loadbalancer/"+suffix), "arnSuffix": suffix,
				"dnsName": scheme + "-" + n + "-" + randomDigits(10) + "." + a.Region + ".elb.amazonaws.com",
				"zoneId":  "Z35SXDOTRQ7X7K", "vpcId": "vpc-" + randomHex(17)}
		}},
	TypeTargetGroup: {nameKey: "name", nameMax: 32, unique: true,
		replaceOn: []string{"name", "namePrefix", "port", "protocol", "protocolVersion", "vpcId", "targetType"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			suffix := "targetgroup/" + str(in["name"]) + "/" + randomHex(16)
			arn := a.arn("elasticloadbalancing", suffix)
			return arn, map[string]any{"arn": arn, "arnSuffix": suffix, "loadBalancerArns": []any{}}
		}},
	TypeListener: {replaceOn: []string{"loadBalancerArn"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			lb := strings.TrimPrefix(resourcePart(str(in["loadBalancerArn"])), "loadbalancer/")
			arn := a.arn("elasticloadbalancing", "listener/"+lb+"/"+randomHex(16))
			return arn, map[string]any{"arn": arn}
		}},
	TypeListenerRule: {replaceOn: []string{"listenerArn"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			l := strings.TrimPrefix(resourcePart(str(in["listenerArn"])), "listener/")
			arn := a.arn("elasticloadbalancing", "listener-rule/"+l+"/"+randomHex(16))
			return arn, map[string]any{"arn": arn}
		}},
	TypeParameter: {nameKey: "name", nameMax: 2048, unique: true, overwriteKey: "overwrite", replaceOn: []string{"name"},
		invent: func(a account, _ string, in map[string]any) (string, map[string]any) {
			n := str(in["name"])
			return n, map[string]any{"arn": a.arn("ssm", "parameter/"+strings.TrimPrefix(n, "/")), "version": 1.0, "tier": "Standard"}
		},
		updated:  func(outs map[string]any) { outs["version"] = float64(num(outs["version"], 0) + 1) },
		volatile: []string{"version"}},
}

// bucketSettingsKind is the S3 bucket's settings resources (versioning, encryption,
// public access block, ownership, policy...): identified by their bucket, moved only
// with it.
var bucketSettingsKind = kind{replaceOn: []string{"bucket", "expectedBucketOwner"},
	invent: func(_ account, _ string, in map[string]any) (string, map[string]any) {
		return str(in["bucket"]), map[string]any{}
	}}

// genericKind is every type the model does not know: its inputs become its outputs,
// with an invented ID and ARN; a new name replaces it, any other change updates it.
func genericKind(typ string) kind {
	module, name := typeParts(typ)
	return kind{replaceOn: []string{"name", "namePrefix"},
		invent: func(a account, _ string, _ map[string]any) (string, map[string]any) {
			id := strings.ToLower(name) + "-" + randomHex(17)
			return id, map[string]any{"arn": a.arn(module, strings.ToLower(name)+"/"+id)}
		}}
}

// kindOf returns the model of a resource type.
func kindOf(typ string) kind {
	if k, ok := kinds[typ]; ok {
		return k
	}
	if strings.HasPrefix(typ, "aws:s3/bucket") {
		return bucketSettingsKind
	}
	return genericKind(typ)
}

// typeParts splits a type token aws:<module>/<member>:<Name> into module and Name.
func typeParts(typ string) (module, name string) {
	parts := strings.Split(typ, ":")
	if len(parts) != 3 {
		return "aws", typ
	}
	module, _, _ = strings.Cut(parts[1], "/")
	return module, parts[2]
}

// resourcePart is the part of an ARN after its account: e.g. loadbalancer/app/name/id.
func resourcePart(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[5]
}

// pathOf is an IAM resource's path ("/" unless given).
func pathOf(in map[string]any) string {
	if p := str(in["path"]); p != "" {
		return p
	}
	return "/"
}

func randomDigits(n int) string {
	var b strings.Builder
	for _, c := range randomHex(n) {
		b.WriteByte('0' + byte(c)%10)
	}
	return b.String()
}

func uuid() string {
	h := randomHex(32)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }
