//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/loadgen"
)

// writeFull writes a manifest with the given rollout and analysis sections.
func writeFull(t *testing.T, dir, service, version, env, rollout, analysis string) {
	t.Helper()
	body := fmt.Sprintf(`apiVersion: kiln/v1
service: %s
version: %s
app:
  binary: %s
  env: {%s}
fleet:
  size: 2
  port: 8080
  health: {path: /healthz, interval: 200ms, timeout: 150ms, healthyThreshold: 2, unhealthyThreshold: 2}
rollout:
  progressDeadline: 60s
  drainTimeout: 3s
%s
%s
target:
  local:
    listen: 127.0.0.1:0
`, service, version, demoBin, env, rollout, analysis)
	if err := os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const errorsAnalysis = `analysis:
  errors:
    interval: 500ms
    count: 4
    metrics:
      - name: error-ratio
        errorRatio: {max: 0.05, window: 3s, minRequests: 5}`

func endpointOf(t *testing.T, dir string) string {
	t.Helper()
	code, out, errOut := kiln(t, dir, "status", "--output", "json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	var st struct {
		Endpoint string
		Weights  map[string]int
	}
	json.Unmarshal([]byte(out), &st)
	return st.Endpoint
}

func weightsOf(t *testing.T, dir string) map[string]int {
	t.Helper()
	_, out, _ := kiln(t, dir, "status", "--output", "json")
	var st struct{ Weights map[string]int }
	json.Unmarshal([]byte(out), &st)
	return st.Weights
}

func startLoad(t *testing.T, addr string) *loadgen.Run {
	t.Helper()
	load, err := loadgen.Start(context.Background(), loadgen.Options{URL: "http://" + addr + "/", Workers: 4,
		MaxTotal: 200000, MaxTime: 3 * time.Minute, Pause: 2 * time.Millisecond, VersionHeader: "X-Demo-Version"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { load.Stop() })
	return load
}

func finishedOf(t *testing.T, evs <-chan map[string]any) map[string]any {
	t.Helper()
	var last map[string]any
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				if last == nil || last["event"] != "finished" {
					t.Fatalf("the rollout ended without a finished event (last %v)", last)
				}
				return last
			}
			last = ev
		case <-timeout:
			t.Fatal("the rollout did not finish within 3 minutes")
		}
	}
}

