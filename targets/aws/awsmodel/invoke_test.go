package awsmodel

import (
	"context"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func invoke(t *testing.T, p *Provider, tok string, args map[string]any) map[string]any {
	t.Helper()
	resp, err := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: tok, Args: mustStruct(t, args)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFailures()) > 0 {
		t.Fatalf("%s failed: %v", tok, resp.GetFailures())
	}
	return resp.GetReturn().AsMap()
}

func TestInvokesAnswerFromTheModel(t *testing.T) {
	p, _ := newTestProvider(t, Behaviour{})
	byVPC := map[string]any{"filters": []any{map[string]any{"name": "vpc-id", "values": []any{"vpc-1"}}}}
	ids := invoke(t, p, InvokeSubnets, byVPC)["ids"].([]any)
	again := invoke(t, p, InvokeSubnets, byVPC)["ids"].([]any)
	if len(ids) != ModelSubnets || !equalJSON(ids, again) || !strings.HasPrefix(str(ids[0]), "subnet-") {
		t.Fatalf("subnets %v then %v: want %d stable subnet IDs", ids, again, ModelSubnets)
	}
	if sub := invoke(t, p, InvokeSubnet, map[string]any{"id": ids[0]}); sub["vpcId"] == "" {
		t.Fatalf("subnet %v", sub)
	}
	if vpc := invoke(t, p, InvokeVpc, map[string]any{"id": "vpc-1"}); vpc["id"] != "vpc-1" || vpc["cidrBlock"] == "" {
		t.Fatalf("vpc %v", vpc)
	}

	public := "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	ami := str(invoke(t, p, InvokeParameter, map[string]any{"name": public})["value"])
	if !strings.HasPrefix(ami, "ami-") || str(invoke(t, p, InvokeParameter, map[string]any{"name": public})["value"]) != ami {
		t.Fatalf("parent image parameter %q is not a stable AMI ID", ami)
	}
	create(t, p, TypeParameter, "p", map[string]any{"name": "/kiln/shop/X", "value": "42"})
	if v := invoke(t, p, InvokeParameter, map[string]any{"name": "/kiln/shop/X"})["value"]; v != "42" {
		t.Fatalf("the stack's own parameter read %v", v)
	}
	resp, _ := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: InvokeParameter, Args: mustStruct(t, map[string]any{"name": "/nope"})})
	if len(resp.GetFailures()) == 0 {
		t.Fatal("a missing parameter was found")
	}

	// A listener outside the model's stacks (the manifest's shared one) and its balancer.
	shared := "arn:aws:elasticloadbalancing:eu-west-1:" + ModelAccount + ":listener/app/edge/0123456789abcdef/fedcba9876543210"
	l := invoke(t, p, InvokeListener, map[string]any{"arn": shared})
	b := invoke(t, p, InvokeLoadBalancer, map[string]any{"arn": l["loadBalancerArn"]})
	if b["arnSuffix"] != "app/edge/0123456789abcdef" || !strings.HasPrefix(str(b["dnsName"]), "edge-") || len(b["securityGroups"].([]any)) != 1 {
		t.Fatalf("listener %v, balancer %v", l, b)
	}
	// The model's own balancer answers with its outputs.
	lbID, lbOuts := create(t, p, TypeLoadBalancer, "shop", map[string]any{})
	if got := invoke(t, p, InvokeLoadBalancer, map[string]any{"arn": lbID}); got["dnsName"] != lbOuts["dnsName"] {
		t.Fatalf("own balancer %v, created %v", got, lbOuts)
	}

	_, err := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: "aws:ec2/getNope:getNope", Args: mustStruct(t, map[string]any{})})
	if err == nil || !strings.Contains(err.Error(), "invoke.go") {
		t.Fatalf("an invoke the model does not answer: %v", err)
	}
}
