//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kilnhq/kiln/internal/testpeers"
)

// Two "hosts" share a stack through an S3 backend (gofakes3 on 127.0.0.1): each is its
// own directory, with its own state directory and HOME, and reaches the same bucket. A
// rollout started on A and killed with kill -9 is finished from B with --resume while
// traffic goes on, and a third host that never deployed sees the whole history.
func TestSharedBackendResumeFromAnotherHost(t *testing.T) {
	host := sharedBackend(t)
	a, b, c := host("a"), host("b"), host("c")
	steps := `  scaleDownDelay: 0s
  steps:
    - {weight: 50, pause: 3s}
    - {weight: 100}`
	for _, d := range []string{a, b, c} {
		writeFull(t, d, "team", "1.0.0", "", steps, "")
	}
	t.Cleanup(func() { kiln(t, b, "destroy", "--break-lock") })

	t.Setenv("HOME", filepath.Join(a, "home"))
	if code, out, errOut := kiln(t, a, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("rollout 1.0.0 from A: %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(a, ".kiln", "pulumi", ".pulumi")); err == nil {
		t.Fatal("host A kept Pulumi state in its state directory; it belongs in the shared backend")
	}

	// B never deployed: it sees what A did.
	t.Setenv("HOME", filepath.Join(b, "home"))
	addr := endpointOf(t, b)
	if v := servingVersion(t, addr); v != "1.0.0" {
		t.Fatalf("B sees the endpoint serving %q, want 1.0.0", v)
	}
	load := startLoad(t, addr)

	// A starts 1.1.0 and is killed in its first traffic step's pause.
	t.Setenv("HOME", filepath.Join(a, "home"))
	writeFull(t, a, "team", "1.1.0", "", steps, "")
	cmd, evs := startRollout(t, a)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == "step" })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	t.Setenv("HOME", filepath.Join(b, "home"))
	writeFull(t, b, "team", "1.1.0", "", steps, "")
	code, _, errOut := kiln(t, b, "rollout")
	if code != 4 || !strings.Contains(errOut, "locked by kiln rollout") || !strings.Contains(errOut, "--break-lock") {
		t.Fatalf("rollout from B while A's lock is left: exit %d, %q; want 4 naming A's rollout", code, errOut)
	}
	code, out, errOut := kiln(t, b, "rollout", "--output", "json", "--resume")
	if code != 0 {
		t.Fatalf("resume from B: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, `"event":"recovered"`) {
		t.Fatalf("B did not resume A's rollout:\n%s", out)
	}
	if fin := finished(t, out); fin["outcome"] != "promoted" || fin["to"].(map[string]any)["version"] != "1.1.0" {
		t.Fatalf("resumed rollout: %v", fin)
	}
	rep := load.Stop()
	if rep.Failed > 0 || rep.Sent == 0 {
		t.Fatalf("traffic while A was killed and B resumed: %d sent, %d failed: %v", rep.Sent, rep.Failed, rep.Errors)
	}
	if v := servingVersion(t, addr); v != "1.1.0" {
		t.Fatalf("serving %q after the resume, want 1.1.0", v)
	}

	// C never deployed anything: its history is every release, by whoever rolled it out.
	t.Setenv("HOME", filepath.Join(c, "home"))
	code, out, errOut = kiln(t, c, "history")
	if code != 0 {
		t.Fatalf("history from C: %d %s", code, errOut)
	}
	for _, want := range []string{"1.0.0", "1.1.0", "promoted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history from C lacks %q:\n%s", want, out)
		}
	}
}

