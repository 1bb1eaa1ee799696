package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
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
// (tmux), so it opens the console, and steers real local rollouts with its keys.
func TestConsoleDrivesARolloutThroughPausePromoteAndAbort(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() {
		kiln(t, dir, "destroy")
		if left := leftovers(dir); len(left) > 0 {
			t.Errorf("processes left after destroy: %v", left)
		}
	})
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

	// 2.0.0: p resumes the first pause, enter+y promotes from the second.
	writeFull(t, dir, "web", "2.0.0", "", steps, "")
	s := newScreen(t, dir, run)
	scr := s.waitFor("kiln web", "1.0.0", "→ 2.0.0", "PAUSED until you decide", "‖ step 1", " 20% green")
	t.Logf("paused at step 1:\n%s", scr)
	s.keys("p")
	s.waitFor("✓ step 1", "PAUSED until you decide", "‖ step 2", " 50% green")
	s.keys("Enter")
	s.waitFor("promote: skip the remaining steps")
	s.keys("y")
	scr = s.waitFor("OK promoted", "live: 2.0.0", "KILN-EXIT=0")
	t.Logf("after promote:\n%s", scr)

	// 3.0.0: a+y aborts; traffic stays on 2.0.0.
	writeFull(t, dir, "web", "3.0.0", "", steps, "")
	s = newScreen(t, dir, run)
	s.waitFor("→ 3.0.0", "PAUSED until you decide")
	s.keys("a")
	s.waitFor("abort: send traffic back")
	s.keys("y")
	scr = s.waitFor("FAILED rolled-back [Aborted]", "live: 2.0.0", "KILN-EXIT=1")
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
