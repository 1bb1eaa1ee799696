//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/testpeers"
	"github.com/kilnhq/kiln/targets/aws/awsmodel"
)

// The aws target end to end, against a MODEL of AWS: the real kiln, the real Pulumi engine
// and kiln's real aws programs (pulumi-aws), with a test double of the pulumi-aws provider
// plugin and a model of the AWS APIs kiln reads (package awsmodel). Nothing here talks to
// AWS; `go tool task test:aws-live` is the test that does.

const awsManifest = `apiVersion: kiln/v1
service: shop
version: %[1]s
app:
  binary: %[2]s
  env: {RELEASE: "%[1]s"}
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 5s, timeout: 2s, healthyThreshold: 2, unhealthyThreshold: 2}
rollout:
  progressDeadline: 60s
  drainTimeout: 1s
  scaleDownDelay: 0s
%[3]s
images:
  keep: 20
target:
  aws:
    region: eu-west-1
    subnets: [subnet-0a1b2c3d4e5f60718, subnet-0b2c3d4e5f6071829]
    tags: {team: e2e}
`

// awsModel builds the provider double, serves the API model and points kiln (and the
// engine it starts) at both for the rest of the test. It returns the model's directory.
func awsModel(t *testing.T, latency string) string {
	t.Helper()
	plugins := t.TempDir()
	build := exec.Command("go", "build", "-o", plugins+"/", "./targets/aws/awsmodel/cmd/pulumi-resource-aws")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the provider double: %v\n%s", err, out)
	}
	model := t.TempDir()
	api := awsmodel.StartAPI(t, model, awsmodel.APIOptions{HealthyAfter: 2 * time.Second})
	t.Setenv("PATH", plugins+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("PULUMI_HOME", t.TempDir()) // no real plugin: the double on PATH is the one found
	t.Setenv(awsmodel.DirEnv, model)
	t.Setenv(awsmodel.LatencyEnv, latency)
	t.Setenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", api)
	t.Setenv("AWS_ENDPOINT_URL_AUTO_SCALING", api)
	t.Setenv("AWS_ENDPOINT_URL_EC2", api)
	t.Setenv("AWS_ACCESS_KEY_ID", "model")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "model")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return model
}

func writeAWS(t *testing.T, dir, version, rollout string) {
	t.Helper()
	body := fmt.Sprintf(awsManifest, version, demoBin, rollout)
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// modelResources lists the model's live resources as "type name" (the Pulumi name, from
// the URN), sorted.
func modelResources(t *testing.T, model string, types ...string) []string {
	t.Helper()
	store := &awsmodel.Store{Dir: model}
	recs, err := store.List(types...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, shortType(r.Type)+" "+r.URN[strings.LastIndex(r.URN, "::")+2:])
	}
	sort.Strings(out)
	return out
}

func shortType(typ string) string { return typ[strings.LastIndex(typ, ":")+1:] }

// resourceOps lists a rollout's resource operations of phase ("" for all) as
// "op Type name", in order.
func resourceOps(t *testing.T, out, phase string) []string {
	t.Helper()
	var ops []string
	current := ""
	for _, ev := range events(t, out) {
		switch ev["event"] {
		case "phase-started":
			current, _ = ev["phase"].(string)
		case "resource":
			if ev["status"] == "done" && (phase == "" || phase == current) {
				ops = append(ops, fmt.Sprintf("%s %s %s", ev["op"], shortType(ev["type"].(string)), ev["name"]))
			}
		}
	}
	return ops
}

const awsSteps = `  steps:
    - {weight: 50, pause: 1s}
    - {weight: 100}`

const (
	groupType    = "aws:autoscaling/group:Group"
	templateType = "aws:ec2/launchTemplate:LaunchTemplate"
	listenerType = "aws:lb/listener:Listener"
)

