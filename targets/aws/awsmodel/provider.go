package awsmodel

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// PluginPackage is the double's main package: a test builds it as
// <dir>/pulumi-resource-aws (pulumicli.AWSPlugin.Binary()) and puts dir first on the
// engine's PATH (stacks.Options.PluginDir), where the engine finds it as the aws plugin.
const PluginPackage = "github.com/kilnhq/kiln/targets/aws/awsmodel/cmd/pulumi-resource-aws"

// Main runs the provider double until the engine stops it and returns the exit code.
func Main() int {
	go exitWithEngine(os.Getppid())
	b, err := BehaviourFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-aws (awsmodel): %v\n", err)
		return 2
	}
	store, err := OpenStore(os.Getenv(DirEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-aws (awsmodel): %v\n", err)
		return 2
	}
	err = pprovider.Main(pulumicli.AWSPlugin.Name, func(*pprovider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return NewProvider(store, b), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-aws (awsmodel): %v\n", err)
		return 1
	}
	return 0
}

// exitWithEngine ends the plugin once the engine that started it is gone (killed with
// -9): nobody would ever call it again. An operation it was waiting on is left as
// the cloud would leave it: accepted, finishing on its own.
func exitWithEngine(engine int) {
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != engine {
			os.Exit(1)
		}
	}
}

// Provider is the double of pulumi-aws's resource provider: a model that keeps its cloud
// in a Store. It is exported so that tests can drive it without an engine.
type Provider struct {
	pulumirpc.UnimplementedResourceProviderServer

	store     *Store
	behaviour Behaviour
	account   account
}

var _ pulumirpc.ResourceProviderServer = (*Provider)(nil)

// NewProvider returns the double over store with a test's behaviour.
func NewProvider(store *Store, b Behaviour) *Provider {
	return &Provider{store: store, behaviour: b, account: account{Region: "us-east-1", ID: ModelAccount}}
}

// GetPluginInfo reports the version of pulumi-aws the double stands for: the one kiln's
// programs are written against.
func (p *Provider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: pulumicli.AWSPlugin.Version}, nil
}

// Configure takes the provider's configuration (the region; the rest is accepted and
// ignored). Secrets are accepted as such, so a secret input stays secret in the outputs.
func (p *Provider) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	region := req.GetVariables()["aws:config:region"]
	if args := req.GetArgs(); args != nil {
		if r := str(args.AsMap()["region"]); r != "" {
			region = r
		}
	}
	if region != "" {
		p.account.Region = region
	}
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: false}, nil
}