func TestCanaryPauseAndPromoteThenAnalysesCatchBadReleases(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "web", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	addr := endpointOf(t, dir)
	load := startLoad(t, addr)

	// 2.0.0 holds at 20% until a human promotes it from another terminal.
	writeFull(t, dir, "web", "2.0.0", "", `  scaleDownDelay: 0s
  steps:
    - {weight: 20, pause: indefinite}
    - {weight: 100}`, "")
	// A preview says what each phase would do and changes nothing.
	code, out, errOut := kiln(t, dir, "rollout", "--preview", "--output", "text")
	if code != 0 || !strings.Contains(out, "create             Instance web-green-0") ||
		!strings.Contains(out, "traffic: blue 80% / green 20%") || !strings.Contains(out, "waits: pause until promoted") {
		t.Fatalf("preview: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := instanceDirs(t, dir, "web"); len(got) != 2 {
		t.Fatalf("the preview changed the fleet: %v", got)
	}

	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "paused" && ev["indefinite"] == true })
	if w := weightsOf(t, dir); w["blue"] != 80 || w["green"] != 20 {
		t.Fatalf("weights while paused at the canary step: %v", w)
	}
	code, out, errOut = kiln(t, dir, "rollout", "promote", "--output", "text")
	if code != 0 || !strings.Contains(out, "promote accepted") {
		t.Fatalf("promote: %d %q %q", code, out, errOut)
	}
	fin := finishedOf(t, evs)
	if err := cmd.Wait(); err != nil || fin["outcome"] != "promoted" {
		t.Fatalf("promoted rollout: %v %v", err, fin)
	}
	rep := load.Stop()
	t.Logf("load through the canary and promote: %s", rep)
	if rep.Failed != 0 || rep.Versions["1.0.0"] == 0 || rep.Versions["2.0.0"] == 0 {
		t.Fatalf("load: %s %v", rep, rep.Errors)
	}

	// 3.0.0 fails half its requests: the analysis at 10% rolls it back.
	load = startLoad(t, addr)
	writeFull(t, dir, "web", "3.0.0", "DEMO_ERROR_RATE: '0.5'", `  scaleDownDelay: 0s
  steps:
    - {weight: 10, analysis: errors}
    - {weight: 100}`, errorsAnalysis)
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	fin = finished(t, out)
	if code != 1 || fin["outcome"] != "rolled-back" || fin["reason"] != "AnalysisFailed" {
		t.Fatalf("3.0.0: exit %d, %v\n%s", code, fin, errOut)
	}
	if v := servingVersion(t, addr); v != "2.0.0" {
		t.Fatalf("after 3.0.0 the balancer serves %s", v)
	}
	load.Stop()

	// 4.0.0 goes bad after promotion: the post-promotion analysis sends traffic back.
	// It starts failing 2s after it starts, inside the 2s analysis that follows the
	// step to 100% (about 1.2s after start): only that analysis looks at its errors, so
	// failing a little before or after promotion is caught the same way.
	load = startLoad(t, addr)
	writeFull(t, dir, "web", "4.0.0", "DEMO_FAIL_AFTER: 2s", `  scaleDownDelay: 30s
  postPromotionAnalysis: errors`, errorsAnalysis)
	code, out, errOut = kiln(t, dir, "rollout", "--output", "json")
	fin = finished(t, out)
	if code != 1 || fin["reason"] != "AnalysisFailed" {
		t.Fatalf("4.0.0: exit %d, %v\n%s", code, fin, errOut)
	}
	if !strings.Contains(out, `"phase":"post-promotion-analysis"`) {
		t.Fatal("4.0.0 was not caught by the post-promotion analysis")
	}
	if v := servingVersion(t, addr); v != "2.0.0" {
		t.Fatalf("after 4.0.0 the balancer serves %s", v)
	}
	load.Stop()
}

func TestRollbackInsideTheWindowAndInterruptStopOnTheStableSlot(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "api", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	addr := endpointOf(t, dir)
	load := startLoad(t, addr)

	// 2.0.0 is promoted but the old slot is kept 60s: a rollback then is instant.
	writeFull(t, dir, "api", "2.0.0", "", "  scaleDownDelay: 60s", "")
	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool {
		return ev["event"] == "phase-started" && ev["phase"] == "scale-down-delay"
	})
	if v := servingVersion(t, addr); v != "2.0.0" {
		t.Fatalf("during the scale-down delay the balancer serves %s", v)
	}
	start := time.Now()
	code, out, errOut := kiln(t, dir, "rollback", "--output", "text")
	if code != 0 || !strings.Contains(out, "aborted") {
		t.Fatalf("rollback in the window: %d %q %q", code, out, errOut)
	}
	fin := finishedOf(t, evs)
	cmd.Wait()
	if fin["outcome"] != "rolled-back" || fin["reason"] != "Aborted" {
		t.Fatalf("the rollout after rollback: %v", fin)
	}
	t.Logf("rollback inside the window took %s", time.Since(start))
	if v := servingVersion(t, addr); v != "1.0.0" {
		t.Fatalf("after the rollback the balancer serves %s", v)
	}
	rep := load.Stop()
	if rep.Failed != 0 {
		t.Fatalf("%d requests failed around the rollback: %v", rep.Failed, rep.Errors)
	}

	// SIGINT while a slow 3.0.0 boots: kiln stops on the stable slot and exits 130. A
	// hang-up (the terminal closed) does the same.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		writeFull(t, dir, "api", "3.0.0", "DEMO_HEALTHY_AFTER: 30s", "  scaleDownDelay: 0s", "")
		cmd, evs = startRollout(t, dir)
		waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == "health" })
		cmd.Process.Signal(sig)
		fin = finishedOf(t, evs)
		err := cmd.Wait()
		if cmd.ProcessState.ExitCode() != 130 || fin["outcome"] != "interrupted" {
			t.Fatalf("after %v: exit %d (%v), %v", sig, cmd.ProcessState.ExitCode(), err, fin)
		}
		if v := servingVersion(t, addr); v != "1.0.0" {
			t.Fatalf("after %v the balancer serves %s", sig, v)
		}
		if got := instanceDirs(t, dir, "api"); len(got) != 2 {
			t.Fatalf("instances after %v: %v, want the 2 stable ones", sig, got)
		}
	}
}