func TestAWSRolloutsThroughTheRealEngineAgainstAModelOfAWS(t *testing.T) {
	model := awsModel(t, "aws:imagebuilder/image:Image=1s,aws:autoscaling/group:Group=2s")
	dir := t.TempDir()
	writeAWS(t, dir, "1.0.0", awsSteps)
	if code, out, errOut := kiln(t, dir, "validate"); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}

	// The preview bakes nothing on AWS and creates nothing.
	code, out, errOut := kiln(t, dir, "rollout", "--preview")
	if code != 0 {
		t.Fatalf("preview: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"bake", "Image", "Group", "LaunchTemplate", "Listener"} {
		if !strings.Contains(out, want) {
			t.Errorf("the preview does not mention %s:\n%s", want, out)
		}
	}
	if left := modelResources(t, model); len(left) > 0 {
		t.Fatalf("the preview created %v", left)
	}

	t.Cleanup(func() {
		if code, out, errOut := kiln(t, dir, "destroy", "--output", "json"); code != 0 {
			t.Errorf("destroy: exit %d\n%s%s", code, out, errOut)
		}
		for _, typ := range []string{groupType, templateType, listenerType} {
			if left := modelResources(t, model, typ); len(left) > 0 {
				t.Errorf("destroy left %v", left)
			}
		}
	})
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	if code != 0 {
		t.Fatalf("first rollout: exit %d\n%s%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" {
		t.Fatalf("first rollout: %v", fin)
	}
	if got := modelResources(t, model, groupType); !slices.Equal(got, []string{"Group shop-blue"}) {
		t.Fatalf("groups after the first release: %v", got)
	}
	firstAMI := slotAMI(t, model, "blue")

	// A release with a traffic step: deploy creates only the idle slot, the step changes
	// only the listener, retire removes only the old slot. The release changes the env
	// too, which the live slot's launch template holds: it is not replaced for that.
	writeAWS(t, dir, "2.0.0", awsSteps)
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	if code != 0 {
		t.Fatalf("second rollout: exit %d\n%s%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" {
		t.Fatalf("second rollout: %v", fin)
	}
	for phase, only := range map[string][]string{
		"deploy": {"LaunchTemplate shop-green", "Group shop-green"},
		"step":   {"Listener"},
		"retire": {"LaunchTemplate shop-blue", "Group shop-blue"},
	} {
		ops := resourceOps(t, out, phase)
		if len(ops) == 0 {
			t.Errorf("phase %s changed nothing", phase)
		}
		for _, op := range ops {
			if !slices.ContainsFunc(only, func(s string) bool { return strings.Contains(op, s) }) {
				t.Errorf("phase %s: %q is not one of the resources it may change (%v); all: %v", phase, op, only, ops)
			}
		}
	}
	if got := modelResources(t, model, groupType); !slices.Equal(got, []string{"Group shop-green"}) {
		t.Fatalf("groups after the second release: %v", got)
	}
	if ami := slotAMI(t, model, "green"); ami == "" || ami == firstAMI {
		t.Fatalf("green boots AMI %q, want the second release's own (the first was %s)", ami, firstAMI)
	}

	// Status shows the instances as the target groups see them.
	code, out, _ = kiln(t, dir, "status", "--output", "json")
	if code != 0 || !strings.Contains(out, `"healthy"`) || !strings.Contains(out, "green") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}

	// kill -9 in each phase, then --resume: the stacks converge, nothing is duplicated.
	// In deploy, kiln, its engine and the provider die at once (a runner's VM lost) while
	// AWS creates the new auto scaling group (the model takes 2s): the group exists, the
	// stack never recorded it, and AWS refuses a second group of its name.
	groupCreating := func(ev map[string]any) bool {
		return ev["event"] == "resource" && ev["type"] == groupType && ev["op"] == "create" && ev["status"] == "started"
	}
	for i, phase := range []string{"bake", "deploy", "step", "retire"} {
		version := fmt.Sprintf("3.%d.0", i)
		t.Run("kill in "+phase, func(t *testing.T) {
			writeAWS(t, dir, version, awsSteps)
			cmd, evs := startRollout(t, dir)
			if phase == "deploy" {
				waitEvent(t, evs, groupCreating)
				time.Sleep(500 * time.Millisecond)
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			} else {
				waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == phase })
				time.Sleep(300 * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
			}
			cmd.Wait()
			code, out, errOut := kiln(t, dir, "rollout", "--output", "json", "--resume")
			if code != 0 {
				t.Fatalf("resume after kill -9 in %s: exit %d\n%s%s", phase, code, out, errOut)
			}
			if fin := finished(t, out); fin["outcome"] != "promoted" && fin["outcome"] != "unchanged" {
				t.Fatalf("resume: %v", fin)
			}
			groups := modelResources(t, model, groupType)
			if len(groups) != 1 {
				t.Fatalf("groups after the resume: %v, want exactly one", groups)
			}
			if templates := modelResources(t, model, templateType); len(templates) != 1 {
				t.Fatalf("launch templates after the resume: %v, want exactly one", templates)
			}
			if listeners := modelResources(t, model, listenerType); len(listeners) != 1 {
				t.Fatalf("listeners after the resume: %v", listeners)
			}
		})
	}
}

// slotAMI is the AMI the slot's launch template boots, "" when the slot has none.
func slotAMI(t *testing.T, model, slot string) string {
	t.Helper()
	recs, err := (&awsmodel.Store{Dir: model}).List(templateType)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.HasSuffix(r.URN, "::shop-"+slot) {
			s, _ := r.Input("imageId").(string)
			return s
		}
	}
	return ""
}

// events parses kiln's JSON output, one event per line.
func events(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a line of JSON output is not JSON: %q: %v", line, err)
		}
		evs = append(evs, m)
	}
	return evs
}

