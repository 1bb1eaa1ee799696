//go:build e2e

// Package e2e drives the kiln binary end to end: the real Pulumi CLI, the real
// pulumi-resource-kiln, real instance and load balancer processes, real requests.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/loadgen"
	"github.com/kilnhq/kiln/stacks/pulumicli"
)

var (
	binDir  string // kiln, pulumi-resource-kiln, the builtin components
	demoBin string // the demo service, prebuilt
)

// destroyAtEnd destroys the test's fleet when it ends (destroy's extra args given) and
// fails the test if any process of it is left running.
func destroyAtEnd(t *testing.T, dir string, args ...string) {
	t.Cleanup(func() {
		kiln(t, dir, append([]string{"destroy"}, args...)...)
		if left := leftovers(dir); len(left) > 0 {
			t.Errorf("processes left after destroy: %v", left)
		}
	})
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kiln-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kiln:", err)
		return 1
	}
	demoBin = filepath.Join(dir, "demo-service")
	build = exec.Command("go", "build", "-o", demoBin, "./examples/demo")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build demo:", err)
		return 1
	}
	// Built once per machine into the tools cache; `go tool task setup` does it before
	// the tests, so here it is normally only found.
	if _, err := pulumicli.Ensure(context.Background(), pulumicli.Options{Progress: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "pulumi cli:", err)
		return 1
	}
	return m.Run()
}

// kiln runs the kiln binary and returns its exit code, stdout and stderr.
func kiln(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	return kilnIn(t, dir, "", args...)
}

