package awsmodel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func urnOf(typ, name string) string { return "urn:pulumi:shop::kiln::" + typ + "::" + name }

func newTestProvider(t *testing.T, b Behaviour) (*Provider, *Store) {
	t.Helper()
	store, err := OpenStore(filepath.Join(t.TempDir(), "cloud"))
	if err != nil {
		t.Fatal(err)
	}
	return NewProvider(store, b), store
}

// create runs Check then Create as the engine does and returns the ID and outputs.
func create(t *testing.T, p *Provider, typ, name string, in map[string]any) (string, map[string]any) {
	t.Helper()
	ctx := context.Background()
	chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urnOf(typ, name), News: mustStruct(t, in)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urnOf(typ, name), Properties: chk.GetInputs()})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetId(), resp.GetProperties().AsMap()
}

func TestDiffReplacesOnlyWhatAWSForcesNew(t *testing.T) {
	p, _ := newTestProvider(t, Behaviour{})
	for _, tc := range []struct {
		typ      string
		old, new map[string]any
		replaces []string
	}{
		{TypeComponent, map[string]any{"name": "c", "version": "1.0.0", "data": "a"}, map[string]any{"name": "c", "version": "1.0.0", "data": "b"}, []string{"data"}},
		{TypeComponent, map[string]any{"name": "c", "tags": map[string]any{"a": "1"}}, map[string]any{"name": "c", "tags": map[string]any{"a": "2"}}, nil},
		{TypeImageRecipe, map[string]any{"parentImage": "ami-1"}, map[string]any{"parentImage": "ami-2"}, []string{"parentImage"}},
		{TypeLaunchTemplate, map[string]any{"name": "a", "imageId": "ami-1"}, map[string]any{"name": "a", "imageId": "ami-2"}, nil},
		{TypeLaunchTemplate, map[string]any{"name": "a"}, map[string]any{"name": "b"}, []string{"name"}},
		{TypeTargetGroup, map[string]any{"port": 80.0, "healthCheck": map[string]any{"path": "/"}}, map[string]any{"port": 80.0, "healthCheck": map[string]any{"path": "/healthz"}}, nil},
		{TypeTargetGroup, map[string]any{"port": 80.0, "vpcId": "vpc-1"}, map[string]any{"port": 8080.0, "vpcId": "vpc-2"}, []string{"port", "vpcId"}},
		{TypeGroup, map[string]any{"name": "shop-blue", "desiredCapacity": 2.0}, map[string]any{"name": "shop-blue", "desiredCapacity": 3.0}, nil},
		{TypeGroup, map[string]any{"name": "shop-blue"}, map[string]any{"name": "shop-green"}, []string{"name"}},
		{TypeListener, map[string]any{"defaultActions": []any{map[string]any{"weight": 10.0}}}, map[string]any{"defaultActions": []any{map[string]any{"weight": 90.0}}}, nil},
		// A value unknown until another resource is replaced is a change too.
		{TypeImage, map[string]any{"imageRecipeArn": "arn:a"}, map[string]any{"imageRecipeArn": plugin.UnknownStringValue}, []string{"imageRecipeArn"}},
		{"aws:cloudwatch/metricAlarm:MetricAlarm", map[string]any{"name": "a", "threshold": 1.0}, map[string]any{"name": "a", "threshold": 2.0}, nil},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			resp, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: urnOf(tc.typ, "r"), Id: "id",
				OldInputs: mustStruct(t, tc.old), News: mustStruct(t, tc.new)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME {
				t.Fatalf("changes = %v, want some", resp.Changes)
			}
			if !slices.Equal(resp.Replaces, tc.replaces) {
				t.Fatalf("replaces = %v, want %v", resp.Replaces, tc.replaces)
			}
		})
	}
	resp, _ := p.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: urnOf(TypeGroup, "g"), OldInputs: mustStruct(t, map[string]any{"name": "a"}), News: mustStruct(t, map[string]any{"name": "a"})})
	if resp.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("no change diffed as %v", resp)
	}
}