// A stack deployed with the default file backend moves to a shared one and back: while a
// rollout holds the lock the move is refused (exit 4); after it, the old backend refuses
// to deploy and says where the state went, and the new one rolls the same fleet forward
// (no instance of the live release replaced) with the whole history.
func TestStateMigrateToASharedBackendAndBack(t *testing.T) {
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TOOLS_DIR", filepath.Join(cache, "kiln", "tools"))
	endpoint := testpeers.S3(t)
	shared := "s3://team-state/moved?region=us-east-1&endpoint=" + endpoint
	t.Setenv("KILN_PASSPHRASE", "another passphrase")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	dir := t.TempDir()
	steps := `  scaleDownDelay: 0s
  steps:
    - {weight: 50, pause: 2s}
    - {weight: 100}`
	writeFull(t, dir, "mover", "1.0.0", "", steps, "")
	t.Cleanup(func() {
		if code, _, _ := kiln(t, dir, "destroy", "--break-lock"); code != 0 {
			kiln(t, dir, "destroy", "--break-lock", "--backend", shared)
		}
	})
	if code, out, errOut := kiln(t, dir, "rollout", "--output", "json"); code != 0 {
		t.Fatalf("rollout 1.0.0: %d\n%s\n%s", code, out, errOut)
	}
	addr := endpointOf(t, dir)

	// Refused while a rollout holds the lock.
	writeFull(t, dir, "mover", "1.1.0", "", steps, "")
	cmd, evs := startRollout(t, dir)
	waitEvent(t, evs, func(ev map[string]any) bool { return ev["event"] == "phase-started" && ev["phase"] == "step" })
	if code, _, errOut := kiln(t, dir, "state", "migrate", "--to", shared); code != 4 || !strings.Contains(errOut, "locked by kiln rollout") {
		t.Fatalf("migrate during a rollout: exit %d %q, want 4 naming the rollout", code, errOut)
	}
	if fin := finishedOf(t, evs); fin["outcome"] != "promoted" {
		t.Fatalf("rollout 1.1.0: %v", fin)
	}
	cmd.Wait()
	before := instanceDirs(t, dir, "mover")

	code, out, errOut := kiln(t, dir, "state", "migrate", "--to", shared)
	if code != 0 || !strings.Contains(out, `"records":2`) {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errOut)
	}
	// The old backend is no longer deployed from.
	if code, _, errOut := kiln(t, dir, "rollout"); code != 2 || !strings.Contains(errOut, "was moved") || !strings.Contains(errOut, "s3://team-state/moved") {
		t.Fatalf("rollout from the old backend: exit %d %q, want 2 saying where the state went", code, errOut)
	}
	// The shared one has the fleet and the history, and rolls the same fleet forward.
	code, out, _ = kiln(t, dir, "history", "--backend", shared)
	if code != 0 || !strings.Contains(out, "1.0.0") || !strings.Contains(out, "1.1.0") {
		t.Fatalf("history from the shared backend: %d\n%s", code, out)
	}
	code, out, errOut = kiln(t, dir, "status", "--output", "json", "--backend", shared)
	if code != 0 || !strings.Contains(out, `"version":"1.1.0"`) {
		t.Fatalf("status from the shared backend: %d\n%s\n%s", code, out, errOut)
	}
	if after := instanceDirs(t, dir, "mover"); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("the move replaced instances: %v, then %v", before, after)
	}
	writeFull(t, dir, "mover", "1.2.0", "", steps, "")
	if code, out, errOut := kiln(t, dir, "rollout", "--output", "json", "--backend", shared); code != 0 {
		t.Fatalf("rollout 1.2.0 on the shared backend: %d\n%s\n%s", code, out, errOut)
	}
	if v := servingVersion(t, addr); v != "1.2.0" {
		t.Fatalf("the balancer at %s serves %q, want 1.2.0: the shared stack drives the same fleet", addr, v)
	}
	// And back.
	if code, out, errOut := kiln(t, dir, "state", "migrate", "--to", "file://"+filepath.Join(dir, ".kiln", "pulumi"), "--backend", shared); code != 0 {
		t.Fatalf("migrate back: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = kiln(t, dir, "history")
	if code != 0 || !strings.Contains(out, "1.2.0") {
		t.Fatalf("history after moving back: %d\n%s", code, out)
	}
}

// sharedBackend points kiln at a shared S3 backend (gofakes3 on 127.0.0.1) with a
// passphrase every host knows, and returns a function that makes a "host": its own
// directory, state directory and HOME. Hosts share this machine's Pulumi CLI and Go caches.
func sharedBackend(t *testing.T) (host func(name string) string) {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TOOLS_DIR", filepath.Join(cache, "kiln", "tools"))
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if v, err := exec.Command("go", "env", k).Output(); err == nil {
			t.Setenv(k, strings.TrimSpace(string(v)))
		}
	}
	endpoint := testpeers.S3(t)
	t.Setenv("KILN_BACKEND", "s3://team-state/kiln?region=us-east-1&endpoint="+endpoint)
	t.Setenv("KILN_PASSPHRASE", "correct horse battery staple")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return func(name string) string {
		d := filepath.Join(t.TempDir(), name)
		os.MkdirAll(filepath.Join(d, "home"), 0o700)
		return d
	}
}
