package stacks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
	"github.com/kilnhq/kiln/targets/local/lb"
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
	if args.TypeToken == LocalInstanceType {
		outs["address"] = resource.NewStringProperty("127.0.0.1:1" + args.Name[len(args.Name)-1:])
	}
	if args.TypeToken == LocalLoadBalancerType {
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
	err := pulumi.RunErr(LocalFleet(testSpec(), LocalConfig{Listen: "127.0.0.1:0", LB: proxy, RunDir: "/run"}),
		pulumi.WithMocks(Project, "hello", rec))
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
	if rec.typ["hello-green-1"] != LocalInstanceType {
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
		if err := LocalFleet(spec, LocalConfig{Listen: "127.0.0.1:0", RunDir: "/run"})(ctx); err != nil {
			return err
		}
		return nil
	}, pulumi.WithMocks(Project, "hello", rec))
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
	err := pulumi.RunErr(LocalFleet(spec, LocalConfig{Listen: "127.0.0.1:0", RunDir: "/run"}), pulumi.WithMocks(Project, "hello", rec))
	if err == nil {
		t.Fatal("weights adding up to 150 were accepted")
	}
	if len(rec.got) != 0 {
		t.Fatalf("an invalid spec registered %d resources", len(rec.got))
	}
}

func TestClearDeadLocksRemovesOnlyLocksOfDeadEnginesOnThisHost(t *testing.T) {
	backend := t.TempDir()
	dir := filepath.Join(backend, ".pulumi", "locks", "organization", Project, "shop")
	os.MkdirAll(dir, 0o755)
	host, _ := os.Hostname()
	dead := exec.Command("true")
	dead.Run()
	write := func(name string, pid int, h string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(fmt.Sprintf(`{"pid":%d,"username":"u","hostname":%q,"timestamp":"2026-11-22T00:00:00Z"}`, pid, h)), 0o644)
		return p
	}
	deadLock := write("dead", dead.ProcessState.Pid(), host)
	liveLock := write("live", os.Getpid(), host)
	otherHost := write("other", dead.ProcessState.Pid(), host+"-elsewhere")
	if err := clearDeadLocks(backend, Project, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deadLock); !os.IsNotExist(err) {
		t.Error("the lock of a dead engine stayed")
	}
	for _, p := range []string{liveLock, otherHost} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

func TestReadRetryStopsAtTheFirstSuccessAndGivesUpAfterFourTries(t *testing.T) {
	calls := 0
	err := readRetry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("failed to select stack")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the third", err, calls)
	}
	calls = 0
	err = readRetry(context.Background(), func() error { calls++; return fmt.Errorf("still broken") })
	if err == nil || calls != 4 {
		t.Fatalf("err %v after %d calls, want the error after 4", err, calls)
	}
}
