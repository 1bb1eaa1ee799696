package awsmodel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

// Invoke tokens the model answers (the data sources kiln's programs read).
const (
	InvokeSubnets        = "aws:ec2/getSubnets:getSubnets"
	InvokeSubnet         = "aws:ec2/getSubnet:getSubnet"
	InvokeListener       = "aws:lb/getListener:getListener"
	InvokeLoadBalancer   = "aws:lb/getLoadBalancer:getLoadBalancer"
	InvokeVpc            = "aws:ec2/getVpc:getVpc"
	InvokeAmi            = "aws:ec2/getAmi:getAmi"
	InvokeParameter      = "aws:ssm/getParameter:getParameter"
	InvokeRegion         = "aws:index/getRegion:getRegion"
	InvokeCallerIdentity = "aws:index/getCallerIdentity:getCallerIdentity"
	InvokePartition      = "aws:index/getPartition:getPartition"
	InvokeZones          = "aws:index/getAvailabilityZones:getAvailabilityZones"
)

// ModelSubnets is how many subnets every VPC of the model has.
const ModelSubnets = 3

// Invoke answers a data source from the model. Every VPC exists, with ModelSubnets
// subnets whose IDs derive from its ID; SSM parameters are the stack's own (from the
// store) or AWS's public ones, whose AMI IDs derive from their names.
func (p *Provider) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	args := req.GetArgs().AsMap()
	var out map[string]any
	switch tok := req.GetTok(); tok {
	case InvokeSubnets:
		vpc := filterValue(args, "vpc-id")
		if vpc == "" {
			vpc = defaultVPC
		}
		out = map[string]any{"id": p.account.Region, "ids": subnetsOf(vpc)}
	case InvokeSubnet:
		id := str(args["id"])
		out = map[string]any{"id": id, "vpcId": defaultVPC, "availabilityZone": p.account.Region + "a",
			"cidrBlock": "10.0.0.0/24", "arn": p.account.arn("ec2", "subnet/"+id), "state": "available", "ownerId": p.account.ID}
	case InvokeListener:
		var err error
		if out, err = p.listener(str(args["arn"])); err != nil {
			return nil, err
		}
	case InvokeLoadBalancer:
		var err error
		if out, err = p.loadBalancer(str(args["arn"])); err != nil {
			return nil, err
		}
	case InvokeVpc:
		id := str(args["id"])
		if id == "" {
			id = defaultVPC
		}
		out = map[string]any{"id": id, "arn": p.account.arn("ec2", "vpc/"+id), "cidrBlock": "10.0.0.0/16",
			"default": id == defaultVPC, "state": "available", "ownerId": p.account.ID}
	case InvokeParameter:
		name := str(args["name"])
		v, err := p.parameter(name)
		if err != nil {
			return &pulumirpc.InvokeResponse{Failures: []*pulumirpc.CheckFailure{{Property: "name", Reason: err.Error()}}}, nil
		}
		out = map[string]any{"id": name, "name": name, "value": v, "type": "String", "version": 1.0,
			"arn": p.account.arn("ssm", "parameter/"+name)}
	case InvokeAmi:
		out = map[string]any{"id": derivedID("ami-", fmt.Sprint(args["filters"])), "architecture": "x86_64", "state": "available"}
	case InvokeRegion:
		out = map[string]any{"id": p.account.Region, "name": p.account.Region, "region": p.account.Region}
	case InvokeCallerIdentity:
		out = map[string]any{"id": p.account.ID, "accountId": p.account.ID, "arn": "arn:aws:iam::" + p.account.ID + ":user/kiln", "userId": "AIDA" + p.account.ID}
	case InvokePartition:
		out = map[string]any{"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}
	case InvokeZones:
		out = map[string]any{"id": p.account.Region, "names": []any{p.account.Region + "a", p.account.Region + "b", p.account.Region + "c"}}
	default:
		return nil, fmt.Errorf("awsmodel: the model of pulumi-aws does not answer %s yet: add it to targets/aws/awsmodel/invoke.go", tok)
	}
	ret, err := structpb.NewStruct(out)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: ret}, nil
}