// An engine killed while it creates a secret's SSM parameter leaves the parameter in AWS
// and a pending create in the stack; AWS refuses a second parameter of that name unless
// the create overwrites, which the resume's does.
func TestAWSResumeTakesOverASecretParameterAKilledEngineLeft(t *testing.T) {
	const paramType = "aws:ssm/parameter:Parameter"
	model := awsModel(t, paramType+"=2s")
	dir := t.TempDir()
	writeAWS(t, dir, "1.0.0", "")
	t.Cleanup(func() {
		if code, out, errOut := kiln(t, dir, "destroy", "--output", "json"); code != 0 {
			t.Errorf("destroy: exit %d\n%s%s", code, out, errOut)
		}
		if left := modelResources(t, model, paramType, groupType); len(left) > 0 {
			t.Errorf("destroy left %v", left)
		}
	})
	if code, out, errOut := kiln(t, dir, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("first rollout: exit %d\n%s%s", code, out, errOut)
	}

	// 1.1.0 reads a secret: its deploy creates the secret's parameter (2s in the model).
	writeAWS(t, dir, "1.1.0", "")
	editManifest(t, dir, `env: {RELEASE: "1.1.0"}`, `env: {RELEASE: "1.1.0", DB_URL: "postgres://app:${secret:DB_PASSWORD}@db/app"}`)
	body, err := os.ReadFile(filepath.Join(dir, "kiln.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), append(body, "secrets: [DB_PASSWORD]\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := kilnIn(t, dir, "hunter2-e2e\n", "secret", "set", "DB_PASSWORD"); code != 0 {
		t.Fatalf("secret set: exit %d\n%s%s", code, out, errOut)
	}
	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool {
		return ev["event"] == "resource" && ev["type"] == paramType && ev["op"] == "create" && ev["status"] == "started"
	})
	time.Sleep(500 * time.Millisecond)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // kiln, its engine and the provider
	cmd.Wait()
	if params := modelResources(t, model, paramType); len(params) != 1 {
		t.Fatalf("parameters in the model after the kill: %v, want the one being created", params)
	}

	code, out, errOut := kiln(t, dir, "rollout", "--output", "json", "--resume")
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" {
		t.Fatalf("resume: %v", fin)
	}
	if params := modelResources(t, model, paramType); len(params) != 1 {
		t.Fatalf("parameters after the resume: %v, want exactly one", params)
	}
	if groups := modelResources(t, model, groupType); len(groups) != 1 {
		t.Fatalf("groups after the resume: %v, want exactly one", groups)
	}
	// The value reached the parameter, and nothing kiln printed holds it.
	recs, err := (&awsmodel.Store{Dir: model}).List(paramType)
	if err != nil || len(recs) != 1 || recs[0].Input("value") != "hunter2-e2e" || recs[0].Input("name") != "/kiln/shop/DB_PASSWORD" {
		t.Fatalf("the parameter: %+v (%v)", recs, err)
	}
	if strings.Contains(out+errOut, "hunter2-e2e") {
		t.Error("the resume's output holds the secret's value")
	}
}

