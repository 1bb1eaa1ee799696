//go:build e2e

package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nothingLeft fails the test if any process of dir's fleet runs or kiln status reports a
// deployment.
func nothingLeft(t *testing.T, dir string) {
	t.Helper()
	if left := leftovers(dir); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
	code, out, errOut := kiln(t, dir, "status", "--output", "json")
	var st struct {
		Endpoint string
		Live     map[string]any
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Endpoint != "" || st.Live != nil {
		t.Fatalf("kiln status after the failed first release: exit %d, %s %s; want nothing deployed", code, out, errOut)
	}
}

// editManifest replaces old by new in dir's manifest.
func editManifest(t *testing.T, dir, old, new string) {
	t.Helper()
	file := filepath.Join(dir, "kiln.yaml")
	body, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(body), old) {
		t.Fatalf("the manifest has no %q (%v)", old, err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(body), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a 127.0.0.1 address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAFailedFirstReleaseLeavesNothingBehind fails a first release in every way it can
// fail. With no stable release behind it, each must end failed (exit 1), with no process
// of it left and nothing deployed.
func TestAFailedFirstReleaseLeavesNothingBehind(t *testing.T) {
	const deadline = "  progressDeadline: 60s\n"
	for _, tc := range []struct {
		name   string
		reason string
		// arrange writes the manifest (and whatever else the failure needs); rollout runs
		// it and returns the exit code and the output.
		arrange func(t *testing.T, dir string)
		rollout func(t *testing.T, dir string) (int, string, string)
	}{
		{name: "bake", reason: "BakeFailed", arrange: func(t *testing.T, dir string) {
			writeFull(t, dir, "first", "1.0.0", "", "", "")
			editManifest(t, dir, demoBin, filepath.Join(dir, "gone"))
		}},
		{name: "balancer", reason: "DeployFailed", arrange: func(t *testing.T, dir string) {
			// The listen address is taken by another program.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			writeFull(t, dir, "first", "1.0.0", "", "", "")
			editManifest(t, dir, "listen: 127.0.0.1:0", "listen: "+l.Addr().String())
		}},
		{name: "instances", reason: "DeployFailed", arrange: func(t *testing.T, dir string) {
			// The baked image changes behind kiln's back: kiln-boot refuses to start it.
			writeFull(t, dir, "first", "1.0.0", "", "", "")
			if code, out, errOut := kiln(t, dir, "bake"); code != 0 {
				t.Fatalf("bake: %d %s %s", code, out, errOut)
			}
			var baked struct{ Dir string }
			_, out, _ := kiln(t, dir, "bake", "--output", "json")
			if err := json.Unmarshal([]byte(out), &baked); err != nil || baked.Dir == "" {
				t.Fatalf("bake --output json: %q %v", out, err)
			}
			f, err := os.OpenFile(filepath.Join(baked.Dir, "bin", "first"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("tampered"))
			f.Close()
		}},
		{name: "app crashes", reason: "NewSlotNotHealthy", arrange: func(t *testing.T, dir string) {
			writeFull(t, dir, "first", "1.0.0", "", "", "")
			editManifest(t, dir, demoBin, "/bin/false")
			editManifest(t, dir, deadline, "  progressDeadline: 3s\n")
		}},
		{name: "health", reason: "NewSlotNotHealthy", arrange: func(t *testing.T, dir string) {
			writeFull(t, dir, "first", "1.0.0", "DEMO_BROKEN: '1'", "", "")
			editManifest(t, dir, deadline, "  progressDeadline: 3s\n")
		}},
		{name: "analysis", reason: "AnalysisFailed", arrange: func(t *testing.T, dir string) {
			// Every request fails once it serves: the analysis after promotion catches it.
			addr := freeAddr(t)
			writeFull(t, dir, "first", "1.0.0", "DEMO_ERROR_RATE: '1'", "  scaleDownDelay: 0s\n  postPromotionAnalysis: errors", errorsAnalysis)
			editManifest(t, dir, "listen: 127.0.0.1:0", "listen: "+addr)
			startLoad(t, addr)
		}},
		{name: "kill -9 then --resume", reason: "NewSlotNotHealthy", arrange: func(t *testing.T, dir string) {
			writeFull(t, dir, "first", "1.0.0", "DEMO_BROKEN: '1'", "", "")
			editManifest(t, dir, deadline, "  progressDeadline: 4s\n")
		}, rollout: func(t *testing.T, dir string) (int, string, string) {
			cmd, evs := startRollout(t, dir)
			waitEvent(t, evs, phaseStarted("health"))
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			return kiln(t, dir, "rollout", "--output", "json", "--resume")
		}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			destroyAtEnd(t, dir, "--break-lock")
			tc.arrange(t, dir)
			run := tc.rollout
			if run == nil {
				run = func(t *testing.T, dir string) (int, string, string) {
					return kiln(t, dir, "rollout", "--output", "json")
				}
			}
			code, out, errOut := run(t, dir)
			fin := finished(t, out)
			if code != 1 || fin["outcome"] != "failed" || fin["reason"] != tc.reason {
				t.Fatalf("first release failing at %s: exit %d, %v\n%s; want exit 1, failed, %s", tc.name, code, fin, errOut, tc.reason)
			}
			nothingLeft(t, dir)
		})
	}
}
