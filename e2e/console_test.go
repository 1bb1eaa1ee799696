//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/procstat"
)

// screen is a tmux session of 80x24 on its own tmux server, running one command.
type screen struct {
	t      *testing.T
	socket string
}

func newScreen(t *testing.T, dir, command string) *screen {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed: `go tool task setup` installs it (Debian package tmux)")
	}
	s := &screen{t: t, socket: fmt.Sprintf("kiln-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	s.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", dir, command)
	t.Cleanup(s.close)
	return s
}

// close hangs up the terminal and waits for what ran in it to exit: a kiln rollout that
// loses its terminal rolls back and unlocks the stack first, which the test's destroy needs.
func (s *screen) close() {
	out, _ := exec.Command("tmux", "-L", s.socket, "display-message", "-p", "-t", "console", "#{pane_pid}").Output()
	pane, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	exec.Command("tmux", "-L", s.socket, "kill-server").Run()
	if pane <= 0 {
		return
	}
	// The pane's shell runs its commands in its own process group (no job control).
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !groupAlive(pane) {
			return
		}
	}
}

// groupAlive reports whether a process of process group pgid still runs.
func groupAlive(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procstat.Read(pid); err == nil && st.PGID == pgid && !st.Gone() {
			return true
		}
	}
	return false
}

func (s *screen) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *screen) keys(keys ...string) {
	s.t.Helper()
	s.tmux(append([]string{"send-keys", "-t", "console"}, keys...)...)
}

// waitFor returns the screen once it shows every one of want, or fails after 2 minutes.
func (s *screen) waitFor(want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		last = s.tmux("capture-pane", "-p", "-t", "console")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(last, w)
		}
		if ok {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("the screen never showed %q; it shows:\n%s", want, last)
	return ""
}

// TestConsoleDrivesARolloutThroughPausePromoteAndAbort runs kiln rollout in a terminal
// (tmux), so it opens the console, and steers real local rollouts with its keys: pause
// and resume, promote, abort, detach.
func TestConsoleDrivesARolloutThroughPausePromoteAndAbort(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	writeFull(t, dir, "web", "1.0.0", "", "  scaleDownDelay: 0s", "")
	if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	steps := `  scaleDownDelay: 0s
  steps:
    - {weight: 20, pause: indefinite}
    - {weight: 50, pause: indefinite}
    - {weight: 100}`
	run := filepath.Join(binDir, "kiln") + " rollout; echo KILN-EXIT=$?; sleep 600"

	// 2.0.0: p pauses a timed pause and p resumes it; p resumes the indefinite pause that
	// follows; enter+y promotes from the next one.
	writeFull(t, dir, "web", "2.0.0", "", `  scaleDownDelay: 0s
  steps:
    - {weight: 10, pause: 10m}
    - {weight: 20, pause: indefinite}
    - {weight: 50, pause: indefinite}
    - {weight: 100}`, "")
	s := newScreen(t, dir, run)
	s.waitFor("kiln web", "1.0.0", "→ 2.0.0", "step 1", "pause 10m", " 10% green")
	s.keys("p")
	scr := s.waitFor("PAUSED (9m", "of the pause left)", "‖ step 1")
	t.Logf("timed pause paused:\n%s", scr)
	s.keys("p")
	s.waitFor("resume accepted")
	s.keys("Enter")
	s.waitFor("promote: skip the remaining steps")
	s.keys("n")
	s.waitFor("promote cancelled")
	if code, out, errOut := kiln(t, dir, "rollout", "resume"); code == 0 {
		t.Fatalf("resume of a running (not paused) timed pause was accepted: %s %s", out, errOut)
	}
	// The rest of the 10 minutes is skipped from another terminal: the console follows.
	if code, out, errOut := kiln(t, dir, "rollout", "promote"); code != 0 {
		t.Fatalf("promote: %d\n%s\n%s", code, out, errOut)
	}
	scr = s.waitFor("OK promoted", "live: 2.0.0", "KILN-EXIT=0")
	t.Logf("after promote:\n%s", scr)

	// 2.1.0: p resumes the first pause, enter+y promotes from the second.
	writeFull(t, dir, "web", "2.1.0", "", steps, "")
	s = newScreen(t, dir, run)
	scr = s.waitFor("kiln web", "2.0.0", "→ 2.1.0", "PAUSED until you decide", "‖ step 1", "blue  20%")
	t.Logf("paused at step 1:\n%s", scr)
	s.keys("p")
	s.waitFor("✓ step 1", "PAUSED until you decide", "‖ step 2", "blue  50%")
	s.keys("Enter")
	s.waitFor("promote: skip the remaining steps")
	s.keys("y")
	scr = s.waitFor("OK promoted", "live: 2.1.0", "KILN-EXIT=0")
	t.Logf("after promote:\n%s", scr)

	// 3.0.0: a+y aborts; traffic stays on 2.1.0.
	writeFull(t, dir, "web", "3.0.0", "", steps, "")
	s = newScreen(t, dir, run)
	s.waitFor("→ 3.0.0", "PAUSED until you decide")
	s.keys("a")
	s.waitFor("abort: send traffic back")
	s.keys("y")
	scr = s.waitFor("FAILED rolled-back [Aborted]", "live: 2.1.0", "KILN-EXIT=1")
	t.Logf("after abort:\n%s", scr)

	// 4.0.0: q detaches; the rollout goes on and is promoted from another terminal.
	writeFull(t, dir, "web", "4.0.0", "", steps, "")
	s = newScreen(t, dir, run)
	s.waitFor("→ 4.0.0", "PAUSED until you decide")
	s.keys("q")
	s.waitFor("detached from the rollout of web")
	if code, out, errOut := kiln(t, dir, "rollout", "promote"); code != 0 {
		t.Fatalf("promote: %d\n%s\n%s", code, out, errOut)
	}
	s.waitFor("OK promoted", "live: 4.0.0", "KILN-EXIT=0")
}

