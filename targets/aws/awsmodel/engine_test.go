//go:build e2e

package awsmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/stacks"
	"github.com/kilnhq/kiln/stacks/pulumicli"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

var (
	pluginDir  string // holds the double, pulumi-resource-aws, and nothing else
	pulumiRoot string // the pinned Pulumi CLI
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// run builds the double into a directory of its own, which every stack of the tests puts
// first on the engine's PATH, and finds the pinned Pulumi CLI.
func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "awsmodel-plugin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	build := exec.Command("go", "build", "-o", filepath.Join(dir, pulumicli.AWSPlugin.Binary()), PluginPackage)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the provider double:", err)
		return 1
	}
	if pulumiRoot, err = pulumicli.Ensure(context.Background(), pulumicli.Options{Progress: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "pulumi cli:", err)
		return 1
	}
	return m.Run()
}

// world is one kiln state directory and one model cloud.
type world struct {
	state, cloud string
	store        *Store
}

func newWorld(t testing.TB) *world {
	dir := t.TempDir()
	w := &world{state: filepath.Join(dir, "state"), cloud: filepath.Join(dir, "cloud")}
	w.store = &Store{Dir: w.cloud}
	return w
}

// open opens a stack whose engine runs the double over the world's cloud.
func (w *world) open(t testing.TB, name string, b Behaviour) *stacks.Stack {
	t.Helper()
	env := map[string]string{DirEnv: w.cloud}
	for _, kv := range b.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	s, err := stacks.Open(context.Background(), stacks.Options{StateDir: w.state, Stack: name,
		PulumiRoot: pulumiRoot, PluginDir: pluginDir, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// opLog collects the engine's finished operations as "op type name".
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(op fleet.ResourceOp) {
	if op.Status != fleet.OpDone {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op.Op+" "+op.Type+" "+op.Name)
}

func (l *opLog) sorted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(slices.Values(l.ops))
}

func up(t testing.TB, s *stacks.Stack, program pulumi.RunFunc) (auto.OutputMap, []string) {
	t.Helper()
	var log opLog
	outs, err := s.Up(context.Background(), program, log.add)
	if err != nil {
		t.Fatal(err)
	}
	return outs, log.sorted()
}

// wantOps fails unless the engine did exactly want.
func wantOps(t *testing.T, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("operations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// stateResources are the resources the stack's checkpoint in the file backend holds,
// by "type id" (the engine's own resources left out).
func (w *world) stateResources(t *testing.T, stack string) map[string]int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(w.state, "pulumi", ".pulumi", "stacks", stacks.Project, stack+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var cp struct {
		Checkpoint struct {
			Latest struct {
				Resources []struct {
					Type string `json:"type"`
					ID   string `json:"id"`
				} `json:"resources"`
			} `json:"latest"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range cp.Checkpoint.Latest.Resources {
		if !strings.HasPrefix(r.Type, "pulumi:") {
			out[r.Type+" "+r.ID]++
		}
	}
	return out
}

// converged fails unless the cloud holds exactly the resources of the stacks, once each,
// every one finished.
func (w *world) converged(t *testing.T, stackNames ...string) {
	t.Helper()
	inState := map[string]int{}
	for _, s := range stackNames {
		for k, n := range w.stateResources(t, s) {
			inState[k] += n
		}
	}
	recs, err := w.store.List()
	if err != nil {
		t.Fatal(err)
	}
	inCloud := map[string]int{}
	for _, r := range recs {
		inCloud[r.Type+" "+r.ID]++
		if r.State != StateAvailable && time.Now().Before(r.Ready) {
			t.Errorf("%s %s is still %s", r.Type, r.ID, r.State)
		}
	}
	for k, n := range inCloud {
		if inState[k] != 1 || n != 1 {
			t.Errorf("%s: %d in the cloud, %d in the stacks' state", k, n, inState[k])
		}
	}
	for k := range inState {
		if inCloud[k] == 0 {
			t.Errorf("%s: in the stacks' state, not in the cloud", k)
		}
	}
}

func (w *world) one(t *testing.T, typ, urnName string) Record {
	t.Helper()
	recs, err := w.store.List(typ)
	if err != nil {
		t.Fatal(err)
	}
	var found []Record
	for _, r := range recs {
		if strings.HasSuffix(r.URN, "::"+urnName) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s named %s in the cloud, want 1", len(found), typ, urnName)
	}
	return found[0]
}

func payload(t *testing.T, name string) string {
	p := filepath.Join(t.TempDir(), name+".tar")
	if err := os.WriteFile(p, []byte("payload of "+name), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func amiOf(t *testing.T, outs auto.OutputMap, digest string) string {
	t.Helper()
	amis, _ := outs["amis"].Value.(map[string]any)
	ami, _ := amis[digest].(string)
	if !strings.HasPrefix(ami, "ami-") {
		t.Fatalf("amis output %v: no AMI for %s", outs["amis"].Value, digest)
	}
	return ami
}

func TestTheEngineDrivesTheModelThroughARollout(t *testing.T) {
	w := newWorld(t)
	images := w.open(t, "shop-images", Behaviour{Latency: map[string]time.Duration{TypeImage: 500 * time.Millisecond}})
	fleetStack := w.open(t, "shop", Behaviour{})
	baked := []bakeImage{{"d1", "1.0.0", payload(t, "d1")}}
	var amis auto.OutputMap

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	step("images up creates all", func(t *testing.T) {
		var ops []string
		amis, ops = up(t, images, imagesProgram(baked))
		if len(ops) != 10 || slices.ContainsFunc(ops, func(op string) bool { return !strings.HasPrefix(op, "create ") }) {
			t.Fatalf("ops %v, want 10 creates", ops)
		}
		img := w.one(t, TypeImage, "shop-d1")
		if got := amiOf(t, amis, "d1"); !strings.Contains(string(mustJSON(img.Outputs)), got) {
			t.Fatalf("stack's AMI %s is not the cloud's image %v", got, img.Outputs["outputResources"])
		}
		if !strings.Contains(str(img.Output("arn")), ":eu-west-1:") {
			t.Fatalf("image arn %v: the explicit provider's region was not configured", img.Output("arn"))
		}
		w.converged(t, "shop-images")
	})
	ami1 := amiOf(t, amis, "d1")

	var outs auto.OutputMap
	step("fleet up creates all", func(t *testing.T) {
		var ops []string
		outs, ops = up(t, fleetStack, fleetProgram(map[string]fleetSlot{"blue": {ami1, 2, 100}, "green": {"", 0, 0}}))
		if len(ops) != 13 || slices.ContainsFunc(ops, func(op string) bool { return !strings.HasPrefix(op, "create ") }) {
			t.Fatalf("ops %v, want 13 creates", ops)
		}
		if g := outs["groups"].Value.(map[string]any); len(g) != 1 || g["blue"] != "shop-blue" {
			t.Fatalf("groups output %v", g)
		}
		param := w.one(t, TypeParameter, "shop-DB_PASSWORD")
		if !IsSecret(param.Inputs["value"]) || !IsSecret(param.Outputs["value"]) || param.Input("value") != "hunter2" {
			t.Fatalf("the parameter's value is not kept secret: %v", param.Outputs["value"])
		}
		cp, _ := os.ReadFile(filepath.Join(w.state, "pulumi", ".pulumi", "stacks", stacks.Project, "shop.json"))
		if strings.Contains(string(cp), "hunter2") {
			t.Fatal("the secret is in the stack's state in plain text: the engine did not see a secret output")
		}
		w.converged(t, "shop-images", "shop")
	})

	step("the API model reports the group's instances in its target group", func(t *testing.T) {
		url := StartAPI(t, w.cloud, APIOptions{})
		elb, _ := sdkClients(url)
		tg := outs["targetGroups"].Value.(map[string]any)["blue"].(string)
		th, err := elb.DescribeTargetHealth(context.Background(), &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
		if err != nil {
			t.Fatal(err)
		}
		if len(th.TargetHealthDescriptions) != 2 || th.TargetHealthDescriptions[0].TargetHealth.State != "healthy" {
			t.Fatalf("targets of blue: %+v", th.TargetHealthDescriptions)
		}
	})

	baked = append(baked, bakeImage{"d2", "1.1.0", payload(t, "d2")})
	step("a new release creates only the idle slot", func(t *testing.T) {
		var ops []string
		amis, ops = up(t, images, imagesProgram(baked))
		wantOps(t, ops, "create "+TypeBucketObject+" shop-d2", "create "+TypeComponent+" shop-d2",
			"create "+TypeImageRecipe+" shop-d2", "create "+TypeImage+" shop-d2")
		_, ops = up(t, fleetStack, fleetProgram(map[string]fleetSlot{"blue": {ami1, 2, 100}, "green": {amiOf(t, amis, "d2"), 2, 0}}))
		wantOps(t, ops, "create "+TypeLaunchTemplate+" shop-green", "create "+TypeGroup+" shop-green")
	})
	ami2 := amiOf(t, amis, "d2")

	shifted := fleetProgram(map[string]fleetSlot{"blue": {ami1, 2, 0}, "green": {ami2, 2, 100}})
	step("a traffic step updates only the listener", func(t *testing.T) {
		plan, err := fleetStack.Preview(context.Background(), shifted, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan[apitype.OpUpdate] != 1 || plan[apitype.OpCreate]+plan[apitype.OpDelete]+plan[apitype.OpReplace] != 0 {
			t.Fatalf("preview %v, want one update", plan)
		}
		_, ops := up(t, fleetStack, shifted)
		wantOps(t, ops, "update "+TypeListener+" shop")
		l := w.one(t, TypeListener, "shop")
		if s := string(mustJSON(l.Inputs["defaultActions"])); !strings.Contains(s, `"weight":100`) || !strings.Contains(s, `"weight":0`) {
			t.Fatalf("listener's actions %s", s)
		}
	})

	baked = append(baked, bakeImage{"d3", "1.2.0", payload(t, "d3")})
	step("a new AMI in the idle slot updates only its template and group", func(t *testing.T) {
		amis, _ = up(t, images, imagesProgram(baked))
		_, ops := up(t, fleetStack, fleetProgram(map[string]fleetSlot{"blue": {amiOf(t, amis, "d3"), 2, 0}, "green": {ami2, 2, 100}}))
		wantOps(t, ops, "update "+TypeLaunchTemplate+" shop-blue", "update "+TypeGroup+" shop-blue")
		lt := w.one(t, TypeLaunchTemplate, "shop-blue")
		g := w.one(t, TypeGroup, "shop-blue")
		if lt.Output("latestVersion") != 2.0 || lt.Input("imageId") != amiOf(t, amis, "d3") {
			t.Fatalf("blue's template %v", lt.Outputs)
		}
		if v := g.Input("launchTemplate").(map[string]any)["version"]; v != "2" {
			t.Fatalf("blue's group uses template version %v, want 2", v)
		}
	})

	step("retiring a slot deletes only its template and group", func(t *testing.T) {
		_, ops := up(t, fleetStack, fleetProgram(map[string]fleetSlot{"blue": {"", 0, 0}, "green": {ami2, 2, 100}}))
		wantOps(t, ops, "delete "+TypeLaunchTemplate+" shop-blue", "delete "+TypeGroup+" shop-blue")
		if recs, _ := w.store.List(TypeGroup); len(recs) != 1 || recs[0].ID != "shop-green" {
			t.Fatalf("groups %v, want shop-green alone", recs)
		}
		w.converged(t, "shop-images", "shop")
	})

	step("kill -9 of the engine mid-update, then up converges", func(t *testing.T) {
		bigger := fleetProgram(map[string]fleetSlot{"blue": {"", 0, 0}, "green": {ami2, 3, 100}})
		w.killDuring(t, "shop", bigger, StateUpdating)
		_, ops := up(t, w.open(t, "shop", Behaviour{}), bigger)
		wantOps(t, ops, "update "+TypeGroup+" shop-green")
		if g := w.one(t, TypeGroup, "shop-green"); g.Input("desiredCapacity") != 3.0 || g.State != StateAvailable {
			t.Fatalf("green after the resumed update: %+v", g)
		}
		w.converged(t, "shop-images", "shop")
	})

	step("kill -9 of the engine mid-delete, then up converges", func(t *testing.T) {
		none := fleetProgram(map[string]fleetSlot{"blue": {"", 0, 0}, "green": {"", 0, 0}})
		w.killDuring(t, "shop", none, StateDeleting)
		up(t, w.open(t, "shop", Behaviour{}), none)
		if recs, _ := w.store.List(TypeGroup, TypeLaunchTemplate); len(recs) != 0 {
			t.Fatalf("left after the resumed retire: %v", recs)
		}
		w.converged(t, "shop-images", "shop")
	})

	step("destroy removes everything", func(t *testing.T) {
		for _, s := range []*stacks.Stack{fleetStack, images} {
			if err := s.Destroy(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		}
		if recs, err := w.store.List(); err != nil || len(recs) != 0 {
			t.Fatalf("left in the cloud after destroy: %v %v", recs, err)
		}
	})
}

// A create the engine was killed during is done in the cloud but not in the stack's
// state (the engine only notes it as pending): the next up creates it again, and AWS
// refuses a second group of the same name. The model does the same, so kiln's resume
// after kill -9 in a deploy is tested against what AWS would do.
func TestAKilledCreateLeavesTheResourceInTheCloudAsAWSWould(t *testing.T) {
	w := newWorld(t)
	ami := "ami-0123456789abcdef0"
	v1 := fleetProgram(map[string]fleetSlot{"blue": {ami, 2, 100}, "green": {"", 0, 0}})
	up(t, w.open(t, "shop", Behaviour{}), v1)
	deploy := fleetProgram(map[string]fleetSlot{"blue": {ami, 2, 100}, "green": {ami, 2, 0}})
	w.killDuring(t, "shop", deploy, StateCreating)
	if w.stateResources(t, "shop")[TypeGroup+" shop-green"] != 0 {
		t.Fatal("the killed create is in the stack's state")
	}
	_, err := w.open(t, "shop", Behaviour{}).Up(context.Background(), deploy, nil)
	if err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("up after a create killed mid-way: %v, want AWS's AlreadyExists", err)
	}
	if recs, _ := w.store.List(TypeGroup); len(recs) != 2 {
		t.Fatalf("groups in the cloud: %v, want blue and the one green", recs)
	}
}

func TestAnInjectedFailureFailsTheUpAndTheNextUpConverges(t *testing.T) {
	w := newWorld(t)
	program := fleetProgram(map[string]fleetSlot{"blue": {"ami-0123456789abcdef0", 2, 100}, "green": {"", 0, 0}})
	_, err := w.open(t, "shop", Behaviour{FailNth: map[string]int{TypeGroup: 1}}).Up(context.Background(), program, nil)
	if err == nil || !strings.Contains(err.Error(), ErrInjected.Error()) {
		t.Fatalf("up with the first group create failing: %v", err)
	}
	if recs, _ := w.store.List(TypeGroup); len(recs) != 0 {
		t.Fatalf("the failed create left %v", recs)
	}
	// The count goes on in the model's directory: the same setting fails no second create.
	// (The engine starts no new step after a failure, so what else the next up creates
	// depends on timing; the group is among it.)
	_, ops := up(t, w.open(t, "shop", Behaviour{FailNth: map[string]int{TypeGroup: 1}}), program)
	if !slices.Contains(ops, "create "+TypeGroup+" shop-blue") || slices.ContainsFunc(ops, func(op string) bool { return !strings.HasPrefix(op, "create ") }) {
		t.Fatalf("ops %v, want creates, the group's among them", ops)
	}
	w.converged(t, "shop")
}

// killDuring runs program on the stack with slow auto scaling groups and kills -9 its
// engine once the shop-green group is in state (the double is then waiting on it).
func (w *world) killDuring(t *testing.T, stack string, program pulumi.RunFunc, state string) {
	t.Helper()
	slow := w.open(t, stack, Behaviour{Latency: map[string]time.Duration{TypeGroup: 5 * time.Second}})
	done := make(chan error, 1)
	go func() {
		_, err := slow.Up(context.Background(), program, nil)
		done <- err
	}()
	waitFor(t, 60*time.Second, func() bool {
		g, ok, _ := w.store.Get(TypeGroup, "shop-green")
		return ok && g.State == state
	})
	killEngine(t, w, stack)
	if err := <-done; err == nil {
		t.Fatal("the killed update succeeded")
	}
}

// killEngine kills -9 the engine that holds the stack's update lock.
func killEngine(t *testing.T, w *world, stack string) {
	t.Helper()
	locks, _ := filepath.Glob(filepath.Join(w.state, "pulumi", ".pulumi", "locks", "organization", stacks.Project, stack, "*.json"))
	if len(locks) != 1 {
		t.Fatalf("%d update locks, want the running engine's", len(locks))
	}
	raw, err := os.ReadFile(locks[0])
	if err != nil {
		t.Fatal(err)
	}
	var lock struct{ PID int }
	if err := json.Unmarshal(raw, &lock); err != nil || lock.PID == 0 {
		t.Fatalf("lock %s: %v", raw, err)
	}
	if err := syscall.Kill(lock.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
