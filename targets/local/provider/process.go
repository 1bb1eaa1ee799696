package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/internal/fileperm"
	"github.com/kilnhq/kiln/internal/procstat"
)

// proc identifies a process we started: a PID alone could have been reused by the time we
// look again, so the kernel's start time (in clock ticks since boot) goes with it.
type proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// startTime reads the kernel start time of a live process.
func startTime(pid int) (uint64, error) {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0, err
	}
	if st.Gone() {
		return 0, fmt.Errorf("pid %d has exited", pid)
	}
	return st.StartTime, nil
}

// alive reports whether the process p is still the one we started.
func (p proc) alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := startTime(p.PID)
	return err == nil && st == p.StartTime
}

// spawn starts argv as the leader of a new session, its output appended to logPath, and
// lets it go: it must outlive this plugin, which the engine stops after every operation.
// extra are inherited as descriptors 3, 4, ...
func spawn(argv []string, env []string, logPath string, extra ...*os.File) (proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, fileperm.File)
	if err != nil {
		return proc{}, err
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return proc{}, err
	}
	defer devnull.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, err
	}
	pid := cmd.Process.Pid
	st, err := startTime(pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return proc{}, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	// The child is reaped by whoever inherits it once the plugin exits; until then a
	// goroutine reaps it so an early exit does not linger as a zombie.
	go cmd.Wait()
	return proc{PID: pid, StartTime: st}, nil
}

// stop ends the session led by p: SIGTERM to the leader (which drains and stops its own
// children), then SIGKILL to the whole process group once grace has passed. It returns
// when no process of the group is left.
func stop(ctx context.Context, p proc, grace time.Duration) error {
	if p.alive() {
		syscall.Kill(p.PID, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for p.alive() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// The group id equals the leader's pid (Setsid). If the leader was reused by an
	// unrelated process the group is not ours: only signal it while members remain and
	// the leader is ours or gone.
	if p.PID > 0 && (p.alive() || !exists(p.PID)) {
		for i := 0; i < 100 && groupExists(p.PID); i++ {
			syscall.Kill(-p.PID, syscall.SIGKILL)
			time.Sleep(20 * time.Millisecond)
		}
		if groupExists(p.PID) {
			return fmt.Errorf("process group %d did not exit", p.PID)
		}
	}
	return nil
}

func exists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	if err == nil || errors.Is(err, syscall.EPERM) {
		// Members that are zombies count as gone: they hold no port and run no code.
		return anyLiveMember(pgid)
	}
	return false
}

func anyLiveMember(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if st, err := procstat.Read(pid); err == nil && !st.Gone() && st.PGID == pgid {
			return true
		}
	}
	return false
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailFile returns the last n bytes of a file, for error messages.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := fi.Size() - n
	if off < 0 {
		off = 0
	}
	b := make([]byte, fi.Size()-off)
	f.ReadAt(b, off)
	return strings.TrimSpace(string(b))
}
