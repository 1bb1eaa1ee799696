package metrics

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBinaryStartsWithOneP runs the real binary without GOMAXPROCS: it must re-execute
// itself with GOMAXPROCS=1 (the environment of the running image says so), keep its PID,
// serve, and not pass the variables on to exec probes.
func TestBinaryStartsWithOneP(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kiln-metrics")
	build := exec.Command("go", "build", "-o", bin, "../cmd/kiln-metrics")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "kiln-metrics.yaml")
	probe := `echo "probe_env_leaked $(env | grep -c -e ^GOMAXPROCS= -e ^KILN_METRICS_REEXEC=)"`
	os.WriteFile(cfg, []byte("listen: "+addr+"\ninterval: 1s\nexec:\n  - name: env\n    command: [/bin/sh, -c, '"+probe+"']\n"), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", cfg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, reexecMarker+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	eventually(t, "the probe's result", func() bool {
		code, b := get(t, "http://"+addr+"/metrics")
		if code != 200 {
			return false
		}
		v, ok := sample(parseMetrics(t, b), "probe_env_leaked")
		if ok && v != 0 {
			t.Fatalf("exec probes inherit GOMAXPROCS or %s", reexecMarker)
		}
		return ok
	})
	// The PID is the one started; its current image was executed with GOMAXPROCS=1.
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\x00"+string(environ), "\x00GOMAXPROCS=1\x00") {
		t.Error("the daemon's image did not start with GOMAXPROCS=1") // environ is not printed: it may hold secrets
	}
}
