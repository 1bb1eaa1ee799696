//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// interruptAt is a moment of a rollout to send SIGTERM at: after a delay from its start,
// or when an event matches (then after the delay).
type interruptAt struct {
	name  string
	event func(map[string]any) bool
	delay time.Duration
}

func phaseStarted(phase string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == phase }
}

func named(event string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["event"] == event }
}

// deployFirst rolls out release 1.0.0 of service in dir, with the rollout section given,
// and returns its endpoint.
func deployFirst(t *testing.T, dir, service, rollout string) string {
	t.Helper()
	writeFull(t, dir, service, "1.0.0", "", rollout, "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	return endpointOf(t, dir)
}

// interrupt sends SIGTERM to the rollout's process group at the moment, as a cancelled CI
// job is signalled, and returns its exit code and the finished event it printed.
func interrupt(t *testing.T, cmd *exec.Cmd, evs <-chan map[string]any, at interruptAt) (int, map[string]any) {
	t.Helper()
	if at.event != nil {
		waitEvent(t, evs, at.event)
	}
	time.Sleep(at.delay)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	fin := finishedOf(t, evs)
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), fin
}

// TestSIGTERMAtEveryStageBoundaryEndsInterruptedOnTheStableRelease interrupts a rollout
// at each boundary between its stages, and before the first event (the stack being
// opened, the fleet read): each time it must end interrupted, exit 130, with the stable
// release serving alone, and no request through the balancer may fail.
func TestSIGTERMAtEveryStageBoundaryEndsInterruptedOnTheStableRelease(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir, "--break-lock")
	steps := `  scaleDownDelay: 0s
  steps:
    - {weight: 50}
    - {weight: 100}`
	addr := deployFirst(t, dir, "sig", steps)
	load := startLoad(t, addr)
	for i, at := range []interruptAt{
		{name: "opening the stack", delay: 300 * time.Millisecond},
		{name: "reading the fleet", delay: 1200 * time.Millisecond},
		{name: "rollout-started", event: named("rollout-started")},
		{name: "bake", event: phaseStarted("bake")},
		{name: "baked", event: named("baked")},
		{name: "deploy", event: phaseStarted("deploy")},
		{name: "deploy creating", event: func(ev map[string]any) bool { return ev["event"] == "resource" && ev["status"] == "started" }},
		{name: "deployed", event: func(ev map[string]any) bool { return ev["event"] == "phase-finished" && ev["phase"] == "deploy" }},
		{name: "health", event: phaseStarted("health")},
		{name: "step 1", event: phaseStarted("step")},
		{name: "traffic at 50%", event: named("traffic")},
		{name: "retire", event: phaseStarted("retire")},
	} {
		version := fmt.Sprintf("1.%d.0", i+1)
		t.Run(strings.ReplaceAll(at.name, " ", "-"), func(t *testing.T) {
			writeFull(t, dir, "sig", version, "", steps, "")
			cmd, evs := startRollout(t, dir)
			code, fin := interrupt(t, cmd, evs, at)
			if code != 130 || fin["outcome"] != "interrupted" || fin["reason"] != "Cancelled" {
				t.Fatalf("SIGTERM at %s: exit %d, %v; want 130, interrupted", at.name, code, fin)
			}
			if v := servingVersion(t, addr); v != "1.0.0" {
				t.Fatalf("after SIGTERM at %s the balancer serves %s, want 1.0.0", at.name, v)
			}
			if got := bootProcesses(dir); len(got) != 2 {
				t.Fatalf("after SIGTERM at %s: kiln-boot processes for %v, want the 2 of 1.0.0", at.name, got)
			}
		})
	}
	rep := load.Stop()
	t.Logf("load through the interrupts: %s", rep)
	if rep.Failed != 0 {
		t.Fatalf("%d of %d requests failed while rollouts were interrupted: %v", rep.Failed, rep.Sent, rep.Errors)
	}
}

// TestSIGTERMDuringAFirstReleaseLeavesNothing interrupts first releases: with no stable
// release to return to, what they created is removed, and they end interrupted.
func TestSIGTERMDuringAFirstReleaseLeavesNothing(t *testing.T) {
	for _, at := range []interruptAt{
		{name: "opening the stack", delay: 300 * time.Millisecond},
		{name: "deploy creating", event: func(ev map[string]any) bool { return ev["event"] == "resource" && ev["status"] == "started" }, delay: 200 * time.Millisecond},
		{name: "health", event: phaseStarted("health")},
	} {
		t.Run(strings.ReplaceAll(at.name, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			destroyAtEnd(t, dir, "--break-lock")
			writeFull(t, dir, "first", "1.0.0", "DEMO_HEALTHY_AFTER: 30s", "", "")
			cmd, evs := startRollout(t, dir)
			code, fin := interrupt(t, cmd, evs, at)
			if code != 130 || fin["outcome"] != "interrupted" {
				t.Fatalf("SIGTERM at %s of a first release: exit %d, %v; want 130, interrupted", at.name, code, fin)
			}
			nothingLeft(t, dir)
		})
	}
}