// CheckConfig accepts any configuration.
func (p *Provider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

// DiffConfig reports no change: the model has one region per directory.
func (p *Provider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Check names a resource that has no name, as pulumi-aws does: the old name when the
// resource had one, else its URN's name and a random suffix (namePrefix and a random
// suffix when a prefix is given).
func (p *Provider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	urn := resource.URN(req.GetUrn())
	k := kindOf(urn.Type().String())
	news := req.GetNews().AsMap()
	if k.nameKey != "" {
		if _, named := news[k.nameKey]; !named {
			olds := req.GetOlds().AsMap()
			switch {
			case olds[k.nameKey] != nil && equalJSON(olds["namePrefix"], news["namePrefix"]):
				news[k.nameKey] = olds[k.nameKey]
			case str(news["namePrefix"]) != "":
				news[k.nameKey] = str(news["namePrefix"]) + randomDigits(26)
			default:
				news[k.nameKey] = autoname(urn.Name(), k.nameMax, k.lowerName)
			}
		}
	}
	inputs, err := structpb.NewStruct(news)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", urn.Name(), err)
	}
	return &pulumirpc.CheckResponse{Inputs: inputs}, nil
}

// Diff compares old and new inputs: a change of an input the type replaces on is a
// replacement (the engine creates the new resource before it deletes the old one), any
// other change an update.
func (p *Provider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	k := kindOf(resource.URN(req.GetUrn()).Type().String())
	olds := req.GetOldInputs().AsMap()
	if len(olds) == 0 {
		olds = req.GetOlds().AsMap()
	}
	news := req.GetNews().AsMap()
	var diffs, replaces []string
	for _, key := range slices.Sorted(maps.Keys(mergedKeys(olds, news))) {
		if equalJSON(olds[key], news[key]) {
			continue
		}
		diffs = append(diffs, key)
		if slices.Contains(k.replaceOn, key) {
			replaces = append(replaces, key)
		}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs, Replaces: replaces}, nil
}

func mergedKeys(a, b map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// Create accepts the resource into the cloud at once (its record is written before the
// modelled latency, as AWS accepts a request before the work is done), waits the type's
// latency and answers its outputs.
func (p *Provider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	urn := resource.URN(req.GetUrn())
	typ := urn.Type().String()
	k := kindOf(typ)
	in := req.GetProperties().AsMap()
	id, computed := k.invent(p.account, urn.Name(), in)
	outs := maps.Clone(in)
	maps.Copy(outs, computed)
	if req.GetPreview() {
		// What AWS computes is not known before it exists.
		for key := range computed {
			outs[key] = plugin.UnknownStringValue
		}
		return p.createResponse("", outs)
	}
	if err := p.behaviour.countCreate(p.store.Dir, typ); err != nil {
		return nil, fmt.Errorf("create %s: %w", urn.Name(), err)
	}
	if k.unique && !(k.overwriteKey != "" && in[k.overwriteKey] == true) {
		if err := p.refuseDuplicate(typ, k.nameKey, in); err != nil {
			return nil, fmt.Errorf("create %s: %w", urn.Name(), err)
		}
	}
	now, latency := p.store.now(), p.behaviour.Latency[typ]
	rec := Record{Type: typ, URN: string(urn), ID: id, Inputs: in, Outputs: outs, State: StateCreating,
		Created: now, Updated: now, Launched: now, Ready: now.Add(latency)}
	if err := p.settle(ctx, rec, latency); err != nil {
		return nil, fmt.Errorf("create %s: %w", urn.Name(), err)
	}
	return p.createResponse(id, outs)
}

func (p *Provider) createResponse(id string, outs map[string]any) (*pulumirpc.CreateResponse, error) {
	props, err := structpb.NewStruct(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

// refuseDuplicate fails as AWS does when a resource of the type already has the name.
func (p *Provider) refuseDuplicate(typ, nameKey string, in map[string]any) error {
	name := str(in[nameKey])
	recs, err := p.store.List(typ)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Input(nameKey) == name && str(in["version"]) == str(r.Input("version")) {
			return fmt.Errorf("AlreadyExists: a %s named %q already exists (%s) (awsmodel)", typ, name, r.ID)
		}
	}
	return nil
}

// settle writes the record as the operation starts, waits the type's latency and writes
// it again as available. A cancelled wait leaves the record to finish on its own, as the
// cloud finishes work it accepted.
func (p *Provider) settle(ctx context.Context, rec Record, latency time.Duration) error {
	if err := p.store.Put(rec); err != nil {
		return err
	}
	if err := wait(ctx, latency); err != nil {
		return err
	}
	rec.State = StateAvailable
	return p.store.Put(rec)
}

func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Read answers the resource as the cloud holds it, or an empty ID when it is gone (a
// refresh then drops it from the stack).
func (p *Provider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	rec, ok, err := p.store.Get(resource.URN(req.GetUrn()).Type().String(), req.GetId())
	if err != nil || !ok {
		return &pulumirpc.ReadResponse{}, err
	}
	props, err := structpb.NewStruct(rec.Outputs)
	if err != nil {
		return nil, err
	}
	inputs, err := structpb.NewStruct(rec.Inputs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: rec.ID, Properties: props, Inputs: inputs}, nil
}

// Update changes the resource in place: the old outputs, with the new inputs over them
// and the type's computed changes (a launch template's next version).
func (p *Provider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	urn := resource.URN(req.GetUrn())
	typ := urn.Type().String()
	k := kindOf(typ)
	oldIns := req.GetOldInputs().AsMap()
	news := req.GetNews().AsMap()
	outs := req.GetOlds().AsMap()
	for key := range oldIns {
		if _, kept := news[key]; !kept {
			delete(outs, key)
		}
	}
	maps.Copy(outs, news)
	if req.GetPreview() {
		for _, key := range k.volatile {
			outs[key] = plugin.UnknownStringValue
		}
		return p.updateResponse(outs)
	}
	if k.updated != nil {
		k.updated(outs)
	}
	rec, ok, err := p.store.Get(typ, req.GetId())
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", urn.Name(), err)
	}
	if !ok {
		return nil, fmt.Errorf("update %s: NotFound: %s %s does not exist (awsmodel)", urn.Name(), typ, req.GetId())
	}
	now, latency := p.store.now(), p.behaviour.Latency[typ]
	if typ == TypeGroup && relaunches(oldIns, news) {
		rec.Launched = now
	}
	rec.URN, rec.Inputs, rec.Outputs, rec.State = string(urn), news, outs, StateUpdating
	rec.Updated, rec.Ready = now, now.Add(latency)
	if err := p.settle(ctx, rec, latency); err != nil {
		return nil, fmt.Errorf("update %s: %w", urn.Name(), err)
	}
	return p.updateResponse(outs)
}

func (p *Provider) updateResponse(outs map[string]any) (*pulumirpc.UpdateResponse, error) {
	props, err := structpb.NewStruct(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

// Delete marks the resource deleting (an auto scaling group's instances drain from its
// target groups meanwhile), waits the type's latency and removes it. Deleting what is
// already gone succeeds, as pulumi-aws treats AWS's NotFound.
func (p *Provider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	urn := resource.URN(req.GetUrn())
	typ := urn.Type().String()
	rec, ok, err := p.store.Get(typ, req.GetId())
	if err != nil || !ok {
		return &emptypb.Empty{}, err
	}
	latency := p.behaviour.Latency[typ]
	rec.State, rec.Ready = StateDeleting, p.store.now().Add(latency)
	if err := p.store.Put(rec); err != nil {
		return nil, fmt.Errorf("delete %s: %w", urn.Name(), err)
	}
	if err := wait(ctx, latency); err != nil {
		return nil, fmt.Errorf("delete %s: %w", urn.Name(), err)
	}
	if err := p.store.Delete(typ, rec.ID); err != nil {
		return nil, fmt.Errorf("delete %s: %w", urn.Name(), err)
	}
	return &emptypb.Empty{}, nil
}

// Cancel is a no-op: operations end with their context.
func (p *Provider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// relaunches says an update of an auto scaling group starts new instances in the model:
// a new launch template (or version) or a new size. (AWS itself keeps running instances
// on a template change unless an instance refresh is asked for; kiln's slots get their
// release through a new group or template, and the model has the new instances boot.)
func relaunches(olds, news map[string]any) bool {
	for _, key := range []string{"launchTemplate", "mixedInstancesPolicy", "desiredCapacity", "minSize", "maxSize"} {
		if !equalJSON(olds[key], news[key]) {
			return true
		}
	}
	return false
}