func TestCheckNamesAResourceOnceAndKeepsItsName(t *testing.T) {
	p, _ := newTestProvider(t, Behaviour{})
	ctx := context.Background()
	urn := urnOf(TypeTargetGroup, "shop-blue-target-group-with-a-long-name")
	first, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: mustStruct(t, map[string]any{"port": 80.0})})
	if err != nil {
		t.Fatal(err)
	}
	name := str(first.GetInputs().AsMap()["name"])
	if len(name) != 32 || !strings.HasPrefix(name, "shop-blue-target-group-") {
		t.Fatalf("autoname %q: want the URN's name cut to AWS's 32 characters with a random suffix", name)
	}
	again, _ := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, Olds: first.GetInputs(), News: mustStruct(t, map[string]any{"port": 80.0})})
	if got := str(again.GetInputs().AsMap()["name"]); got != name {
		t.Fatalf("second check named it %q, want the old name %q kept", got, name)
	}
	bucket, _ := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urnOf(TypeBucket, "Artifacts"), News: mustStruct(t, map[string]any{})})
	if b := str(bucket.GetInputs().AsMap()["bucket"]); !strings.HasPrefix(b, "artifacts-") {
		t.Fatalf("bucket autoname %q, want lower case", b)
	}
}

func TestLifecycleKeepsOneOwnerOnlyRecordPerResource(t *testing.T) {
	p, store := newTestProvider(t, Behaviour{})
	ctx := context.Background()
	id, outs := create(t, p, TypeLaunchTemplate, "shop-blue", map[string]any{"imageId": "ami-1"})
	if !strings.HasPrefix(id, "lt-") || outs["latestVersion"] != 1.0 {
		t.Fatalf("created %s with %v", id, outs)
	}
	recs, err := store.List()
	if err != nil || len(recs) != 1 || recs[0].State != StateAvailable {
		t.Fatalf("records %+v, %v", recs, err)
	}
	ents, _ := os.ReadDir(store.Dir)
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(store.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("model dir mode %v, want 0700", fi.Mode().Perm())
	}
	news := recs[0].Inputs
	news["imageId"] = "ami-2"
	up, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: recs[0].URN, Id: id, Olds: mustStruct(t, outs),
		OldInputs: mustStruct(t, recs[0].Inputs), News: mustStruct(t, news)})
	if err != nil {
		t.Fatal(err)
	}
	if v := up.GetProperties().AsMap()["latestVersion"]; v != 2.0 {
		t.Fatalf("latestVersion after an update = %v, want 2", v)
	}
	rec, ok, _ := store.Get(TypeLaunchTemplate, id)
	if !ok || rec.Input("imageId") != "ami-2" || rec.Output("latestVersion") != 2.0 {
		t.Fatalf("record after update: %+v", rec)
	}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: recs[0].URN, Id: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: recs[0].URN, Id: id}); err != nil {
		t.Fatalf("deleting what is gone: %v", err)
	}
	if recs, _ := store.List(); len(recs) != 0 {
		t.Fatalf("records left after delete: %+v", recs)
	}
}

func TestASecretInputIsASecretOutput(t *testing.T) {
	p, store := newTestProvider(t, Behaviour{})
	secret := map[string]any{resource.SigKey: resource.SecretSig, "value": "hunter2"}
	_, outs := create(t, p, TypeParameter, "db-password", map[string]any{"name": "/kiln/shop/DB_PASSWORD", "type": "SecureString", "value": secret})
	if !IsSecret(outs["value"]) || Plain(outs["value"]) != "hunter2" {
		t.Fatalf("value output = %v, want the secret", outs["value"])
	}
	if outs["version"] != 1.0 {
		t.Fatalf("version = %v", outs["version"])
	}
	recs, _ := store.List(TypeParameter)
	if len(recs) != 1 || recs[0].Input("value") != "hunter2" || !IsSecret(recs[0].Inputs["value"]) {
		t.Fatalf("record %+v", recs)
	}
}

