//go:build unix

package releases

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// processStart reports whether pid runs and, where /proc tells, its kernel start time.
// A zombie counts as gone: it will never release anything.
func processStart(pid int) (start uint64, alive bool, err error) {
	if pid <= 0 {
		return 0, false, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		return parseStat(data)
	}
	if _, serr := os.Stat("/proc/self/stat"); serr == nil && !errors.Is(err, os.ErrNotExist) {
		return 0, false, err
	}
	// No /proc (macOS, BSD), or no entry for pid, which also happens for another user's
	// live process under hidepid: ask the kernel whether the PID exists.
	switch err := syscall.Kill(pid, 0); {
	case err == nil, errors.Is(err, syscall.EPERM):
		return 0, true, nil
	case errors.Is(err, syscall.ESRCH):
		return 0, false, nil
	default:
		return 0, false, err
	}
}

// parseStat reads the state (field 3) and start time (field 22) of a /proc/<pid>/stat
// line. The command (field 2) may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStat(data []byte) (uint64, bool, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("proc stat: no command field")
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 20 {
		return 0, false, fmt.Errorf("proc stat: %d fields after the command, want at least 20", len(f))
	}
	if string(f[0]) == "Z" || string(f[0]) == "X" {
		return 0, false, nil
	}
	st, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("proc stat: start time: %w", err)
	}
	return st, true, nil
}

// flock takes or tries the kernel's exclusive lock on f. The kernel drops it when the
// process dies, however it dies.
func flockTry(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return false, nil
	}
	return false, err
}

func flockRelease(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
