package local

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/targets/local/lb"
	"github.com/kilnhq/kiln/targets/local/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// recorder is a Pulumi mock monitor that records every registered resource.
type recorder struct {
	mu  sync.Mutex
	got map[string]resource.PropertyMap // name -> inputs
	typ map[string]string
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[args.Name] = args.Inputs
	r.typ[args.Name] = args.TypeToken
	outs := args.Inputs.Copy()
	if args.TypeToken == schema.InstanceType {
		outs["address"] = resource.NewStringProperty("127.0.0.1:1" + args.Name[len(args.Name)-1:])
	}
	if args.TypeToken == schema.LoadBalancerType {
		outs["address"] = resource.NewStringProperty("127.0.0.1:8080")
		outs["admin"] = resource.NewStringProperty("127.0.0.1:9090")
	}
	return args.Name + "-id", outs, nil
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func testSpec() fleet.Spec {
	return fleet.Spec{
		Service:      "hello",
		Port:         8080,
		Health:       fleet.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: 500 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 3},
		DrainTimeout: 10 * time.Second,
		Slots: map[fleet.Slot]fleet.SlotSpec{
			fleet.Blue:  {Release: &fleet.Release{Version: "1.0.0", Image: fleet.Image{Digest: "sha256:aa", Location: "/images/aa"}}, Size: 2, Weight: 100},
			fleet.Green: {Release: &fleet.Release{Version: "1.1.0", Image: fleet.Image{Digest: "sha256:bb", Location: "/images/bb"}}, Size: 2, Weight: 0},
		},
	}
}

func TestLocalFleetRegistersBothSlotsBehindOneWeightedBalancer(t *testing.T) {
	rec := &recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}
	proxy := lb.Proxy{MaxHeaderBytes: 8192, RequestTimeout: lb.Duration(5 * time.Second), ExposeTarget: true}
	err := pulumi.RunErr(fleetProgram(testSpec(), programConfig{Listen: "127.0.0.1:0", LB: proxy, RunDir: "/run"}),
		pulumi.WithMocks(stacks.Project, "hello", rec))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range rec.got {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"hello-blue-0", "hello-blue-1", "hello-blue-image", "hello-green-0", "hello-green-1", "hello-green-image", "hello-lb"}
	if len(names) != len(want) {
		t.Fatalf("resources = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("resources = %v, want %v", names, want)
		}
	}
	if rec.typ["hello-green-1"] != schema.InstanceType {
		t.Errorf("hello-green-1 has type %s", rec.typ["hello-green-1"])
	}
	inst := rec.got["hello-green-1"]
	if v := inst["version"].StringValue(); v != "1.1.0" {
		t.Errorf("green instance version = %s, want 1.1.0", v)
	}
	if v := inst["imageDir"].StringValue(); v != "/images/bb" {
		t.Errorf("green instance imageDir = %s", v)
	}
	groups := rec.got["hello-lb"]["groups"].ArrayValue()
	if len(groups) != 2 {
		t.Fatalf("lb groups = %v", groups)
	}
	for _, g := range groups {
		m := g.ObjectValue()
		name, weight := m["name"].StringValue(), m["weight"].NumberValue()
		if (name == "blue" && weight != 100) || (name == "green" && weight != 0) {
			t.Errorf("group %s weight %v", name, weight)
		}
		if n := len(m["targets"].ArrayValue()); n != 2 {
			t.Errorf("group %s has %d targets, want 2", name, n)
		}
	}
	if h := rec.got["hello-lb"]["health"].ObjectValue(); h["interval"].StringValue() != "1s" || h["path"].StringValue() != "/healthz" {
		t.Errorf("lb health = %v", h)
	}
	// The provider decodes the proxy input as JSON into the same type.
	b, err := json.Marshal(rec.got["hello-lb"]["proxy"].Mappable())
	var back lb.Proxy
	if err != nil || json.Unmarshal(b, &back) != nil || back != proxy {
		t.Errorf("lb proxy input %s decodes to %+v, want %+v", b, back, proxy)
	}
}

func TestLocalFleetEmptySlotHasNoInstancesAndExportsTheSpec(t *testing.T) {
	spec := testSpec()
	spec.Slots[fleet.Green] = fleet.SlotSpec{}
	rec := &recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		if err := fleetProgram(spec, programConfig{Listen: "127.0.0.1:0", RunDir: "/run"})(ctx); err != nil {
			return err
		}
		return nil
	}, pulumi.WithMocks(stacks.Project, "hello", rec))
	if err != nil {
		t.Fatal(err)
	}
	for n := range rec.got {
		if len(n) >= 11 && n[:11] == "hello-green" {
			t.Errorf("empty green slot registered %s", n)
		}
	}
	b, _ := json.Marshal(spec)
	var back fleet.Spec
	if err := json.Unmarshal(b, &back); err != nil || back.Slots[fleet.Blue].Release.Version != "1.0.0" {
		t.Fatalf("spec does not round-trip through its exported JSON: %v", err)
	}
}

func TestLocalFleetRefusesAnInvalidSpec(t *testing.T) {
	spec := testSpec()
	spec.Slots[fleet.Green] = fleet.SlotSpec{Release: spec.Slots[fleet.Green].Release, Size: 2, Weight: 50}
	rec := &recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}
	err := pulumi.RunErr(fleetProgram(spec, programConfig{Listen: "127.0.0.1:0", RunDir: "/run"}), pulumi.WithMocks(stacks.Project, "hello", rec))
	if err == nil {
		t.Fatal("weights adding up to 150 were accepted")
	}
	if len(rec.got) != 0 {
		t.Fatalf("an invalid spec registered %d resources", len(rec.got))
	}
}

