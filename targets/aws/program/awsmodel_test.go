package program

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// awsModel is a model of AWS for Pulumi's mocks — never AWS. It records what a program
// declares and answers as the AWS provider would after a create: the inputs back, plus the
// outputs AWS computes (IDs, ARNs, generated names, DNS names, an Image Builder image's
// AMI), invented deterministically from the logical name, so two runs of the same program
// see the same values. In preview (dryRun) it answers with the inputs only, so computed
// outputs are unknown, as a real preview of new resources leaves them.
type awsModel struct {
	dryRun bool

	mu      sync.Mutex
	res     map[string]*modelResource // by type and logical name
	invokes []string
}

// modelResource is one declared resource as the model recorded it.
type modelResource struct {
	Type, Name string
	Inputs     resource.PropertyMap
	Outputs    resource.PropertyMap
	RPC        *pulumirpc.RegisterResourceRequest
}

// The model's account, region and VPC.
const (
	modelAccount = "123456789012"
	modelRegion  = "eu-west-1"
	modelVPC     = "vpc-0model"
	modelVPCCIDR = "10.20.0.0/16"
)

func (m *awsModel) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	out := args.Inputs.Copy()
	id := ""
	if !m.dryRun {
		id = modelID(args.TypeToken, args.Name)
		for k, v := range m.computed(args.TypeToken, args.Name, args.Inputs) {
			if _, given := out[resource.PropertyKey(k)]; !given {
				out[resource.PropertyKey(k)] = resource.NewPropertyValue(v)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.res == nil {
		m.res = map[string]*modelResource{}
	}
	m.res[args.TypeToken+"::"+args.Name] = &modelResource{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs, Outputs: out, RPC: args.RegisterRPC}
	return id, out, nil
}

// computed are the outputs AWS gives a resource of typ.
func (m *awsModel) computed(typ, name string, in resource.PropertyMap) map[string]any {
	svc := strings.Split(typ, ":")[1]
	svc = strings.Split(svc, "/")[0]
	generated := name + "-" + modelHash(name)[:7] // Pulumi's auto-naming
	out := map[string]any{
		"arn":  fmt.Sprintf("arn:aws:%s:%s:%s:%s/%s", svc, modelRegion, modelAccount, strings.ToLower(typ[strings.LastIndex(typ, ":")+1:]), generated),
		"name": generated,
	}
	switch typ {
	case "aws:s3/bucketV2:BucketV2":
		out["bucket"] = generated
		out["arn"] = "arn:aws:s3:::" + generated
	case "aws:ssm/parameter:Parameter":
		out["arn"] = fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", modelRegion, modelAccount, in["name"].StringValue())
	case "aws:imagebuilder/image:Image":
		out["outputResources"] = []any{map[string]any{"amis": []any{map[string]any{
			"image": modelAMI(name), "region": modelRegion, "accountId": modelAccount,
		}}}}
	case "aws:lb/loadBalancer:LoadBalancer":
		out["dnsName"] = generated + "-" + modelHash(generated)[:8] + "." + modelRegion + ".elb.amazonaws.com"
		out["arnSuffix"] = "app/" + generated + "/" + modelHash(generated)[:16]
	case "aws:lb/targetGroup:TargetGroup":
		out["arnSuffix"] = "targetgroup/" + generated + "/" + modelHash(generated)[:16]
	case "aws:ec2/launchTemplate:LaunchTemplate":
		out["latestVersion"] = 1
	case "aws:autoscaling/group:Group":
		delete(out, "name") // always named by the program
	}
	return out
}

// Call answers the data sources the programs read.
func (m *awsModel) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	m.mu.Lock()
	m.invokes = append(m.invokes, args.Token)
	m.mu.Unlock()
	var out map[string]any
	switch args.Token {
	case "aws:ec2/getSubnet:getSubnet":
		out = map[string]any{"id": args.Args["id"].StringValue(), "vpcId": modelVPC, "cidrBlock": "10.20.1.0/24"}
	case "aws:ec2/getVpc:getVpc":
		out = map[string]any{"id": args.Args["id"].StringValue(), "cidrBlock": modelVPCCIDR}
	case "aws:lb/getListener:getListener":
		out = map[string]any{"arn": args.Args["arn"].StringValue(), "port": 443, "protocol": "HTTPS",
			"loadBalancerArn": modelSharedLB}
	case "aws:lb/getLoadBalancer:getLoadBalancer":
		out = map[string]any{"arn": args.Args["arn"].StringValue(), "dnsName": "shared-1234.eu-west-1.elb.amazonaws.com",
			"arnSuffix": "app/shared/0123456789abcdef", "securityGroups": []any{"sg-0sharedlb"}}
	default:
		return nil, fmt.Errorf("model of AWS: no data source %s", args.Token)
	}
	return resource.NewPropertyMapFromMap(out), nil
}

// modelSharedLB is the balancer of the model's existing listener.
const modelSharedLB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/shared/0123456789abcdef"

func modelHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// modelAMI is the AMI the model's Image Builder makes for an image resource.
func modelAMI(name string) string { return "ami-" + modelHash(name)[:17] }

func modelID(typ, name string) string {
	return strings.ToLower(typ[strings.LastIndex(typ, ":")+1:]) + "-" + modelHash(typ + name)[:12]
}

// run runs a program against a fresh model of AWS and returns the model and the known
// values of the stack's outputs.
func run(t *testing.T, fn pulumi.RunFunc, dryRun bool, opts ...pulumi.RunOption) (*awsModel, map[string]any) {
	t.Helper()
	m, exports, err := runErr(fn, dryRun, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m, exports
}

func runErr(fn pulumi.RunFunc, dryRun bool, opts ...pulumi.RunOption) (*awsModel, map[string]any, error) {
	m := &awsModel{dryRun: dryRun}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		if err := fn(ctx); err != nil {
			return err
		}
		// The stack's outputs reach the model as the inputs of one more resource, which
		// waits for them to resolve (unknown ones arrive as null).
		var st pulumi.CustomResourceState
		return ctx.RegisterResource(typeExports, "exports", pulumi.Map(ctx.GetCurrentExportMap()), &st)
	}, append([]pulumi.RunOption{pulumi.WithMocks("kiln", "test", m), func(ri *pulumi.RunInfo) { ri.DryRun = dryRun }}, opts...)...)
	if err != nil {
		return m, nil, err
	}
	exports := map[string]any{}
	r := m.res[typeExports+"::exports"]
	delete(m.res, typeExports+"::exports")
	for k := range r.Inputs {
		if v := r.in(string(k)); v != nil {
			exports[string(k)] = v
		}
	}
	return m, exports, nil
}