func TestAKilledLoadBalancerIsRecreatedOnItsAddressMidRollout(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "lbkill", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	addr := endpointOf(t, dir)
	writeFull(t, dir, "lbkill", "2.0.0", "", `  scaleDownDelay: 0s
  steps:
    - {weight: 50, pause: indefinite}
    - {weight: 100}`, "")
	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "paused" })

	b, err := os.ReadFile(filepath.Join(dir, ".kiln", "run", "lbkill", "lb", "lbkill", "ready.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ready struct{ PID int }
	json.Unmarshal(b, &ready)
	if err := syscall.Kill(ready.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the load balancer (pid %d): %v", ready.PID, err)
	}
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "healing" })
	// The paused rollout re-created the balancer on the same address, weights intact.
	deadline := time.Now().Add(time.Minute)
	for {
		if w := weightsOf(t, dir); w["green"] == 50 {
			if _, err := os.Stat(filepath.Join(dir, ".kiln", "run", "lbkill", "lb", "lbkill", "ready.json")); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the load balancer was not re-created within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := endpointOf(t, dir); got != addr {
		t.Fatalf("the re-created balancer listens on %s, clients know %s", got, addr)
	}
	if code, out, errOut := kiln(t, dir, "rollout", "promote"); code != 0 {
		t.Fatalf("promote: %d %s %s", code, out, errOut)
	}
	fin := finishedOf(t, evs)
	cmd.Wait()
	if fin["outcome"] != "promoted" {
		t.Fatalf("after the balancer was killed: %v", fin)
	}
	if v := servingVersion(t, addr); v != "2.0.0" {
		t.Fatalf("serving %s", v)
	}
}

func TestAFlappingReleaseIsNeverPromoted(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "flap", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	addr := endpointOf(t, dir)
	load := startLoad(t, addr)
	// Healthy for 2s, failing for 2s, and so on: it may pass the first gate, never all.
	writeFull(t, dir, "flap", "2.0.0", "DEMO_FLAP: 2s", `  scaleDownDelay: 0s
  steps:
    - {weight: 20, pause: 10s}
    - {weight: 100}`, "")
	code, out, errOut := kiln(t, dir, "rollout", "--output", "json")
	fin := finished(t, out)
	if code != 1 || fin["outcome"] != "rolled-back" {
		t.Fatalf("flapping release: exit %d, %v\n%s", code, fin, errOut)
	}
	if r := fin["reason"]; r != "NewSlotUnhealthy" && r != "NewSlotNotHealthy" {
		t.Fatalf("reason %v", r)
	}
	if v := servingVersion(t, addr); v != "1.0.0" {
		t.Fatalf("after the flapping release the balancer serves %s", v)
	}
	rep := load.Stop()
	t.Logf("load: %s", rep)
	// Only its health check flaps; the balancer never routes to an instance it marked
	// unhealthy, and answers from a healthy one never fail.
	if rep.Failed != 0 {
		t.Fatalf("%d requests failed: %v", rep.Failed, rep.Errors)
	}
}