// The program reads the provider's outputs by their pulumi tags; they must be outputs the
// schema declares, or the program would read nothing.
func TestProgramStateReadsOnlyOutputsTheSchemaDeclares(t *testing.T) {
	jsonTags := func(v any) map[string]bool {
		tags := map[string]bool{}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			tags[name] = true
		}
		return tags
	}
	for _, c := range []struct {
		state   any
		outputs map[string]bool
	}{
		{instanceState{}, jsonTags(schema.InstanceOutputs{})},
		{loadBalancerState{}, jsonTags(schema.LoadBalancerOutputs{})},
	} {
		rt := reflect.TypeOf(c.state)
		for i := range rt.NumField() {
			tag := rt.Field(i).Tag.Get("pulumi")
			if tag != "" && !c.outputs[tag] {
				t.Errorf("%s.%s reads output %q, which the schema does not declare", rt.Name(), rt.Field(i).Name, tag)
			}
		}
	}
}

// ignores records, per resource, the properties its registration asked the engine to
// ignore changes of.
type ignores struct {
	recorder
	ignored map[string][]string
}

func (r *ignores) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	if args.RegisterRPC != nil {
		r.ignored[args.Name] = args.RegisterRPC.GetIgnoreChanges()
	}
	r.mu.Unlock()
	return r.recorder.NewResource(args)
}

func TestSecretsReachInstancesAsSecretsAndOnlyTheCurrentSlotTakesNewOnes(t *testing.T) {
	spec := testSpec()
	spec.Slots[fleet.Blue].Release.Secrets = "v1" // the stable slot runs with older secrets
	spec.Slots[fleet.Green].Release.Secrets = "v2"
	rec := &ignores{recorder: recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}, ignored: map[string][]string{}}
	key := stacks.SecretConfigKey("DB_PASSWORD")
	err := pulumi.RunErr(fleetProgram(spec, programConfig{Listen: "127.0.0.1:0", RunDir: "/run", Secrets: []string{"DB_PASSWORD"}, SecretsVersion: "v2"}),
		pulumi.WithMocks(stacks.Project, "hello", rec), func(ri *pulumi.RunInfo) {
			ri.Config = map[string]string{key: "canary"}
			ri.ConfigSecretKeys = []string{key}
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hello-blue-0", "hello-green-1"} {
		in := rec.got[name]
		v := in[schema.InstanceSecrets].ObjectValue()["DB_PASSWORD"]
		if !v.IsSecret() {
			t.Fatalf("%s: secret input %v is not marked secret", name, v)
		}
		if got := v.SecretValue().Element.StringValue(); got != "canary" {
			t.Errorf("%s: DB_PASSWORD = %q, want the config's value", name, got)
		}
	}
	if got := rec.got["hello-green-0"]["secretsVersion"].StringValue(); got != "v2" {
		t.Errorf("green's secretsVersion = %q, want its release's v2", got)
	}
	if got := rec.ignored["hello-blue-0"]; !reflect.DeepEqual(got, []string{schema.InstanceSecrets}) {
		t.Errorf("blue (older secrets) ignores %v, want its secrets kept as they were", got)
	}
	if got := rec.ignored["hello-green-0"]; len(got) != 0 {
		t.Errorf("green (current secrets) ignores %v, want nothing", got)
	}
}

func TestAFrozenSlotsInstancesKeepTheirEnvAndDrainTimeout(t *testing.T) {
	spec := testSpec()
	rec := &ignores{recorder: recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}, ignored: map[string][]string{}}
	cfg := programConfig{Listen: "127.0.0.1:0", RunDir: "/run", Frozen: map[fleet.Slot]bool{fleet.Blue: true}}
	if err := pulumi.RunErr(fleetProgram(spec, cfg), pulumi.WithMocks(stacks.Project, "hello", rec)); err != nil {
		t.Fatal(err)
	}
	want := []string{schema.InstanceEnv, schema.InstanceDrainTimeout}
	for _, name := range []string{"hello-blue-0", "hello-blue-1"} {
		if got := rec.ignored[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s (frozen) ignores %v, want %v", name, got, want)
		}
		if _, ok := rec.got[name][resource.PropertyKey(schema.InstanceEnv)]; !ok {
			t.Errorf("%s: no %s input: the ignored property is misnamed", name, schema.InstanceEnv)
		}
		if _, ok := rec.got[name][resource.PropertyKey(schema.InstanceDrainTimeout)]; !ok {
			t.Errorf("%s: no %s input: the ignored property is misnamed", name, schema.InstanceDrainTimeout)
		}
	}
	if got := rec.ignored["hello-green-0"]; len(got) != 0 {
		t.Errorf("green (deploying) ignores %v, want nothing", got)
	}
}

func TestMissingSecretFailsTheProgram(t *testing.T) {
	rec := &recorder{got: map[string]resource.PropertyMap{}, typ: map[string]string{}}
	err := pulumi.RunErr(fleetProgram(testSpec(), programConfig{Listen: "127.0.0.1:0", RunDir: "/run", Secrets: []string{"DB_PASSWORD"}}),
		pulumi.WithMocks(stacks.Project, "hello", rec))
	if err == nil || !strings.Contains(err.Error(), "kiln secret set DB_PASSWORD") {
		t.Fatalf("err = %v, want one saying how to set the secret", err)
	}
}