// TestWatchConsoleFollowsRolloutsAndRollsBack runs kiln watch in a terminal: the status
// console shows the live fleet, follows a rollout started elsewhere, whose traffic r sends
// back, then r rolls the previous release out again from the console itself.
func TestWatchConsoleFollowsRolloutsAndRollsBack(t *testing.T) {
	dir := t.TempDir()
	destroyAtEnd(t, dir)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		writeFull(t, dir, "shop", v, "", "  scaleDownDelay: 0s", "")
		if code, out, errOut := kiln(t, dir, "rollout"); code != 0 {
			t.Fatalf("rollout %s: %d\n%s\n%s", v, code, out, errOut)
		}
	}
	s := newScreen(t, dir, filepath.Join(binDir, "kiln")+" watch; echo KILN-EXIT=$?; sleep 600")
	scr := s.waitFor("kiln shop", "live 2.0.0", "no rollout running", "r rolls back to 1.0.0", "(live) 2/2 healthy", "HISTORY", "✓ 2.0.0     promoted", "✓ 1.0.0     promoted")
	t.Logf("the fleet:\n%s", scr)

	// A rollout started in another terminal shows up; r sends its traffic back.
	writeFull(t, dir, "shop", "3.0.0", "", `  scaleDownDelay: 0s
  steps:
    - {weight: 30, pause: indefinite}
    - {weight: 100}`, "")
	ro, evs := startRollout(t, dir)
	scr = s.waitFor("2.0.0", "→ 3.0.0", "PAUSED until you decide", "blue  30%", "BLUE (new) 2/2 healthy")
	t.Logf("following a rollout:\n%s", scr)
	s.keys("r")
	s.waitFor("rollback: send all traffic back to 2.0.0")
	s.keys("y")
	scr = s.waitFor("rolled-back: Aborted", "LAST ROLLOUT → 3.0.0", "live 2.0.0")
	t.Logf("after r during the rollout:\n%s", scr)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "finished" && ev["outcome"] == "rolled-back" })
	if err := ro.Wait(); err == nil {
		t.Error("the aborted rollout exited 0")
	}

	// Between rollouts r rolls 1.0.0 out again, from this console.
	s.keys("r")
	s.waitFor("rollback: roll 1.0.0 out again")
	s.keys("y")
	scr = s.waitFor("last rollout promoted", "live 1.0.0", "r rolls back to 2.0.0", "LAST ROLLOUT → 1.0.0")
	t.Logf("after r between rollouts:\n%s", scr)
	s.keys("q")
	s.waitFor("OK promoted", "KILN-EXIT=0")

	code, out, errOut := kiln(t, dir, "status", "--output", "text")
	if code != 0 || !strings.Contains(out, "1.0.0") {
		t.Fatalf("status after the rollback: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = kiln(t, dir, "history", "--output", "text")
	if code != 0 || strings.Count(out, "promoted") != 3 || strings.Count(out, "rolled-back") != 1 {
		t.Errorf("history after the rollback:\n%s", out)
	}
}