// defaultVPC is the model account's default VPC.
const defaultVPC = "vpc-0defa017000000000"

// subnetsOf are the subnets of a VPC of the model.
func subnetsOf(vpc string) []any {
	ids := make([]any, ModelSubnets)
	for i := range ids {
		ids[i] = derivedID("subnet-", fmt.Sprintf("%s/%d", vpc, i))
	}
	return ids
}

// derivedID is an AWS-shaped ID that is always the same for the same seed.
func derivedID(prefix, seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return prefix + hex.EncodeToString(sum[:])[:17]
}

// filterValue is the first value of the named filter of a data source's arguments.
func filterValue(args map[string]any, name string) string {
	filters, _ := Plain(args["filters"]).([]any)
	for _, f := range filters {
		m, _ := f.(map[string]any)
		if str(m["name"]) != name {
			continue
		}
		if vals, _ := m["values"].([]any); len(vals) > 0 {
			return str(vals[0])
		}
	}
	return ""
}

// parameter is an SSM parameter's value: one of the stack's (the store's), else one of
// AWS's public parameters under /aws/service/, whose value is an AMI ID derived from its
// name (the parent images kiln bakes on).
func (p *Provider) parameter(name string) (string, error) {
	recs, err := p.store.List(TypeParameter)
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.Input("name") == name {
			return str(r.Input("value")), nil
		}
	}
	if strings.HasPrefix(name, "/aws/service/") {
		return derivedID("ami-", name), nil
	}
	return "", fmt.Errorf("ParameterNotFound: %s (awsmodel)", name)
}

// outputsOf returns the outputs of the cloud's resource of typ with the given ID.
func (p *Provider) outputsOf(typ, id string) (map[string]any, bool, error) {
	rec, ok, err := p.store.Get(typ, id)
	if err != nil || !ok {
		return nil, false, err
	}
	out := maps.Clone(rec.Outputs)
	out["id"] = rec.ID
	return out, true, nil
}

// listener answers a listener by ARN: the cloud's own, else an existing listener outside
// the model's stacks (the manifest's shared listener), HTTPS on 443 of the balancer its
// ARN names.
func (p *Provider) listener(arn string) (map[string]any, error) {
	if out, ok, err := p.outputsOf(TypeListener, arn); ok || err != nil {
		return out, err
	}
	// arn:...:listener/app/<lb>/<lb id>/<listener id>
	res := resourcePart(arn)
	parts := strings.Split(res, "/")
	if len(parts) != 5 || parts[0] != "listener" {
		return nil, fmt.Errorf("ListenerNotFound: %q is not a listener ARN (awsmodel)", arn)
	}
	lb := strings.Replace(arn[:strings.LastIndex(arn, "/")], ":listener/", ":loadbalancer/", 1)
	return map[string]any{"id": arn, "arn": arn, "loadBalancerArn": lb, "port": 443.0, "protocol": "HTTPS"}, nil
}

// loadBalancer answers a balancer by ARN: the cloud's own, else one outside the model's
// stacks, whose name and ID its ARN gives.
func (p *Provider) loadBalancer(arn string) (map[string]any, error) {
	if out, ok, err := p.outputsOf(TypeLoadBalancer, arn); ok || err != nil {
		return out, err
	}
	suffix := strings.TrimPrefix(resourcePart(arn), "loadbalancer/")
	parts := strings.Split(suffix, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("LoadBalancerNotFound: %q is not a load balancer ARN (awsmodel)", arn)
	}
	return map[string]any{"id": arn, "arn": arn, "arnSuffix": suffix, "name": parts[1],
		"dnsName": parts[1] + "-" + derivedID("", arn)[:10] + "." + p.account.Region + ".elb.amazonaws.com", "internal": false,
		"loadBalancerType": "application", "securityGroups": []any{derivedID("sg-", arn)}, "vpcId": defaultVPC,
		"zoneId": "Z35SXDOTRQ7X7K"}, nil
}