func TestFailEnvFailsTheNthCreateOfAType(t *testing.T) {
	t.Setenv(FailEnv, TypeGroup+"=2")
	t.Setenv(LatencyEnv, TypeImage+"=2s, "+TypeGroup+"=500ms")
	b, err := BehaviourFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if b.Latency[TypeImage] != 2*time.Second || b.Latency[TypeGroup] != 500*time.Millisecond {
		t.Fatalf("latency %v", b.Latency)
	}
	b.Latency = nil
	p, store := newTestProvider(t, b)
	create(t, p, TypeGroup, "a", map[string]any{})
	chk, _ := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urnOf(TypeGroup, "b"), News: mustStruct(t, map[string]any{})})
	_, err = p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urnOf(TypeGroup, "b"), Properties: chk.GetInputs()})
	if !errors.Is(err, ErrInjected) {
		t.Fatalf("second create: %v, want the injected failure", err)
	}
	create(t, p, TypeGroup, "c", map[string]any{})
	if recs, _ := store.List(); len(recs) != 2 {
		t.Fatalf("%d records, want 2 (the failed create made none)", len(recs))
	}
	for _, bad := range []string{"Group", TypeGroup + "=soon"} {
		t.Setenv(LatencyEnv, bad)
		if _, err := BehaviourFromEnv(); err == nil || !strings.Contains(err.Error(), LatencyEnv) {
			t.Errorf("%s=%q: err %v", LatencyEnv, bad, err)
		}
	}
}

func TestANamedResourceCannotExistTwiceAsInAWS(t *testing.T) {
	p, _ := newTestProvider(t, Behaviour{})
	create(t, p, TypeGroup, "blue", map[string]any{"name": "shop-blue"})
	_, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urnOf(TypeGroup, "blue2"), Properties: mustStruct(t, map[string]any{"name": "shop-blue"})})
	if err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("err = %v, want AlreadyExists", err)
	}
}

func TestAnSSMParameterCreatedWithOverwriteTakesTheExistingOneOver(t *testing.T) {
	p, store := newTestProvider(t, Behaviour{})
	create(t, p, TypeParameter, "orphan", map[string]any{"name": "/kiln/shop/DB", "type": "SecureString", "value": "old"})
	in := map[string]any{"name": "/kiln/shop/DB", "type": "SecureString", "value": "new"}
	_, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urnOf(TypeParameter, "db"), Properties: mustStruct(t, in)})
	if err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("without overwrite: err = %v, want AlreadyExists", err)
	}
	in["overwrite"] = true
	id, _ := create(t, p, TypeParameter, "db", in)
	recs, err := store.List(TypeParameter)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != id || recs[0].URN != string(urnOf(TypeParameter, "db")) || recs[0].Input("value") != "new" {
		t.Fatalf("parameters after the overwrite: %+v, want only the new one", recs)
	}
}

func TestATypeTheModelDoesNotKnowIsStoredWithItsInputs(t *testing.T) {
	p, store := newTestProvider(t, Behaviour{})
	typ := "aws:cloudwatch/metricAlarm:MetricAlarm"
	id, outs := create(t, p, typ, "errors", map[string]any{"threshold": 5.0})
	if !strings.HasPrefix(id, "metricalarm-") || outs["threshold"] != 5.0 || !strings.HasPrefix(str(outs["arn"]), "arn:aws:cloudwatch:us-east-1:"+ModelAccount+":") {
		t.Fatalf("id %s outputs %v", id, outs)
	}
	if rec, ok, _ := store.Get(typ, id); !ok || rec.Input("threshold") != 5.0 {
		t.Fatalf("record %+v", rec)
	}
}

func TestPreviewComputesNothingAndWritesNothing(t *testing.T) {
	p, store := newTestProvider(t, Behaviour{})
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urnOf(TypeImage, "shop"), Preview: true,
		Properties: mustStruct(t, map[string]any{"imageRecipeArn": "arn:aws:imagebuilder:us-east-1:1:image-recipe/shop/1.0.0"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetProperties().AsMap()["outputResources"]; got != plugin.UnknownStringValue {
		t.Fatalf("outputResources in a preview = %v, want unknown", got)
	}
	if recs, _ := store.List(); len(recs) != 0 {
		t.Fatalf("a preview wrote %+v", recs)
	}
}

func TestImageOutputsAnAMI(t *testing.T) {
	p, _ := newTestProvider(t, Behaviour{})
	_, outs := create(t, p, TypeImage, "shop", map[string]any{"imageRecipeArn": "arn:aws:imagebuilder:us-east-1:1:image-recipe/shop/1.2.0"})
	res := outs["outputResources"].([]any)[0].(map[string]any)
	ami := str(res["amis"].([]any)[0].(map[string]any)["image"])
	if !strings.HasPrefix(ami, "ami-") || len(ami) != 21 {
		t.Fatalf("ami %q", ami)
	}
	if !strings.Contains(str(outs["arn"]), ":image/shop/1.2.0/") {
		t.Fatalf("image arn %v", outs["arn"])
	}
}