// typeExports is the test's own resource that carries the stack's outputs to the model.
const typeExports = "kiln:test:Exports"

// ofType returns the resources of typ, by logical name.
func (m *awsModel) ofType(typ string) map[string]*modelResource {
	out := map[string]*modelResource{}
	for _, r := range m.res {
		if r.Type == typ {
			out[r.Name] = r
		}
	}
	return out
}

// get returns the resource of typ and name, failing the test when there is none.
func (m *awsModel) get(t *testing.T, typ, name string) *modelResource {
	t.Helper()
	r, ok := m.res[typ+"::"+name]
	if !ok {
		t.Fatalf("no %s %q; have %v", typ, name, m.names())
	}
	return r
}

// names lists the declared resources as type::name, sorted.
func (m *awsModel) names() []string {
	var out []string
	for k := range m.res {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// in returns an input as plain Go values (secrets unwrapped, unknowns as nil).
func (r *modelResource) in(key string) any {
	v, ok := r.Inputs[resource.PropertyKey(key)]
	if !ok {
		return nil
	}
	return plain(v)
}

func (r *modelResource) str(key string) string {
	s, _ := r.in(key).(string)
	return s
}

func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		if !v.OutputValue().Known {
			return nil
		}
		return plain(v.OutputValue().Element)
	case v.IsComputed(), v.IsNull():
		return nil
	case v.IsArray():
		var out []any
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = plain(e)
		}
		return out
	}
	return v.V
}
