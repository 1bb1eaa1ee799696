package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/images"
)

// TestMain lets the test binary stand in for kiln-boot: started under that name, it
// waits to be killed, as an orphaned init would.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == images.InitName {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startIn(t *testing.T, cmd *exec.Cmd, setsid bool) int {
	t.Helper()
	if setsid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// Only the instance's own init is an orphan to kill: not a process that merely has its
// spec on its command line, nor one that does not lead its group.
func TestOrphanBootsAreOnlyTheInitsOfTheInstance(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "instances", "shop-blue-0-abcdef", "boot.json")
	os.MkdirAll(filepath.Dir(spec), 0o700)
	if err := os.WriteFile(spec, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "image", "bin", images.InitName)
	os.MkdirAll(filepath.Dir(init), 0o700)
	if err := os.Link(self, init); err != nil {
		t.Fatal(err)
	}
	orphan := startIn(t, exec.Command(init, "--spec", spec), true)
	startIn(t, exec.Command("tail", "-f", spec), true)                   // someone reading the spec
	startIn(t, exec.Command(init, "--spec", spec), false)                // not a session of its own
	startIn(t, exec.Command(init, "--spec", spec, "--extra"), true)      // not how kiln starts it
	startIn(t, exec.Command(self, "-test.run=^$", "--spec", spec), true) // another executable
	// Start returns once the child has exec'd: its command line is already its own.
	got := orphanBoots(spec)
	if !slices.Equal(got, []int{orphan}) {
		t.Fatalf("orphan inits %v, want only %d", got, orphan)
	}
}
