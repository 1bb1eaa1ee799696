//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startRollout starts `kiln rollout --output json` and returns it with a channel of its
// events as they come.
func startRollout(t *testing.T, dir string, args ...string) (*exec.Cmd, <-chan map[string]any) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kiln"), append([]string{"rollout", "--output", "json"}, args...)...)
	cmd.Dir = dir
	// Its own process group, as a CI job's: a test may signal kiln and the Pulumi CLIs it
	// runs at once, as a cancelled job is signalled.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A test that fails while this rollout runs must not leave it holding the stack's
	// lock (the destroy in the test's cleanup would be refused): interrupt it, which
	// ends on the stable slot. Cleanups run last-in first-out, so this comes first.
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // the test waited for it
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
		}
	})
	evs := make(chan map[string]any, 256)
	go func() {
		defer close(evs)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				evs <- m
			}
		}
	}()
	return cmd, evs
}

// waitEvent reads events until one matches, failing after a minute.
func waitEvent(t *testing.T, evs <-chan map[string]any, match func(map[string]any) bool) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("the rollout ended before the awaited event")
			}
			if match(ev) {
				return
			}
		case <-timeout:
			t.Fatal("no awaited event within a minute")
		}
	}
}

func instanceDirs(t *testing.T, dir, service string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, ".kiln", "run", service, "instances"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestLockKillAndResumeDowngradeHistoryAndRollback(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir, "--log-level", "error")
	writeManifest(t, dir, "cart", "1.0.0", "")
	if code, out, errOut := kiln(t, dir, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("rollout 1.0.0: exit %d\n%s\n%s", code, out, errOut)
	}

	// 2.0.0 starts slowly: its instances pass their health check only after 8s.
	writeManifestDeadline(t, dir, "cart", "2.0.0", "DEMO_HEALTHY_AFTER: 8s", "60s")
	first, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == "health" })

	// While it runs, a second rollout is refused at once, naming the holder.
	start := time.Now()
	code, _, errOut := kiln(t, dir, "rollout")
	if code != 4 || !strings.Contains(errOut, "locked by kiln rollout") || !strings.Contains(errOut, "pid ") {
		t.Fatalf("concurrent rollout: exit %d, %q; want exit 4 naming the holder", code, errOut)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the refusal took %s: it waited for the lock", took)
	}

	// kill -9 of kiln in the health phase: the lock is left behind, stale.
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	code, _, errOut = kiln(t, dir, "rollout")
	if code != 4 || !strings.Contains(errOut, "--break-lock") {
		t.Fatalf("after kill -9: exit %d, %q; want 4 suggesting --break-lock", code, errOut)
	}
	code, out, errOut := kiln(t, dir, "rollout", "--output", "json", "--break-lock")
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, `"event":"recovered"`) {
		t.Fatalf("the second run did not resume the killed rollout:\n%s", out)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" || fin["to"].(map[string]any)["version"] != "2.0.0" {
		t.Fatalf("resumed rollout: %v", fin)
	}
	if got := instanceDirs(t, dir, "cart"); len(got) != 2 {
		t.Fatalf("instances after the resumed rollout: %v, want exactly 2 (no orphan)", got)
	}

	// Downgrades are refused unless asked for.
	writeManifest(t, dir, "cart", "1.5.0", "")
	code, out, _ = kiln(t, dir, "rollout", "--output", "json")
	fin := finished(t, out)
	msg, _ := fin["message"].(string)
	if code != 2 || fin["outcome"] != "refused" || !strings.Contains(msg, "1.5.0") || !strings.Contains(msg, "2.0.0") {
		t.Fatalf("downgrade: exit %d, %v; want 2, refused, naming both versions", code, fin)
	}

	// History: one record per release, the killed one not duplicated.
	code, out, _ = kiln(t, dir, "history", "--output", "json")
	if code != 0 {
		t.Fatalf("history exit %d", code)
	}
	var hist []struct{ Version, Outcome string }
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var got []string
	for _, r := range hist {
		got = append(got, r.Version+":"+r.Outcome)
	}
	if strings.Join(got, " ") != "2.0.0:promoted 1.0.0:promoted" {
		t.Fatalf("history %v, want 2.0.0:promoted 1.0.0:promoted", got)
	}

	// Rollback outside the fast-rollback window redeploys the kept 1.0.0 blue-green.
	writeManifest(t, dir, "cart", "2.0.0", "")
	code, out, errOut = kiln(t, dir, "rollback", "--output", "json")
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	if fin := finished(t, out); fin["to"].(map[string]any)["version"] != "1.0.0" {
		t.Fatalf("rollback went to %v", fin["to"])
	}
	code, out, _ = kiln(t, dir, "status", "--output", "json")
	var st struct {
		Endpoint string
		Live     struct{ Version string }
	}
	json.Unmarshal([]byte(out), &st)
	if code != 0 || st.Live.Version != "1.0.0" {
		t.Fatalf("after rollback live is %q", st.Live.Version)
	}
	if v := servingVersion(t, st.Endpoint); v != "1.0.0" {
		t.Fatalf("after rollback the balancer serves %s", v)
	}
}
