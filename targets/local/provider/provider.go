// Package provider is kiln's Pulumi resource provider for the local target
// (pulumi-resource-kiln). It manages the three resources package schema declares: a
// baked image directory (by digest), an instance (a process tree booted from an image by
// kiln-boot) and the load balancer (kiln's weighted reverse proxy, `kiln lb`).
//
// The processes it starts outlive the plugin (the engine stops plugins after every
// operation); the resource outputs hold what is needed to find and stop them again.
package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kilnhq/kiln/targets/local/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Name is the plugin name: the engine runs it as pulumi-resource-kiln.
const Name = schema.Provider

// Version is reported to the engine.
const Version = "0.1.0"

// Main runs the provider until the engine stops it and returns the process exit code.
func Main() int {
	go exitWithEngine()
	if err := pprovider.Main(Name, func(*pprovider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &server{}, nil
	}); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-kiln: %v\n", err)
		return 1
	}
	return 0
}

// exitWithEngine ends the plugin when the engine that started it is gone (killed with
// kiln): an orphaned plugin would wait for a client that never comes back.
func exitWithEngine() {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			os.Exit(1)
		}
	}
}

// resourceKind is one resource type's behaviour. Properties travel as JSON-shaped maps;
// every kind decodes them into its own struct.
type resourceKind interface {
	// check validates new inputs; it returns failures keyed by property.
	check(news map[string]any) []*pulumirpc.CheckFailure
	// replaceKeys are the input properties whose change forces a replacement.
	replaceKeys() []string
	create(ctx context.Context, inputs map[string]any) (id string, outputs map[string]any, err error)
	read(ctx context.Context, id string, state map[string]any) (alive bool, err error)
	update(ctx context.Context, id string, olds, news map[string]any) (map[string]any, error)
	delete(ctx context.Context, id string, state map[string]any) error
}

var kinds = map[string]resourceKind{
	schema.ImageType:        imageKind{},
	schema.InstanceType:     instanceKind{},
	schema.LoadBalancerType: lbKind{},
}

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
}

func kindOf(urn string) (resourceKind, error) {
	t := resource.URN(urn).Type().String()
	k, ok := kinds[t]
	if !ok {
		return nil, fmt.Errorf("unknown resource type %q", t)
	}
	return k, nil
}

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: false, SupportsPreview: true}, nil
}

func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	news := req.GetNews().AsMap()
	var failures []*pulumirpc.CheckFailure
	if !hasUnknowns(news) {
		failures = k.check(news)
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: failures}, nil
}

func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	olds := req.GetOldInputs().AsMap()
	if len(olds) == 0 {
		olds = req.GetOlds().AsMap()
	}
	news := req.GetNews().AsMap()
	var diffs, replaces []string
	for key, nv := range news {
		if !equalJSON(olds[key], nv) {
			diffs = append(diffs, key)
		}
	}
	for key := range olds {
		if _, ok := news[key]; !ok && isInputKey(k, key, req.GetOldInputs()) {
			diffs = append(diffs, key)
		}
	}
	rk := k.replaceKeys()
	for _, d := range diffs {
		if rk == nil || contains(rk, d) {
			replaces = append(replaces, d)
		}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs, Replaces: replaces}, nil
}

// isInputKey reports whether a key missing from the new inputs was an input before (and
// not an output the provider added).
func isInputKey(_ resourceKind, key string, oldInputs *structpb.Struct) bool {
	if oldInputs == nil {
		return false
	}
	_, ok := oldInputs.GetFields()[key]
	return ok
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		return &pulumirpc.CreateResponse{Properties: req.GetProperties()}, nil
	}
	id, outs, err := k.create(ctx, req.GetProperties().AsMap())
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", resource.URN(req.GetUrn()).Name(), err)
	}
	props, err := structOf(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (s *server) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	alive, err := k.read(ctx, req.GetId(), req.GetProperties().AsMap())
	if err != nil {
		return nil, err
	}
	if !alive {
		// An empty ID tells the engine the resource is gone: a refresh drops it.
		return &pulumirpc.ReadResponse{}, nil
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		return &pulumirpc.UpdateResponse{Properties: req.GetNews()}, nil
	}
	outs, err := k.update(ctx, req.GetId(), req.GetOlds().AsMap(), req.GetNews().AsMap())
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", resource.URN(req.GetUrn()).Name(), err)
	}
	props, err := structOf(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	k, err := kindOf(req.GetUrn())
	if err != nil {
		return nil, err
	}
	if err := k.delete(ctx, req.GetId(), req.GetProperties().AsMap()); err != nil {
		return nil, fmt.Errorf("delete %s: %w", resource.URN(req.GetUrn()).Name(), err)
	}
	return &emptypb.Empty{}, nil
}

func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// decode turns a property map into a struct through JSON.
func decode(m map[string]any, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// encode turns a struct into a property map through JSON.
func encode(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func structOf(m map[string]any) (*structpb.Struct, error) {
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("marshal properties: %w", err)
	}
	return s, nil
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// hasUnknowns reports whether a value still holds the engine's placeholder for a value
// only known after another resource is created (during previews).
func hasUnknowns(v any) bool {
	switch v := v.(type) {
	case string:
		return v == plugin.UnknownStringValue
	case map[string]any:
		for _, e := range v {
			if hasUnknowns(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasUnknowns(e) {
				return true
			}
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func failure(prop, format string, args ...any) *pulumirpc.CheckFailure {
	return &pulumirpc.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)}
}

// binary returns the path of one of kiln's binaries (kiln-lb, kiln-boot), installed beside
// this plugin.
func binary(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is not installed beside %s: build kiln's binaries with `go tool task build`", name, self)
	}
	return p, nil
}

// childEnv is the environment of the processes the provider starts. It is deliberately
// small: an instance must not depend on the shell of whoever ran the deploy, and the
// deployer's credentials have no business in it.
func childEnv() []string {
	env := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
