package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/rollout"
)

// otherUID is the user the tests play another local user with (nobody).
const otherUID = 65534

// peerEnv makes the test binary act as another local user's process: "send <path>"
// writes an abort on the socket by hand (no check of its own) and prints the answer, "serve <path>" serves a rollout that answers ok
// to everything, prints "ready" and runs until killed.
const peerEnv = "KILN_CONTROL_TEST_PEER"

func TestMain(m *testing.M) {
	if role := os.Getenv(peerEnv); role != "" {
		os.Exit(runPeer(role))
	}
	os.Exit(m.Run())
}

func runPeer(role string) int {
	verb, path, _ := strings.Cut(role, " ")
	ctx := context.Background()
	switch verb {
	case "send":
		conn, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		fmt.Fprintln(conn, `{"command": "abort"}`)
		answer, _ := bufio.NewReader(conn).ReadString('\n')
		fmt.Print(answer)
	case "serve":
		controls := make(chan rollout.Control)
		go func() {
			for c := range controls {
				c.Reply <- nil
			}
		}()
		if _, err := Serve(ctx, path, controls, NewHub(10)); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		select {}
	}
	return 2
}

// asOtherUser starts the test binary as another user in role. The binary is copied where
// that user may execute it.
func asOtherUser(t *testing.T, role string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("playing another local user needs root (setuid in the child)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kiln-control-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "peer")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{peerEnv + "=" + role}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// sharedDir is a directory in the shared temporary directory, which another user can
// reach.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestASocketDirectoryNotOwnedByTheUserOrOpenToOthersIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    string
	}{
		{"made by another user", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("making a directory of another user needs root (chown)")
			}
			if err := os.Chown(dir, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534"},
		{"open to the group and others", func(t *testing.T, dir string) { os.Chmod(dir, 0o755) }, "has mode 0755"},
		{"writable by all", func(t *testing.T, dir string) { os.Chmod(dir, 0o1777) }, "want 0700"},
		{"a link to a directory", func(t *testing.T, dir string) {
			os.Remove(dir)
			os.Symlink(t.TempDir(), dir)
		}, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			path := SocketPath(state, "shop")
			if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, filepath.Dir(path))
			stop, err := Serve(context.Background(), path, make(chan rollout.Control), nil)
			if err == nil {
				stop()
				t.Fatal("a rollout served its controls in a directory someone else controls")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestAConnectionFromAnotherUserIsRefused(t *testing.T) {
	dir := sharedDir(t)
	path := filepath.Join(dir, "shop.sock")
	controls := make(chan rollout.Control)
	stop, err := Serve(context.Background(), path, controls, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got := make(chan rollout.Command, 10)
	go func() {
		for c := range controls {
			got <- c.Command
			c.Reply <- nil
		}
	}()
	// Let the other user reach the socket, as if its directory's protection had failed:
	// the peer check must hold on its own.
	os.Chmod(dir, 0o711)
	os.Chmod(path, 0o666)
	peer, out := asOtherUser(t, "send "+path)
	answer, _ := out.ReadString('\n')
	peer.Wait()
	if !strings.Contains(answer, "runs as uid 65534") || !strings.Contains(answer, "refused") {
		t.Fatalf("another user's abort was answered %q", answer)
	}
	select {
	case c := <-got:
		t.Fatalf("another user's %s reached the rollout", c)
	default:
	}
	// The owner is still served.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Send(ctx, path, rollout.CmdPause); err != nil || <-got != rollout.CmdPause {
		t.Fatalf("the owner's pause: %v", err)
	}
}

func TestASocketServedByAnotherUserIsNotBelieved(t *testing.T) {
	dir := sharedDir(t)
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "shop.sock")
	_, out := asOtherUser(t, "serve "+path)
	if line, err := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the other user's server: %q %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Send(ctx, path, rollout.CmdAbort)
	if err == nil || !strings.Contains(err.Error(), "runs as uid 65534") {
		t.Fatalf("an abort answered by another user's socket: %v, want a refusal", err)
	}
	if _, err := Watch(ctx, path); err == nil || !strings.Contains(err.Error(), "runs as uid 65534") {
		t.Fatalf("watching another user's socket: %v, want a refusal", err)
	}
}

func TestADeepStateDirectoryStillGetsItsSocket(t *testing.T) {
	state := filepath.Join(t.TempDir(), strings.Repeat("d", 100), "state")
	path := SocketPath(state, "a-service-name-of-forty-characters-xxxxx")
	if len(path) <= maxSocketPath {
		t.Fatalf("path %s fits a socket address: the test tests nothing", path)
	}
	hub := NewHub(10)
	controls := make(chan rollout.Control)
	stop, err := Serve(context.Background(), path, controls, hub)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for c := range controls {
			c.Reply <- nil
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Send(ctx, path, rollout.CmdPause); err != nil {
		t.Fatal(err)
	}
	hub.Publish([]byte(`{"event":"rollout-started"}`))
	lines, err := Watch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(<-lines); got != `{"event":"rollout-started"}` {
		t.Fatalf("watch: %s", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket at its real path: %v %v", fi, err)
	}
	hub.Close()
	stop()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket outlived the rollout: %v", err)
	}
	if err := Send(ctx, path, rollout.CmdAbort); !errors.Is(err, ErrNoRollout) {
		t.Fatalf("after stop: %v", err)
	}
}
