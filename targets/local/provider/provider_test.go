package provider

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/targets/local/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestStopEndsTheWholeSessionIncludingGrandchildren(t *testing.T) {
	log := t.TempDir() + "/out.log"
	// A leader that ignores SIGTERM and has a child of its own.
	p, err := spawn([]string{"/bin/sh", "-c", `trap "" TERM; sleep 300 & echo $! ; wait`}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if !p.alive() {
		t.Fatal("spawned process is not alive")
	}
	var child int
	for i := 0; i < 100 && child == 0; i++ {
		b, _ := os.ReadFile(log)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("no grandchild pid")
	}
	if err := stop(context.Background(), p, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p.alive() || groupExists(p.PID) {
		t.Fatal("the session survived stop")
	}
	if st, err := startTime(child); err == nil {
		t.Fatalf("grandchild %d survived stop (start time %d)", child, st)
	}
}

func TestAProcessWithAnotherStartTimeIsNotOurs(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !(proc{PID: cmd.Process.Pid, StartTime: st}).alive() {
		t.Fatal("the real process is not alive")
	}
	// The same pid with another start time stands for a process that died and whose pid
	// was reused: it must be neither alive nor signalled.
	stranger := proc{PID: cmd.Process.Pid, StartTime: st + 1}
	if stranger.alive() {
		t.Fatal("a reused pid passed for our process")
	}
	if err := stop(context.Background(), stranger, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("stop signalled a process that was not ours")
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDiffReplacesInstancesButUpdatesTheBalancerInPlace(t *testing.T) {
	s := &server{}
	ctx := context.Background()
	inst := "urn:pulumi:shop::kiln::" + schema.InstanceType + "::shop-blue-0"
	old := map[string]any{"version": "1.0.0", "digest": "sha256:a"}
	resp, err := s.Diff(ctx, &pulumirpc.DiffRequest{Urn: inst, OldInputs: mustStruct(t, old), News: mustStruct(t, map[string]any{"version": "1.0.0", "digest": "sha256:b"})})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(resp.Replaces) != 1 || resp.Replaces[0] != "digest" {
		t.Fatalf("instance diff = %v", resp)
	}
	resp, _ = s.Diff(ctx, &pulumirpc.DiffRequest{Urn: inst, OldInputs: mustStruct(t, old), News: mustStruct(t, old)})
	if resp.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("no change diffed as %v", resp)
	}
	lbURN := "urn:pulumi:shop::kiln::" + schema.LoadBalancerType + "::shop-lb"
	lbOld := map[string]any{"listen": "127.0.0.1:0", "groups": []any{map[string]any{"name": "blue", "weight": 100.0}}}
	lbNew := map[string]any{"listen": "127.0.0.1:0", "groups": []any{map[string]any{"name": "blue", "weight": 0.0}}}
	resp, _ = s.Diff(ctx, &pulumirpc.DiffRequest{Urn: lbURN, OldInputs: mustStruct(t, lbOld), News: mustStruct(t, lbNew)})
	if resp.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(resp.Replaces) != 0 {
		t.Fatalf("a weight change must update the balancer in place: %v", resp)
	}
	lbNew["listen"] = "127.0.0.1:9000"
	resp, _ = s.Diff(ctx, &pulumirpc.DiffRequest{Urn: lbURN, OldInputs: mustStruct(t, lbOld), News: mustStruct(t, lbNew)})
	if len(resp.Replaces) != 1 || resp.Replaces[0] != "listen" {
		t.Fatalf("a new listen address must replace the balancer: %v", resp)
	}
}

func TestCheckRefusesAnInvalidBalancerButNotAPreviewWithUnknowns(t *testing.T) {
	s := &server{}
	urn := "urn:pulumi:shop::kiln::" + schema.LoadBalancerType + "::shop-lb"
	bad := map[string]any{"service": "shop", "runDir": "/run", "listen": "127.0.0.1:0", "drainTimeout": "1s",
		"health": map[string]any{"path": "/healthz", "interval": "1s", "timeout": "1s", "healthyThreshold": 0.0, "unhealthyThreshold": 2.0},
		"groups": []any{}}
	resp, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, News: mustStruct(t, bad)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Failures) == 0 {
		t.Fatal("a healthy threshold of 0 passed Check")
	}
	unknown := map[string]any{"service": "shop", "groups": []any{map[string]any{"targets": []any{map[string]any{"address": plugin.UnknownStringValue}}}}}
	resp, err = s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, News: mustStruct(t, unknown)})
	if err != nil || len(resp.Failures) != 0 {
		t.Fatalf("values unknown during a preview were judged: %v %v", err, resp.Failures)
	}
}

func TestUnknownResourceTypeIsAnError(t *testing.T) {
	_, err := (&server{}).Create(context.Background(), &pulumirpc.CreateRequest{Urn: "urn:pulumi:s::kiln::" + schema.Provider + ":local:Nope::x", Properties: mustStruct(t, map[string]any{})})
	if err == nil || !strings.Contains(err.Error(), schema.Provider+":local:Nope") {
		t.Fatalf("err = %v", err)
	}
}
