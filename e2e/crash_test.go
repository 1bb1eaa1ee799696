//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bootProcesses lists the instance dirs of live kiln-boot processes under dir.
func bootProcesses(dir string) []string {
	var out []string
	for _, l := range leftovers(dir) {
		if i := strings.Index(l, "boot --spec "); i >= 0 {
			out = append(out, filepath.Base(filepath.Dir(strings.Fields(l[i+len("boot --spec "):])[0])))
		}
	}
	return out
}

func TestKillNineInEachPhaseThenResumeConverges(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir, "--break-lock")
	steps := `  scaleDownDelay: 0s
  steps:
    - {weight: 50, pause: 1s}
    - {weight: 100}`
	addr := deployFirst(t, dir, "crash", steps)
	// Killing kiln never touches the instances or the balancer: traffic must not notice.
	load := startLoad(t, addr)
	for i, tc := range []struct {
		phase string
		delay time.Duration
	}{
		// A deploy takes about 0.6s here: kill early in it and in the middle of it.
		{"deploy", 100 * time.Millisecond},
		{"deploy", 350 * time.Millisecond},
		{"step", 150 * time.Millisecond},
		{"retire", 150 * time.Millisecond},
	} {
		version := fmt.Sprintf("1.%d.0", i+1)
		t.Run(tc.phase+"/"+version, func(t *testing.T) {
			writeFull(t, dir, "crash", version, "", steps, "")
			cmd, evs := startRollout(t, dir)
			waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == tc.phase })
			time.Sleep(tc.delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			resumeFlag := "--break-lock"
			if i%2 == 1 {
				resumeFlag = "--resume"
			}
			code, out, errOut := kiln(t, dir, "rollout", "--output", "json", resumeFlag)
			if code != 0 {
				t.Fatalf("resume after kill -9 in %s: exit %d\n%s\n%s", tc.phase, code, out, errOut)
			}
			if fin := finished(t, out); fin["outcome"] != "promoted" && fin["outcome"] != "unchanged" {
				t.Fatalf("resume: %v", fin)
			}
			if v := servingVersion(t, addr); v != version {
				t.Fatalf("serving %s, want %s", v, version)
			}
			if got := instanceDirs(t, dir, "crash"); len(got) != 2 {
				t.Fatalf("instance dirs %v, want the 2 of %s", got, version)
			}
			if got := bootProcesses(dir); len(got) != 2 {
				t.Fatalf("kiln-boot processes for %v, want exactly 2 (no orphan)", got)
			}
		})
	}

	// Killed while undoing a broken release: the next run finishes the undo.
	writeFull(t, dir, "crash", "9.0.0", "DEMO_BROKEN: '1'", "  scaleDownDelay: 0s\n  progressDeadline: 2s", "")
	body, _ := os.ReadFile(filepath.Join(dir, "kiln.yaml"))
	os.WriteFile(filepath.Join(dir, "kiln.yaml"), []byte(strings.Replace(string(body), "  progressDeadline: 60s\n", "", 1)), 0o644)
	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == "rollback" })
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	code, out, errOut := kiln(t, dir, "rollout", "--output", "json", "--break-lock")
	fin := finished(t, out)
	if code != 1 || fin["outcome"] != "rolled-back" || fin["reason"] != "NewSlotNotHealthy" {
		t.Fatalf("after kill -9 in rollback: exit %d, %v\n%s", code, fin, errOut)
	}
	if v := servingVersion(t, addr); v != "1.4.0" {
		t.Fatalf("serving %s after the undo, want 1.4.0", v)
	}
	if got := bootProcesses(dir); len(got) != 2 {
		t.Fatalf("kiln-boot processes for %v after the undo, want 2", got)
	}
	rep := load.Stop()
	t.Logf("load through five kills: %s", rep)
	if rep.Failed != 0 {
		t.Fatalf("%d of %d requests failed while kiln was killed and resumed: %v", rep.Failed, rep.Sent, rep.Errors)
	}

	_, out, _ = kiln(t, dir, "history", "--output", "json")
	var hist []struct{ ID, Version string }
	json.Unmarshal([]byte(out), &hist)
	seen := map[string]bool{}
	for _, r := range hist {
		if seen[r.ID] {
			t.Fatalf("history holds rollout %s twice: %s", r.ID, out)
		}
		seen[r.ID] = true
	}
	if len(hist) != 6 {
		t.Fatalf("history has %d records, want 6 (1.0.0, four resumed, 9.0.0)", len(hist))
	}
}
