package releases

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The multi-process tests re-execute the test binary as a helper process. The helper's
// mode and store directory come from these variables.
const (
	helperModeEnv = "KILN_RELEASES_HELPER"
	helperDirEnv  = "KILN_RELEASES_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		os.Exit(helperMain(mode, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

// helperMain speaks a line protocol on stdin and stdout with the test:
//
//	race:  prints "ready", waits for a line, tries Lock once and prints "won" or
//	       "locked <pid> <stale>", then waits for stdin to close, unlocks if it won and
//	       prints "released".
//	hold:  takes the lock, prints "won", and waits for stdin to close (or SIGKILL).
//	lockloop: takes and releases the lock in a loop until killed, printing "ready"
//	       after the first round.
//	record: records 30 releases with IDs of its own, prints "released" and ends.
//	churn: takes the lock, then saves state and records history in a loop until killed,
//	       printing "ready" after the first round.
func helperMain(mode, dir string) int {
	s, err := OpenFileStore(dir)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	in := bufio.NewReader(os.Stdin)
	ctx := context.Background()
	switch mode {
	case "race":
		fmt.Println("ready")
		if _, err := in.ReadString('\n'); err != nil {
			fmt.Println("error", err)
			return 1
		}
		unlock, err := s.Lock(ctx, CurrentHolder("kiln rollout"))
		var le *LockedError
		switch {
		case err == nil:
			fmt.Println("won")
		case errors.As(err, &le):
			fmt.Println("locked", le.Holder.PID, le.Stale)
		default:
			fmt.Println("error", err)
			return 1
		}
		io.Copy(io.Discard, in)
		if unlock != nil {
			if err := unlock(); err != nil {
				fmt.Println("error", err)
				return 1
			}
			fmt.Println("released")
		}
		return 0
	case "hold":
		if _, err := s.Lock(ctx, CurrentHolder("kiln rollout")); err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("won")
		io.Copy(io.Discard, in)
		return 0
	case "lockloop":
		for i := 0; ; i++ {
			unlock, err := s.Lock(ctx, CurrentHolder("kiln rollout"))
			if err == nil {
				err = unlock()
			}
			if err != nil {
				fmt.Println("error", err)
				return 1
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	case "record":
		// Records 30 releases of its own, each after the previous, then ends.
		base := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
		for i := range 30 {
			id := fmt.Sprintf("p%d-%02d", os.Getpid(), i)
			if err := s.Record(Record{ID: id, Started: base.Add(time.Duration(i) * time.Second)}); err != nil {
				fmt.Println("error", err)
				return 1
			}
		}
		fmt.Println("released")
		return 0
	case "churn":
		if _, err := s.Lock(ctx, CurrentHolder("kiln rollout")); err != nil {
			fmt.Println("error", err)
			return 1
		}
		return churn(s)
	}
	fmt.Println("error unknown mode", mode)
	return 2
}

// churn rewrites the state and history as fast as it can. Each state's step is one more
// than the saved one, so the test can tell that finished writes were kept. The payloads
// are large enough that a kill often lands inside a write.
func churn(s *FileStore) int {
	st, _, err := s.LoadState()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	extra, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", 64<<10)})
	base := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for i := 0; ; i++ {
		step := st.Step + 1
		st = State{ID: "rollout-" + strconv.Itoa(step%5), Phase: "deploy", Step: step,
			Desired: &Release{Version: "1.0." + strconv.Itoa(step)}, StartedAt: base, UpdatedAt: base.Add(time.Duration(step) * time.Second), Extra: extra}
		if err := s.SaveState(st); err != nil {
			fmt.Println("error", err)
			return 1
		}
		id := step % 7
		r := Record{ID: "r" + strconv.Itoa(id), Version: "1.0." + strconv.Itoa(step), Started: base.Add(time.Duration(id) * time.Minute),
			Outcome: "running", Message: strings.Repeat("m", 4<<10)}
		if err := s.Record(r); err != nil {
			fmt.Println("error", err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// helper is one helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	done  bool
}

// startHelper starts the test binary in mode on dir; the test's cleanup kills it if it
// still runs.
func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() {
		if !h.done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return h
}

// line returns the helper's next output line; a helper that ends first fails the test.
func (h *helper) line() string {
	h.t.Helper()
	if !h.out.Scan() {
		h.t.Fatalf("helper %d ended without a line (%v)", h.cmd.Process.Pid, h.out.Err())
	}
	l := h.out.Text()
	if strings.HasPrefix(l, "error") {
		h.t.Fatalf("helper %d: %s", h.cmd.Process.Pid, l)
	}
	return l
}

func (h *helper) send(s string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, s+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

// finish closes stdin and waits for a clean exit.
func (h *helper) finish() {
	h.t.Helper()
	h.stdin.Close()
	for h.out.Scan() {
		if l := h.out.Text(); l != "released" {
			h.t.Errorf("helper %d: %s", h.cmd.Process.Pid, l)
		}
	}
	err := h.cmd.Wait()
	h.done = true
	if err != nil {
		h.t.Fatalf("helper %d: %v", h.cmd.Process.Pid, err)
	}
}

// kill sends SIGKILL and reaps the process.
func (h *helper) kill() {
	h.t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	h.cmd.Wait()
	h.done = true
}

// lockHolder reports who holds the lock, if anyone: what the tests check after a lock
// changes hands. kiln itself only learns the holder from a *LockedError.
func (s *FileStore) lockHolder() (Holder, bool, error) {
	h, _, ok, err := s.readLock()
	if err != nil {
		return Holder{}, true, fmt.Errorf("stack %s: %w", s.stack, err)
	}
	return h, ok, nil
}