// kiln state migrate moves every stack the aws target keeps, the images stack too: the
// shared backend bakes the next release beside the AMIs baked before, with the same
// artifacts bucket and Image Builder infrastructure, drives the same fleet, and another
// machine can roll back to an AMI it never baked.
func TestAWSStateMigrateMovesTheImagesStackAndAnotherMachineRollsBack(t *testing.T) {
	model := awsModel(t, "")
	t.Setenv("KILN_PASSPHRASE", "a passphrase the team shares")
	shared := "s3://team-state/aws?region=us-east-1&endpoint=" + testpeers.S3(t)
	dir := t.TempDir()
	writeAWS(t, dir, "1.0.0", "")
	t.Cleanup(func() {
		if code, _, _ := kiln(t, dir, "destroy", "--backend", shared); code != 0 {
			kiln(t, dir, "destroy")
		}
	})
	if code, out, errOut := kiln(t, dir, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("rollout 1.0.0: exit %d\n%s%s", code, out, errOut)
	}
	lbs := modelResources(t, model, awsmodel.TypeLoadBalancer)
	firstAMI := slotAMI(t, model, "blue")

	code, out, errOut := kiln(t, dir, "state", "migrate", "--to", shared, "--output", "json")
	if code != 0 || !strings.Contains(out, `"stacks":["shop","shop-images"]`) {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	writeAWS(t, dir, "1.1.0", "")
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json", "--backend", shared)
	if code != 0 {
		t.Fatalf("rollout 1.1.0 on the shared backend: exit %d\n%s%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" {
		t.Fatalf("rollout 1.1.0: %v", fin)
	}
	for _, typ := range []string{awsmodel.TypeBucket, awsmodel.TypeInfraConfig} {
		if got := modelResources(t, model, typ); len(got) != 1 {
			t.Errorf("%s after the move and a bake: %v, want the one baked with before", shortType(typ), got)
		}
	}
	if got := modelResources(t, model, awsmodel.TypeImage); len(got) != 2 {
		t.Errorf("images after the move and a bake: %v, want both releases'", got)
	}
	if got := modelResources(t, model, awsmodel.TypeLoadBalancer); !slices.Equal(got, lbs) {
		t.Errorf("load balancers: %v, then %v: the shared stack drives the same fleet", lbs, got)
	}

	// Another machine (a CI runner: a state directory of its own, no image ever baked
	// there) rolls back to 1.0.0: to the AMI the images stack keeps, with no new bake.
	runner := t.TempDir()
	code, out, errOut = kiln(t, dir, "rollback", "--output", "json", "--backend", shared, "--state-dir", runner)
	if code != 0 {
		t.Fatalf("rollback from another machine: exit %d\n%s%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" || fin["to"].(map[string]any)["version"] != "1.0.0" {
		t.Fatalf("rollback: %v", fin)
	}
	if got := modelResources(t, model, awsmodel.TypeImage); len(got) != 2 {
		t.Errorf("images after the rollback: %v, want the two baked before and no other", got)
	}
	if ami := slotAMI(t, model, "blue"); firstAMI == "" || ami != firstAMI {
		t.Errorf("blue boots %q after the rollback, want 1.0.0's %q", ami, firstAMI)
	}
	if entries, _ := os.ReadDir(filepath.Join(runner, "images")); len(entries) != 0 {
		t.Errorf("the rollback baked on the runner: %v", entries)
	}
}