// kilnIn runs the kiln binary with stdin ("" is none) and returns its exit code, stdout
// and stderr.
func kilnIn(t *testing.T, dir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kiln"), args...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kiln %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

const manifestTmpl = `apiVersion: kiln/v1
service: %s
version: %s
app:
  binary: %s
  env: {%s}
fleet:
  size: 2
  port: 8080
  health:
    path: /healthz
    interval: 200ms
    timeout: 150ms
    healthyThreshold: 2
    unhealthyThreshold: 2
rollout:
  progressDeadline: %s
  drainTimeout: 3s
  scaleDownDelay: 0s
target:
  local:
    listen: 127.0.0.1:0
`

func writeManifest(t *testing.T, dir, service, version, env string) {
	t.Helper()
	writeManifestDeadline(t, dir, service, version, env, "6s")
}

func writeManifestDeadline(t *testing.T, dir, service, version, env, deadline string) {
	t.Helper()
	body := fmt.Sprintf(manifestTmpl, service, version, demoBin, env, deadline)
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// finished returns the last JSON line of a rollout's output: its Finished event.
// instancesTouched are the instances a rollout's events say it changed in any way, or by
// one of ops only.
func instancesTouched(t *testing.T, stdout string, ops ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, ev := range events(t, stdout) {
		typ, _ := ev["type"].(string)
		op, _ := ev["op"].(string)
		name, _ := ev["name"].(string)
		if ev["event"] == "resource" && strings.HasSuffix(typ, ":Instance") && op != "" &&
			(len(ops) == 0 || slices.Contains(ops, op)) {
			out[name] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("the rollout's events name no instance:\n%s", stdout)
	}
	return out
}

func finished(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var last map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a line of JSON output is not JSON: %q: %v", sc.Text(), err)
		}
		last = m
	}
	if last == nil || last["event"] != "finished" {
		t.Fatalf("output does not end with a finished event:\n%s", stdout)
	}
	return last
}

// leftovers lists live processes whose command line mentions dir.
func leftovers(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

func servingVersion(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET through the load balancer: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET through the load balancer: %s", resp.Status)
	}
	return resp.Header.Get("X-Demo-Version")
}

func TestBlueGreenUnderLoadThenAFailingReleaseLeavesTheOldOneServing(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)

	writeManifest(t, dir, "shop", "1.0.0", "")
	code, out, errOut := kiln(t, dir, "rollout", "--output", "json")
	if code != 0 {
		t.Fatalf("rollout 1.0.0 exited %d\n%s\n%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" {
		t.Fatalf("rollout 1.0.0: %v", fin)
	}

	code, out, errOut = kiln(t, dir, "status", "--output", "json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	var st struct {
		Endpoint string `json:"endpoint"`
		Live     struct {
			Version string `json:"version"`
		} `json:"live"`
		Weights   map[string]int `json:"weights"`
		Instances []struct {
			Slot  string `json:"slot"`
			State string `json:"state"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if st.Live.Version != "1.0.0" || st.Weights["blue"] != 100 || len(st.Instances) != 2 {
		t.Fatalf("status after 1.0.0: %s", out)
	}
	addr := st.Endpoint
	if got := servingVersion(t, addr); got != "1.0.0" {
		t.Fatalf("serving %q, want 1.0.0", got)
	}

	load, err := loadgen.Start(context.Background(), loadgen.Options{URL: "http://" + addr + "/", Workers: 4,
		MaxTotal: 200000, MaxTime: 4 * time.Minute, Pause: time.Millisecond, VersionHeader: "X-Demo-Version"})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()

	writeManifest(t, dir, "shop", "2.0.0", "")
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	if code != 0 {
		t.Fatalf("rollout 2.0.0 exited %d\n%s\n%s", code, out, errOut)
	}
	fin := finished(t, out)
	if fin["outcome"] != "promoted" || fin["to"].(map[string]any)["version"] != "2.0.0" {
		t.Fatalf("rollout 2.0.0: %v", fin)
	}
	if got := servingVersion(t, addr); got != "2.0.0" {
		t.Fatalf("after 2.0.0 the load balancer serves %q", got)
	}
	live := instancesTouched(t, out, "create") // the instances 2.0.0 created

	writeManifest(t, dir, "shop", "3.0.0", "DEMO_BROKEN: '1'")
	// The drain timeout, a fleet setting every instance is started with, changes too.
	editManifest(t, dir, "drainTimeout: 3s", "drainTimeout: 4s")
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	if code != 1 {
		t.Fatalf("a release that never gets healthy exited %d, want 1\n%s\n%s", code, out, errOut)
	}
	fin = finished(t, out)
	if fin["outcome"] != "rolled-back" || fin["reason"] != "NewSlotNotHealthy" {
		t.Fatalf("rollout 3.0.0: %v", fin)
	}
	if !strings.Contains(fin["message"].(string), "status 500") {
		t.Errorf("the reason does not say what the health check saw: %v", fin["message"])
	}
	if got := servingVersion(t, addr); got != "2.0.0" {
		t.Fatalf("after the failed 3.0.0 the load balancer serves %q, want 2.0.0", got)
	}
	// The new drain timeout reached only the new slot, never 2.0.0's instances.
	for name := range instancesTouched(t, out) {
		if live[name] {
			t.Errorf("rollout 3.0.0 (a new drain timeout) touched %s, an instance of the live 2.0.0", name)
		}
	}

	rep := load.Stop()
	t.Logf("load: %s", rep)
	if rep.Failed != 0 {
		t.Fatalf("%d of %d requests failed during the rollouts: %v", rep.Failed, rep.Sent, rep.Errors)
	}
	if rep.Versions["1.0.0"] == 0 || rep.Versions["2.0.0"] == 0 || rep.Versions["3.0.0"] != 0 {
		t.Fatalf("versions served under load: %v", rep.Versions)
	}

	code, out, errOut = kiln(t, dir, "destroy")
	if code != 0 {
		t.Fatalf("destroy exited %d: %s %s", code, out, errOut)
	}
	if left := leftovers(dir); len(left) > 0 {
		t.Fatalf("processes left after destroy: %v", left)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the load balancer's port is still taken after destroy: %v", err)
	}
	l.Close()
}

func TestInvalidManifestIsRefusedWithPositionsAndNothingIsBaked(t *testing.T) {
	dir := t.TempDir()
	bad := "apiVersion: kiln/v1\nservice: Shop\nversion: one\napp:\n  binary: " + demoBin + "\nfleet:\n  size: 2\n  port: 8080\n  health:\n    path: /healthz\n    interval: fast\n    colour: blue\ntarget:\n  local: {}\n"
	os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(bad), 0o644)
	for _, cmd := range []string{"validate", "rollout", "bake"} {
		code, _, errOut := kiln(t, dir, cmd)
		if code != 2 {
			t.Fatalf("kiln %s on an invalid manifest exited %d, want 2\n%s", cmd, code, errOut)
		}
		for _, want := range []string{"kiln.yaml:2:10: service", "kiln.yaml:3:10: version", "kiln.yaml:11:15: fleet.health.interval", "kiln.yaml:12:5: fleet.health.colour"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("kiln %s: errors do not name %q:\n%s", cmd, want, errOut)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".kiln", "images")); err == nil {
		t.Fatal("an invalid manifest baked an image")
	}
}

func TestDemoCommandReportsZeroFailedRequests(t *testing.T) {
	state := t.TempDir()
	code, out, errOut := kiln(t, "..", "demo", "--state-dir", state)
	t.Log(out)
	if code != 0 {
		t.Fatalf("kiln demo exited %d\n%s", code, errOut)
	}
	if !strings.Contains(out, " 0 failed") || !strings.Contains(out, "demo passed") {
		t.Fatalf("demo output does not report 0 failed requests")
	}
	if left := leftovers(state); len(left) > 0 {
		t.Fatalf("processes left after the demo: %v", left)
	}
}
