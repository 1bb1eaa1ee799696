//go:build awslive

// Package awslive rolls a small service out to a real AWS account and removes it again:
// the one test of the aws target that is not run against a model. It runs only with
// `go tool task test:aws-live` (build tag awslive), never in the default test run, and it
// refuses to start without its settings:
//
//	KILN_AWS_LIVE_REGION   the region, e.g. eu-west-1
//	KILN_AWS_LIVE_SUBNETS  two or more subnet IDs, comma-separated, in different zones
//	AWS_PROFILE (or any credential of the standard chain) with the deployer's policy
//	                       of docs/aws.md
//
// Optional: KILN_AWS_LIVE_BACKEND (default: a file backend in the test's directory) and
// KILN_AWS_LIVE_INSTANCE_TYPE (default t3.micro). It costs one Image Builder bake per
// release (tens of minutes) and the instances and balancer for the length of the test.
package awslive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/fleet"
)

func setting(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: the live test needs a real account (see the package doc and docs/aws.md)", name)
	}
	return v
}

const manifest = `apiVersion: kiln/v1
service: kiln-live
version: %s
app:
  binary: %s
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 10s, timeout: 5s, healthyThreshold: 2, unhealthyThreshold: 2}
rollout:
  progressDeadline: 20m
  drainTimeout: 10s
  scaleDownDelay: 0s
  steps:
    - {weight: 50, pause: 30s}
    - {weight: 100}
images:
  keep: 2
target:
  aws:
    region: %s
    subnets: [%s]
    instanceType: %s
    tags: {purpose: kiln-live-test}
`

func TestLiveRolloutOnAWS(t *testing.T) {
	region := setting(t, "KILN_AWS_LIVE_REGION")
	subnets := strings.Split(setting(t, "KILN_AWS_LIVE_SUBNETS"), ",")
	itype := os.Getenv("KILN_AWS_LIVE_INSTANCE_TYPE")
	if itype == "" {
		itype = "t3.micro"
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/...")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kiln: %v\n%s", err, out)
	}
	demo := filepath.Join(dir, "demo-service")
	build = exec.Command("go", "build", "-o", demo, "./examples/demo")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo service: %v\n%s", err, out)
	}
	env := []string{"KILN_STATE_DIR=" + filepath.Join(dir, "state")}
	if b := os.Getenv("KILN_AWS_LIVE_BACKEND"); b != "" {
		env = append(env, "KILN_BACKEND="+b)
	}
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "kiln"), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("kiln %v: %v", args, err)
		}
		return code, out.String()
	}
	write := func(version string) {
		m := fmt.Sprintf(manifest, version, demo, region, strings.Join(subnets, ", "), itype)
		if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("1.0.0")
	if code, out := run("setup"); code != 0 {
		t.Fatalf("kiln setup: exit %d\n%s", code, out)
	}
	t.Cleanup(func() {
		if code, out := run("destroy", "--output", "json"); code != 0 {
			t.Errorf("kiln destroy: exit %d\n%s\nremove what is left by hand: resources tagged kiln:service=kiln-live", code, out)
		}
	})
	for _, version := range []string{"1.0.0", "2.0.0"} {
		write(version)
		code, out := run("rollout", "--output", "json")
		if code != 0 {
			t.Fatalf("rollout %s: exit %d\n%s", version, code, out)
		}
		if fin := last(t, out); fin["outcome"] != "promoted" {
			t.Fatalf("rollout %s: %v", version, fin)
		}
		_, status := run("status", "--output", "json")
		var st struct {
			Endpoint string `json:"endpoint"`
		}
		json.Unmarshal([]byte(status), &st)
		if st.Endpoint == "" {
			t.Fatalf("kiln status names no endpoint:\n%s", status)
		}
		if got := serving(t, fleet.URL(st.Endpoint)); got != version {
			t.Fatalf("%s serves %q, want %s", st.Endpoint, got, version)
		}
	}
}

// last is the final JSON object of kiln's output: the finished event.
func last(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		json.Unmarshal(sc.Bytes(), &m)
	}
	if m == nil || m["event"] != "finished" {
		t.Fatalf("output does not end with a finished event:\n%s", out)
	}
	return m
}

// serving asks the balancer which version answers, retrying while DNS and the listener
// settle (a new ALB's name takes a minute or two to resolve).
func serving(t *testing.T, endpoint string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get(endpoint)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return resp.Header.Get("X-Demo-Version")
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", endpoint, err)
		}
		time.Sleep(5 * time.Second)
	}
}
