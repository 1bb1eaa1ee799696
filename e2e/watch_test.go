//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatchAttachesToARunningRolloutAndEndsWithIt(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "watched", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut := kiln(t, dir, "watch")
	if code != 1 || !strings.Contains(errOut, "no rollout of watched is running") {
		t.Fatalf("watch with nothing running: exit %d, %q", code, errOut)
	}

	writeFull(t, dir, "watched", "2.0.0", "", `  scaleDownDelay: 0s
  steps:
    - {weight: 30, pause: indefinite}
    - {weight: 100}`, "")
	rolloutCmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "paused" })

	watch := exec.Command(filepath.Join(binDir, "kiln"), "watch", "--output", "json")
	watch.Dir = dir
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan map[string]any, 256)
	go func() {
		defer close(seen)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				seen <- m
			}
		}
	}()
	// The watcher starts with what already happened: the start, then up to the pause.
	first := <-seen
	if first["event"] != "rollout-started" || first["service"] != "watched" {
		t.Fatalf("the watch did not open with the rollout's start: %v", first)
	}
	waitEvent(t, seen, func(ev map[string]any) bool { return ev["event"] == "paused" })

	if code, out, errOut := kiln(t, dir, "rollout", "promote"); code != 0 {
		t.Fatalf("promote: %d %s %s", code, out, errOut)
	}
	var last map[string]any
	timeout := time.After(2 * time.Minute)
	for done := false; !done; {
		select {
		case ev, ok := <-seen:
			if !ok {
				done = true
				break
			}
			last = ev
		case <-timeout:
			t.Fatal("the watch did not end with the rollout")
		}
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("watch of a promoted rollout: %v", err)
	}
	if last["event"] != "finished" || last["outcome"] != "promoted" {
		t.Fatalf("the watch ended with %v", last)
	}
	finishedOf(t, evs)
	rolloutCmd.Wait()
}
